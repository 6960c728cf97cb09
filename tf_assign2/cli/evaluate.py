"""``python -m tf_assign2.evaluate RUN_OR_EXPORT``: test accuracy, loss and confusion matrix of an export
(a run's SavedModel, a SavedModel folder, or a model.onnx / model.tflite file), through ``api.evaluate``."""

from tf_assign2 import api
from tf_assign2 import config as schema
from tf_assign2.cli import TEST_DATA_SETTINGS, ArgumentParser, add_data_flags, flag_values, run_cli


def parser():
    p = ArgumentParser(
        prog="python -m tf_assign2.evaluate",
        description="Evaluate an exported model (a run directory, a saved_model/ folder, or a model.onnx or "
        "model.tflite file) on a test split. A SavedModel is a program that this runs: evaluate only models "
        "you trust (docs/export.md).",
    )
    p.add_argument("path", help="run directory, SavedModel directory, or .onnx / .tflite file")
    add_data_flags(p, names=TEST_DATA_SETTINGS)
    p.add_argument("--out", default=None, help="folder for eval.json and confusion_matrix.png "
                   "(default: a new eval-<timestamp>/ in the run directory)")
    p.add_argument("--tta", choices=schema.SETTINGS["tta"].choices, default=None,
                   help="test-time augmentation: average the probabilities of flipped (flip) and also shifted "
                   "(flip-shift) images (default: the run's own --tta; none for an export outside a run)")
    return p


def evaluate(argv=None):
    args = parser().parse_args(argv)
    data = {k: v for k, v in flag_values(args).items() if k != "tta"}
    result = api.evaluate(args.path, tta=args.tta, out=args.out, **data)
    print(f"test accuracy {result['accuracy']:.4f} on {result['n_test']} images; wrote {result['out']}/eval.json")
    if result["tta"] != "none":
        print(f"(test-time augmentation {result['tta']}; without it: {result['accuracy_no_tta']:.4f})")
    if result.get("run_test_accuracy_float32") is not None:
        print(f"(the run computed in 16 bits: test accuracy {result['run_test_accuracy']:.4f}; the same weights "
              f"in float32, as this file computes: {result['run_test_accuracy_float32']:.4f})")
    return 0


def main(argv=None):
    return run_cli(lambda: evaluate(argv))
