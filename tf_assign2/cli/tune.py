"""``python -m tf_assign2.tune cifar|mnist``: a keras-tuner search, then the best retrained (``api.tune``).

The fixed training flags are generated from the settings schema (each setting marked ``tune_flag``); the
hyperparameters and the built-in space come from it too (each setting's ``search``).
"""

import argparse

from tf_assign2 import api
from tf_assign2 import config as schema
from tf_assign2.cli import ArgumentParser, add_data_flags, add_setting_flag, flag_values, positive_int, run_cli
from tf_assign2.experiments.tune import TUNERS


def build_parser():
    parser = ArgumentParser(
        prog="python -m tf_assign2.tune",
        description="Search learning rate, optimizer and units with keras-tuner, then retrain and export the best "
        "model. Re-running the same command continues the search (finished trials are kept).",
    )
    parser.add_argument("task", choices=schema.TASKS, help="cifar (LeNet5) or mnist (RNN/LSTM/GRU)")
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
                   help="YAML search space; default: the built-in space of the task (--print-space shows it)")
    g.add_argument("--print-space", action="store_true",
                   help="print the task's built-in search space as a YAML file to copy and edit, and stop")
    g.add_argument("--directory", default="runs/tune", help="parent of the project directory (runs/tune)")
    g.add_argument("--project-name", default=None, help="project directory name (<task>-<tuner>)")
    g.add_argument("--overwrite", action="store_true", help="delete the project and start the search again")
    g = parser.add_argument_group("distributed (keras-tuner chief/worker over gRPC)")
    g.add_argument("--chief", metavar="HOST:PORT", default=None,
                   help="the chief's address; alone: run as the chief, listening on this machine only "
                   "(127.0.0.1:PORT; workers elsewhere reach it through an SSH tunnel, docs/experiments.md)")
    g.add_argument("--worker", metavar="ID", default=None, help="run as a worker with this ID (e.g. tuner0)")
    add_data_flags(parser)
    g = parser.add_argument_group("fixed training settings (not searched; the best model's run uses them too)")
    for name in schema.TUNE_FLAGS:
        add_setting_flag(g, name)
    parser.set_defaults(config=None)
    return parser


def _factor(text):
    if not text.isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, got {text}")
    return int(text)


OUTCOME_CODES = {"completed": 0, "worker": 0, "failed": 1, "diverged": 1, "interrupted": 130}


def tune(argv=None):
    args = build_parser().parse_args(argv)
    if args.print_space:
        from tf_assign2.experiments.tune import space_text

        print(space_text(args.task), end="")  # argparse has checked the task
        return 0
    fixed = {k: v for k, v in flag_values(args).items() if k not in ("task", "epochs")}  # the search's own
    results = api.tune(args.task, tuner=args.tuner, max_trials=args.max_trials, epochs=args.epochs,
                       max_epochs=args.max_epochs, factor=args.factor, initial_points=args.initial_points,
                       space=args.space, directory=args.directory, project_name=args.project_name,
                       overwrite=args.overwrite, chief=args.chief, worker=args.worker, **fixed)
    return OUTCOME_CODES[results.outcome]


def main(argv=None):
    return run_cli(lambda: tune(argv))
