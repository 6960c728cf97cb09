"""``python -m tf_assign2.export RUN --formats onnx,litert``: ONNX and LiteRT files of a finished run
(``training.export.export_formats``), beside its SavedModel."""

from pathlib import Path

from tf_assign2 import runs
from tf_assign2.cli import ArgumentParser, run_cli, start_tensorflow
from tf_assign2.errors import UsageError


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
    from tf_assign2.training import export

    formats = export.parse_formats(args.formats)  # unknown names, missing converters: before TensorFlow starts
    run_dir = Path(args.run_dir)
    if not runs.is_run_dir(run_dir):
        raise UsageError(f"{run_dir}: not a run directory (no config.json)")
    if not (run_dir / "model.keras").is_file():
        raise UsageError(f"{run_dir}: no model.keras (did the run diverge or get interrupted?)")
    start_tensorflow()

    from tf_assign2.analysis.zeiler_fergus import load_run_model

    model = load_run_model(run_dir)
    with runs.owned(run_dir, "run folder"):
        records = export.export_formats(model, run_dir, formats)  # the others still written
        if records:
            record_float32_figures(run_dir, model)
    for record in records.values():
        check = record.get("check")
        checked = (f"; max |p - Keras| {check['max_abs_diff']:.2e} on {check['images']} images ({check['runtime']})"
                   if check else "; not checked (no runtime installed)")
        print(f"wrote {run_dir / record['file']} ({record['bytes']:,} bytes, {record['converter']}){checked}")
    failed = [f for f in formats if f not in records]
    if failed:
        raise UsageError(f"--formats {','.join(failed)}: the converter failed (see the warning above); "
                         f"{', '.join(records) or 'nothing'} written")
    return 0


def record_float32_figures(run_dir, model):
    """Add the float32 test figures to summary.json of a run computed in 16 bits (a run trained without
    the export extra did not compute them): what its ONNX/LiteRT files reproduce, and evaluate compares."""
    from tf_assign2 import config as settings
    from tf_assign2 import data
    from tf_assign2.training.trainer import Trainer, recorded_plan

    summary_path = run_dir / "summary.json"
    plan = recorded_plan(run_dir)
    if not summary_path.is_file() or plan is None or plan.precision == "float32":
        return
    summary = runs.read_json(summary_path)
    if summary.get("test_accuracy_float32") is not None:
        return
    config = settings.from_dict(runs.read_json(run_dir / "config.json"), f"{run_dir}/config.json")
    arrays, info = data.load_arrays(config)
    summary.update(Trainer(config, arrays, info, plan=plan).float32_test_metrics(model))
    runs.write_json(summary_path, summary)
    print(f"run computed in {plan.precision}: test accuracy {summary['test_accuracy']:.4f}; its weights in float32, "
          f"as the files compute: {summary['test_accuracy_float32']:.4f} (added to summary.json)")


def main(argv=None):
    return run_cli(lambda: export_run(argv))
