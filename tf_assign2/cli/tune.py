"""``python -m tf_assign2.tune cifar|mnist``: a keras-tuner search (``experiments.tune``), then the best retrained.

The fixed training flags are generated from the settings schema (each setting marked ``tune``).
"""

import argparse
import os
import re
from pathlib import Path

from tf_assign2 import config as settings
from tf_assign2.cli import (
    ArgumentParser,
    add_data_flags,
    add_setting_flag,
    check_data_location,
    positive_int,
    resolve_config,
    run_cli,
    start_tensorflow,
)
from tf_assign2.errors import UsageError
from tf_assign2.experiments.tune import TUNERS, Search, default_space, distribution, load_space, run_search


def build_parser():
    parser = ArgumentParser(
        prog="python -m tf_assign2.tune",
        description="Search learning rate, optimizer and units with keras-tuner, then retrain and export the best "
        "model. Re-running the same command continues the search (finished trials are kept).",
    )
    parser.add_argument("task", choices=settings.TASKS, help="cifar (LeNet5) or mnist (RNN/LSTM/GRU)")
    g = parser.add_argument_group("search")
    g.add_argument("--tuner", choices=TUNERS, default="random", help="(random)")
    g.add_argument("--max-trials", type=positive_int, default=None, help="trials for random/bayesian (10)")
    g.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs per trial and for the best model's retrain, random/bayesian (10)")
    g.add_argument("--max-epochs", type=positive_int, default=None,
                   help="hyperband: epochs of its longest trials and of the retrain (10)")
    g.add_argument("--factor", type=_factor, default=None, help="hyperband reduction factor (3)")
    g.add_argument("--initial-points", type=positive_int, default=None,
                   help="bayesian: random trials before the Gaussian process steers (3 x number of hyperparameters)")
    g.add_argument("--space", metavar="FILE", default=None,
                   help="YAML search space (see configs/tune/); default: the built-in space of the task")
    g.add_argument("--directory", default="runs/tune", help="parent of the project directory (runs/tune)")
    g.add_argument("--project-name", default=None, help="project directory name (<task>-<tuner>)")
    g.add_argument("--overwrite", action="store_true", help="delete the project and start the search again")
    g = parser.add_argument_group("distributed (keras-tuner chief/worker over gRPC)")
    g.add_argument("--chief", metavar="HOST:PORT", default=None,
                   help="the chief's address; alone: run as the chief (bind e.g. 0.0.0.0:8000)")
    g.add_argument("--worker", metavar="ID", default=None, help="run as a worker with this ID (e.g. tuner0)")
    add_data_flags(parser)
    g = parser.add_argument_group("fixed training settings (not searched; the best model's run uses them too)")
    for name in settings.TUNE_FLAGS:
        add_setting_flag(g, name)
    parser.set_defaults(config=None)
    return parser


def _factor(text):
    if not text.isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, got {text}")
    return int(text)


def _check_tuner_flags(args):
    """Flags that only one tuner reads are errors with the others, rather than silently ignored."""
    only = {"max_trials": ("random", "bayesian"), "epochs": ("random", "bayesian"),
            "max_epochs": ("hyperband",), "factor": ("hyperband",), "initial_points": ("bayesian",)}
    for name, tuners in only.items():
        if getattr(args, name) is not None and args.tuner not in tuners:
            hint = " (use --max-epochs)" if name == "epochs" else ""
            raise UsageError(f"--{name.replace('_', '-')} is for --tuner {' or '.join(tuners)}, not {args.tuner}{hint}")
    if args.tuner == "hyperband":
        args.epochs = args.max_epochs
    args.factor = args.factor or 3
    args.max_trials = args.max_trials or 10


def tune(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_tuner_flags(args)
    space = load_space(args.space, args.task) if args.space else default_space(args.task)
    role, env = distribution(args.chief, args.worker)
    if role == "worker" and args.overwrite:
        raise UsageError("--overwrite is for the chief; a worker continues the chief's project")
    base = resolve_config(args.task, args)
    if base.val_split <= 0:
        raise UsageError("--val-split 0: the search is scored on a validation split; give a fraction in (0, 1)")
    project_dir = Path(args.directory) / (args.project_name or f"{args.task}-{args.tuner}")
    if not re.fullmatch(r"[A-Za-z0-9_.=+-]+", project_dir.name) or project_dir.name in (".", ".."):
        raise UsageError(f"--project-name {project_dir.name}: expected a plain folder name")
    os.environ.update(env)
    search = Search(task=args.task, tuner=args.tuner, project_dir=project_dir, role=role,
                    max_trials=args.max_trials, initial_points=args.initial_points, factor=args.factor,
                    overwrite=args.overwrite)
    check_data_location(base)
    start_tensorflow(base.seed, base.deterministic)
    return run_search(search, base, space)


def main(argv=None):
    return run_cli(lambda: tune(argv))
