"""``python -m tf_assign2.export RUN --formats onnx,litert``: ONNX and LiteRT files of a finished run
beside its SavedModel, through ``api.export``."""

from tf_assign2 import api
from tf_assign2.cli import ArgumentParser, run_cli


def parser():
    p = ArgumentParser(
        prog="python -m tf_assign2.export",
        description="Write model.onnx and/or model.tflite (LiteRT) of a finished run beside its SavedModel: "
        "float32 images in [0, 1] -> class probabilities, as the SavedModel serves. Each file is checked "
        "against the Keras model and recorded in exports.json. Needs the export extra "
        "(pip install -e .[export]) for ONNX.",
    )
    p.add_argument("run_dir", help="a finished run directory (with model.keras and config.json)")
    p.add_argument("--formats", default="onnx,litert", metavar="LIST",
                   help="comma-separated: onnx, litert (onnx,litert)")
    return p


def export_run(argv=None):
    args = parser().parse_args(argv)
    api.export(args.run_dir, args.formats)
    return 0


def main(argv=None):
    return run_cli(lambda: export_run(argv))
