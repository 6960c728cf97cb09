"""Where a default training run's wall time goes, phase by phase (a profile, not a guess).

    python -m benchmarks.profile_run cifar [training flags ...]
    python -m benchmarks.profile_run mnist --dataset fashion_mnist --model lenet5 --epochs 2

Runs ``python -m tf_assign2.<task>`` in this process with timers around each phase of the
Trainer (start-up, data, model, the fit, test metrics, export, figures) and around each callback's
hooks, and prints a table: seconds per phase, the training steps (history.csv's ``epoch_seconds``)
and what is left. Timers only: the run itself is unchanged (its outputs go to a temporary folder
unless ``--runs-dir`` is given).
"""

import collections
import contextlib
import functools
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()


def timed(owner, name, label, totals):
    """Replace ``owner.name`` by a wrapper adding its seconds to ``totals[label]``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - begun

    setattr(owner, name, wrapper)


def instrument(totals):
    """Timers on the phases of a run and on every callback hook that does work between steps."""
    from tf_assign2.training.startup import start_tensorflow

    begun = time.perf_counter()
    start_tensorflow()  # what the run's own start-up costs, timed here: the imports below need it
    totals["start-up: import TensorFlow and Keras"] += time.perf_counter() - begun
    import keras
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    from tf_assign2 import api, figures
    from tf_assign2.analysis import training_visuals as visualization
    from tf_assign2.training import callbacks, export, startup, trainer

    timed(startup, "start_tensorflow", "start-up: import TensorFlow and Keras", totals)
    timed(api, "load_data", "data: read and decode", totals)
    timed(trainer.Trainer, "build_model", "model: build", totals)
    timed(trainer.Trainer, "compile", "model: compile", totals)
    timed(trainer.Trainer, "fit", "fit (all of it)", totals)
    timed(TensorFlowTrainer, "evaluate", "fit: validation each epoch", totals)
    timed(trainer.Trainer, "test_metrics", "after fit: test metrics", totals)
    timed(export, "save_all", "after fit: export (model.keras, SavedModel)", totals)
    timed(figures, "plot_curves", "after fit: curves.png", totals)
    timed(trainer, "write_hparams", "after fit: HParams summary", totals)
    hooks = ("on_train_begin", "on_epoch_end", "on_train_end")
    for cls in (visualization.Visualization, callbacks.EpochBackup, callbacks.TestCurve, callbacks.Throughput,
                callbacks.ConsoleProgress, keras.callbacks.TensorBoard, keras.callbacks.CSVLogger):
        for hook in hooks:
            if hook in vars(cls):
                timed(cls, hook, f"fit: {cls.__name__}.{hook}", totals)


def step_seconds(runs_dir):
    from tf_assign2.runs import read_history

    (history,) = Path(runs_dir).glob("*/history.csv")
    return sum(read_history(history).get("epoch_seconds", []))


def profile(task, args):
    """{phase: seconds} of one run, with 'wall (in process)', 'training steps' and 'fit: other'."""
    from tf_assign2.cli import train

    totals = collections.defaultdict(float)
    instrument(totals)
    with contextlib.ExitStack() as stack:
        if "--runs-dir" not in args:
            args = [*args, "--runs-dir", stack.enter_context(tempfile.TemporaryDirectory(prefix="profile-"))]
        code = train.main(task, [*args, "--quiet"])
        if code:
            raise SystemExit(code)
        totals["wall (in process, from interpreter start)"] = time.perf_counter() - STARTED
        totals["fit: training steps (sum of epoch_seconds)"] = step_seconds(args[args.index("--runs-dir") + 1])
    inside = sum(v for k, v in totals.items() if k.startswith("fit: "))
    totals["fit: other (Keras between steps)"] = totals["fit (all of it)"] - inside
    return dict(totals)


def table(totals):
    wall = totals["wall (in process, from interpreter start)"]
    steps = totals["fit: training steps (sum of epoch_seconds)"]
    rows = ["| phase | seconds | share of wall |", "|---|---:|---:|"]
    for label, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        rows.append(f"| {label} | {seconds:.2f} | {100 * seconds / wall:.0f} % |")
    rows.append(f"\nwall / training steps: {wall / steps:.2f}")
    return "\n".join(rows)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_run", description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=("cifar", "mnist"), help="the training command to profile")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="its training flags (python -m tf_assign2.TASK --help)")
    args = parser.parse_args(argv)
    print(table(profile(args.task, args.flags)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
