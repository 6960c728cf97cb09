"""``python -m tf_assign2.evaluate RUN_OR_EXPORT``: test accuracy, loss and confusion matrix of an export
(a run's SavedModel, a SavedModel folder, or a model.onnx / model.tflite file)."""

from pathlib import Path

from tf_assign2 import config as settings
from tf_assign2 import runs
from tf_assign2.cli import ArgumentParser, add_data_flags, check_data_location, flag_values, run_cli, start_tensorflow


def parser():
    p = ArgumentParser(
        prog="python -m tf_assign2.evaluate",
        description="Evaluate an exported model (a run directory, a saved_model/ folder, or a model.onnx or "
        "model.tflite file) on a test split.",
    )
    p.add_argument("path", help="run directory, SavedModel directory, or .onnx / .tflite file")
    add_data_flags(p)
    p.add_argument("--out", default=None, help="folder for eval.json and confusion_matrix.png "
                   "(default: a new eval-<timestamp>/ in the run directory)")
    p.add_argument("--tta", choices=settings.SETTINGS["tta"].choices, default=None,
                   help="test-time augmentation: average the probabilities of flipped (flip) and also shifted "
                   "(flip-shift) images (default: the run's own --tta; none for an export outside a run)")
    return p


def evaluate(argv=None):
    args = parser().parse_args(argv)
    from tf_assign2.analysis import evaluation as ev

    model_dir, fmt = ev.model_path(args.path)
    run_dir = model_dir.parent if runs.is_run_dir(model_dir.parent) else None
    if run_dir is not None:  # the run's own data settings, data flags override them
        cfg = settings.from_dict({**runs.read_json(run_dir / "config.json"), **flag_values(args)},
                                 f"{run_dir}/config.json")
    else:  # a bare SavedModel: the data flags alone (default: the assignment's CIFAR10)
        cfg = settings.build("cifar", flag_values(args))
    check_data_location(cfg)
    start_tensorflow()

    from tf_assign2 import data, figures

    serve, input_shape, num_classes = ev.load_model(model_dir, fmt)
    test_x, test_y, info = data.load_test_split(cfg)
    ev.check_compatible(model_dir, input_shape, num_classes, info)
    result = ev.evaluate(serve, test_x, test_y, num_classes, tta=cfg.tta)
    out = Path(args.out) if args.out else runs.timestamped_subdir(run_dir or model_dir.parent, "eval")
    out.mkdir(parents=True, exist_ok=True)
    result.update({"model": str(model_dir), "format": fmt, "dataset": info.dataset, "data_location": info.location})
    if fmt == "saved_model":
        result["saved_model"] = str(model_dir)
    if run_dir is not None and (run_dir / "summary.json").is_file():
        run_tta = runs.read_json(run_dir / "config.json").get("tta", "none")  # the figures the run recorded
        result.update(run_accuracy(ev.run_figures(runs.read_json(run_dir / "summary.json"), run_tta, cfg.tta), fmt))
    runs.write_json(out / "eval.json", result)
    figures.plot_confusion_matrix(result["confusion_matrix"], info.class_names, out / "confusion_matrix.png",
                                  title=f"{model_dir} on {info.dataset} test ({result['accuracy']:.4f})")
    print(f"test accuracy {result['accuracy']:.4f} on {result['n_test']} images; wrote {out}/eval.json")
    if cfg.tta != "none":
        print(f"(test-time augmentation {cfg.tta}; without it: {result['accuracy_no_tta']:.4f})")
    if result.get("run_test_accuracy_float32") is not None:
        print(f"(the run computed in 16 bits: test accuracy {result['run_test_accuracy']:.4f}; the same weights "
              f"in float32, as this file computes: {result['run_test_accuracy_float32']:.4f})")
    return 0


def run_accuracy(summary, fmt):
    """The run's own test accuracy to compare with, in eval.json.

    A run trained in bfloat16 or float16 serves its SavedModel at that precision, while model.onnx
    and model.tflite compute in float32 (their CPU runtimes have no 16-bit kernels for these ops):
    for those the run also recorded the float32 accuracy of the same weights, which they reproduce.
    """
    found = {"run_test_accuracy": summary.get("test_accuracy")}
    if fmt != "saved_model" and summary.get("test_accuracy_float32") is not None:
        found["run_test_accuracy_float32"] = summary["test_accuracy_float32"]
    return found


def main(argv=None):
    return run_cli(lambda: evaluate(argv))
