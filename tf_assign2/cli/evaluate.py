"""``python -m tf_assign2.evaluate RUN_OR_SAVED_MODEL``: test accuracy, loss and confusion matrix of an export."""

from pathlib import Path

from tf_assign2 import config as settings
from tf_assign2 import runs
from tf_assign2.cli import ArgumentParser, add_data_flags, check_data_location, flag_values, run_cli, start_tensorflow


def parser():
    p = ArgumentParser(
        prog="python -m tf_assign2.evaluate",
        description="Evaluate an exported SavedModel (a run directory or a saved_model/ folder) on a test split.",
    )
    p.add_argument("path", help="run directory or SavedModel directory")
    add_data_flags(p)
    p.add_argument("--out", default=None, help="folder for eval.json and confusion_matrix.png "
                   "(default: a new eval-<timestamp>/ in the run directory)")
    return p


def evaluate(argv=None):
    args = parser().parse_args(argv)
    from tf_assign2.analysis import evaluation as ev

    model_dir = ev.saved_model_path(args.path)
    run_dir = model_dir.parent if runs.is_run_dir(model_dir.parent) else None
    if run_dir is not None:  # the run's own data settings, data flags override them
        cfg = settings.from_dict({**runs.read_json(run_dir / "config.json"), **flag_values(args)},
                                 f"{run_dir}/config.json")
    else:  # a bare SavedModel: the data flags alone (default: the assignment's CIFAR10)
        cfg = settings.build("cifar", flag_values(args))
    check_data_location(cfg)
    start_tensorflow()

    from tf_assign2 import data, figures

    serve, input_shape, num_classes, _ = ev.load_serving_function(model_dir)
    test_x, test_y, info = data.load_test_split(cfg)
    ev.check_compatible(model_dir, input_shape, num_classes, info)
    result = ev.evaluate(serve, test_x, test_y, num_classes)
    out = Path(args.out) if args.out else runs.timestamped_subdir(run_dir or model_dir.parent, "eval")
    out.mkdir(parents=True, exist_ok=True)
    result.update({"saved_model": str(model_dir), "dataset": info.dataset, "data_location": info.location})
    if run_dir is not None and (run_dir / "summary.json").is_file():
        result["run_test_accuracy"] = runs.read_json(run_dir / "summary.json").get("test_accuracy")
    runs.write_json(out / "eval.json", result)
    figures.plot_confusion_matrix(result["confusion_matrix"], info.class_names, out / "confusion_matrix.png",
                                  title=f"{model_dir} on {info.dataset} test ({result['accuracy']:.4f})")
    print(f"test accuracy {result['accuracy']:.4f} on {result['n_test']} images; wrote {out}/eval.json")
    return 0


def main(argv=None):
    return run_cli(lambda: evaluate(argv))
