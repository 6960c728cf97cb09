"""``python -m tf_assign2.cifar`` / ``python -m tf_assign2.mnist``: one training run, or its resume."""

from pathlib import Path

from tf_assign2 import config as settings
from tf_assign2 import runs
from tf_assign2.cli import load_data, resolve_config, run_cli, start_tensorflow, training_parser
from tf_assign2.errors import UsageError


def _resume_config(run_dir):
    run_dir = Path(run_dir)
    if not runs.is_run_dir(run_dir):
        raise UsageError(f"--resume {run_dir}: not a run directory (no config.json)")
    summary = run_dir / "summary.json"
    if summary.is_file() and runs.read_json(summary).get("status") == "completed":
        raise UsageError(f"--resume {run_dir}: this run already completed")
    return settings.from_dict(runs.read_json(run_dir / "config.json"), f"--resume {run_dir}/config.json")


def train(task, argv=None):
    """Parse, check the data location, start TensorFlow, train (or resume) one run; returns the exit code."""
    parser = training_parser(task)
    args = parser.parse_args(argv)
    cfg = _resume_config(args.resume) if args.resume else resolve_config(task, args)
    arrays, info = load_data(cfg)
    start_tensorflow(cfg.seed, cfg.deterministic, cfg.devices)

    from tf_assign2.analysis import visualization
    from tf_assign2.training.trainer import Trainer, recorded_plan

    if args.resume:
        run_dir = Path(args.resume)
        trainer = Trainer(cfg, arrays, info, plan=recorded_plan(run_dir))
    else:
        trainer = Trainer(cfg, arrays, info)
        run_dir = trainer.new_run_dir()
    print(f"run directory: {run_dir}", flush=True)
    figures = visualization.for_run(cfg, run_dir, arrays.test_x)
    return report(task, trainer.run(run_dir, resume=bool(args.resume), extra_callbacks=figures))


def report(task, summary):
    """The starter's last line, then the outcome; returns the exit code."""
    import sys

    status = summary["status"]
    if status == "completed":
        acc = summary["test_accuracy"]
        if task == "mnist":
            print("Optimization finished!")
        print(f"test accuracy {acc:g}" if task == "cifar" else f"Testing Accuracy: {acc:.4f}")
        print(f"{summary['images_per_sec']:.0f} images/s; outputs in {summary['run_dir']}")
        return 0
    if status == "diverged":
        print(
            f"error: run diverged ({summary.get('divergence') or 'loss became NaN/Inf'}); "
            f"summary in {summary['run_dir']}/summary.json",
            file=sys.stderr,
        )
        return 1
    print(f"interrupted: continue with --resume {summary['run_dir']}", file=sys.stderr)
    return 130


def main(task, argv=None):
    return run_cli(lambda: train(task, argv))
