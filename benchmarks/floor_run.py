"""The floor under a run's ``wall / training steps``: the default run with only what no run can skip.

    python -m benchmarks.floor_run {cifar,mnist} [training flags ...]

Starts Python, imports TensorFlow and Keras (as the CLI does), reads the data, builds and compiles
the same network with the same plan (precision, XLA, steps per call) through the same ``Trainer``,
and fits it with the same pipeline, validating after each epoch and scoring the test split after
each epoch (the assignment's per-epoch test accuracy). Nothing else: no visualisation, backups,
history.csv, TensorBoard, console lines, exports or figures; it ends its process as the commands do
(``cli.end_process``). It prints one JSON line; the benchmark
(``python -m benchmarks.bench --cli-only``) times the process from outside, as it times a CLI run,
so ``wall / training steps`` of this process is the least a run of that configuration can show on
the machine: TensorFlow's import and the per-epoch evaluations are part of every run.
"""

import json
import time


def floor_run(task, argv):
    """{'step_seconds', 'test_accuracy'} of the bare run of ``task`` with training flags ``argv``."""
    from tf_assign2 import api
    from tf_assign2.cli import flag_values, training_parser
    from tf_assign2.training.startup import start_tensorflow

    args = training_parser(task).parse_args(argv)
    config = api.settings(task, config=args.config, **flag_values(args))
    arrays, info = api.load_data(config)
    start_tensorflow(config.seed, config.deterministic, config.devices)

    from tf_assign2.training.callbacks import Throughput
    from tf_assign2.training.trainer import Trainer

    trainer = Trainer(config, arrays, info)
    model = trainer.compile(trainer.build_model())
    throughput, test_curve = Throughput(len(arrays.train_y)), trainer.test_curve()
    trainer.fit(model, callbacks=[test_curve, throughput], verbose=0)
    return {"step_seconds": round(sum(throughput.epoch_seconds), 2), "test_accuracy": test_curve.latest[2]}


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor_run", description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=("cifar", "mnist"), help="the training command whose floor to measure")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="its training flags (python -m tf_assign2.TASK --help)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = floor_run(args.task, args.flags)
    print(json.dumps({**result, "seconds_in_process": round(time.perf_counter() - started, 2)}))
    return 0


if __name__ == "__main__":
    from tf_assign2.cli import end_process

    end_process(main())
