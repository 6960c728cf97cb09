"""``python -m tf_assign2.cifar`` / ``python -m tf_assign2.mnist``: one training run (``api.train``), or its resume."""

import sys

from tf_assign2 import api
from tf_assign2.cli import flag_values, run_cli, training_parser
from tf_assign2.config import flag_name
from tf_assign2.errors import UsageError


def train(task, argv=None):
    """Parse, then train (or resume) one run through the Python API; returns the exit code."""
    args = training_parser(task).parse_args(argv)
    given = flag_values(args)
    if args.resume:
        if given or args.config:
            extra = "--config" if args.config else flag_name(sorted(given)[0])
            raise UsageError(f"--resume continues a run with the settings it recorded; drop {extra}")
        run = api.resume(args.resume)
    else:
        run = api.train(api.settings(task, config=args.config, **given))
    return outcome(task, run.summary)


def outcome(task, summary):
    """The starter's last line, then the outcome; returns the exit code."""
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
