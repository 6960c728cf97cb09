"""Command lines: argparse, --config YAML files, exit codes and error messages. No training logic.

Exit codes: 0 done; 1 the run diverged (NaN loss); 2 bad input (one line on stderr, no
traceback, no run directory left behind); 130 interrupted with Ctrl-C (what was done is
written; continue with --resume).
"""

import argparse
import contextlib
import dataclasses
import difflib
import os
import shutil
import sys
from pathlib import Path

from tf_assign2 import config as config_module
from tf_assign2.data import source_help
from tf_assign2.errors import UsageError


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit code 2."""

    def error(self, message):
        raise UsageError(message)


def _checked(convert, ok, expected):
    """An argparse type: convert the text, check it, and say what was expected if not."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    parse.__name__ = expected
    return parse


positive_float = _checked(float, lambda v: v > 0 and v != float("inf"), "a number > 0")
fraction = _checked(float, lambda v: 0 <= v < 1, "a fraction in [0, 1)")
positive_int = _checked(int, lambda v: v >= 1, "an integer >= 1")
any_int = _checked(int, lambda v: True, "an integer")
any_float = _checked(float, lambda v: True, "a number")


def cudnn_choice(text):
    choices = {"auto": "auto", "on": True, "off": False}
    if text not in choices:
        raise argparse.ArgumentTypeError("expected auto, on or off")
    return choices[text]


def device_list(text):
    return tuple(d.strip() for d in text.split(",") if d.strip())


def add_data_flags(parser):
    g = parser.add_argument_group("data", source_help())
    g.add_argument("--dataset", choices=["cifar10", "mnist", "fashion_mnist"], default=None,
                   help="which dataset (default: cifar10 for cifar, mnist for mnist)")
    g.add_argument("--source", choices=["auto", "png", "idx", "tfds"], default=None,
                   help="force a source instead of the resolution order (default auto)")
    g.add_argument("--data-dir", default=None, help="a PNG-layout or idx folder, or a folder holding CIFAR10/ and MNIST/")
    g.add_argument("--tfds-data-dir", default=None, help="tensorflow-datasets data_dir")
    g.add_argument("--ntrain", type=positive_int, default=None, help="training images per class (starter's ntrain)")
    g.add_argument("--ntest", type=positive_int, default=None, help="test images per class (starter's ntest)")
    g.add_argument("--val-split", type=fraction, default=None, help="validation fraction carved from train (0.1)")
    g.add_argument("--native", action="store_true", default=None,
                   help="tfds CIFAR-10 as 32x32x3 RGB instead of the assignment's 28x28 grayscale")


def add_train_flags(parser):
    g = parser.add_argument_group("model")
    g.add_argument("--model", choices=config_module.MODELS, default=None, help="lenet5 or rnn")
    g.add_argument("--cell", choices=["rnn", "lstm", "gru"], default=None, help="recurrent cell (lstm)")
    g.add_argument("--units", type=positive_int, default=None, help="nHidden: recurrent units (128)")
    g.add_argument("--layers", type=positive_int, default=None, help="stacked recurrent layers (1)")
    g.add_argument("--fc-units", type=positive_int, default=None, help="LeNet5 fc1 units (1024)")
    g.add_argument("--conv-filters", type=positive_int, nargs=2, default=None, help="LeNet5 conv1 conv2 filters (32 64)")
    g.add_argument("--init", choices=["starter", "keras"], default=None,
                   help="starter: truncated normal 0.1 / bias 0.1 (RNN output: random normal); keras: Glorot (default starter)")
    g.add_argument("--use-cudnn", type=cudnn_choice, default=None, help="LSTM/GRU cuDNN kernel: auto, on, off")
    g = parser.add_argument_group("training")
    g.add_argument("--optimizer", choices=config_module.OPTIMIZERS, default=None, help="(adam)")
    g.add_argument("--lr", type=positive_float, default=None, help="learning rate (1e-3; 2e-3 for adam on the RNN classifiers)")
    g.add_argument("--momentum", type=any_float, default=None, help="momentum for --optimizer momentum (0.9)")
    g.add_argument("--clipnorm", type=positive_float, default=None, help="clip the global gradient norm (off)")
    g.add_argument("--augment-shift", type=any_int, default=None, metavar="PIXELS",
                   help="shift each training image by a random 0..PIXELS pixels per axis (0: off, the starters')")
    g.add_argument("--schedule", choices=config_module.SCHEDULES, default=None,
                   help="learning rate: constant (the starters') or cosine decay to 0 over the run")
    g.add_argument("--epochs", type=positive_int, default=None, help="epochs (10)")
    g.add_argument("--steps", type=positive_int, default=None, help="train this many steps instead (starter CIFAR)")
    g.add_argument("--training-iters", type=positive_int, default=None,
                   help="train on this many samples instead (starter MNIST's trainingIters)")
    g.add_argument("--display-step", type=positive_int, default=None,
                   help="print the starter's progress line every N steps")
    g.add_argument("--batch-size", type=positive_int, default=None, help="(50 cifar, 128 mnist)")
    g.add_argument("--seed", type=any_int, default=None, help="(0)")
    g.add_argument("--deterministic", action="store_true", default=None, help="TF op determinism: repeatable runs")
    g = parser.add_argument_group("execution")
    g.add_argument("--jit", choices=config_module.JIT, default=None, help="XLA: auto = where measured faster (GPU: all but cuDNN LSTM/GRU; CPU: LSTM/GRU only)")
    g.add_argument("--steps-per-execution", type=positive_int, default=None, help="steps per compiled call (auto)")
    g.add_argument("--precision", choices=config_module.PRECISIONS, default=None, help="auto (LeNet5: bfloat16 compute on CPUs with native bfloat16 instructions; otherwise float32), float32, mixed (float16, GPU) or bfloat16")
    g.add_argument("--strategy", choices=config_module.STRATEGIES, default=None, help="default or mirrored (all GPUs)")
    g.add_argument("--devices", type=device_list, default=None,
                   help="devices for --strategy mirrored, e.g. GPU:0,GPU:1 (CPU:0,CPU:1 splits the CPU, for testing)")
    g = parser.add_argument_group("outputs")
    g.add_argument("--runs-dir", default=None, help="where run directories are created (runs)")
    g.add_argument("--no-test-curve", dest="test_curve", action="store_false", default=None,
                   help="skip the per-epoch test accuracy of the curves")
    g.add_argument("--no-visualize", dest="visualize", action="store_false", default=None,
                   help="skip the filter figures, activation statistics and TensorBoard summaries")
    g.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue an interrupted run from its last completed epoch (other flags are ignored)")
    parser.add_argument("--config", metavar="FILE", default=None, help="YAML file of settings; flags override it")


def training_parser(task):
    parser = ArgumentParser(
        prog=f"python -m tf_assign2.{task}",
        description=(
            "Train LeNet5 on the assignment's CIFAR10 (TF2 port of trainCifarStarterCode.py)."
            if task == "cifar"
            else "Train a BasicRNN/LSTM/GRU (or LeNet5) on MNIST rows (port of lstmMNISTStarterCode.py)."
        ),
    )
    add_data_flags(parser)
    add_train_flags(parser)
    return parser


# --------------------------------------------------------------------------- config files


def load_yaml(path):
    import yaml

    try:
        with open(path) as f:
            values = yaml.safe_load(f)
    except OSError as e:
        raise UsageError(f"--config {path}: cannot read ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise UsageError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UsageError(f"--config {path}: expected a mapping of settings at the top level")
    return values


def config_file_values(parser, path):
    """YAML settings, checked against the parser's flags: unknown keys and wrong types are errors."""
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config", "resume")}
    values = {}
    for key, value in load_yaml(path).items():
        dest = str(key).replace("-", "_")
        if dest not in actions:
            close = difflib.get_close_matches(dest, list(actions), n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}?" if close else f"expected one of {', '.join(sorted(actions))}"
            raise UsageError(f"--config {path}: unknown key '{key}' ({hint})")
        action = actions[dest]
        try:
            values[dest] = _convert(action, value)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
            raise UsageError(f"--config {path}: {key}: {e}") from None
    return values


def _convert(action, value):
    if action.nargs == 0:  # store_true / store_false flags
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return value
    if action.nargs == 2:
        if not isinstance(value, list) or len(value) != 2:
            raise TypeError(f"expected a list of two values, got {value!r}")
        return [_convert_one(action, v) for v in value]
    return _convert_one(action, value)


def _convert_one(action, value):
    """One YAML value through the flag's own parser, so files and flags accept the same things."""
    if value is None:
        return None
    convert = action.type
    if convert is cudnn_choice and isinstance(value, bool):  # YAML reads on/off as booleans
        return value
    if convert is None:
        if not isinstance(value, str):
            raise TypeError(f"expected text, got {value!r}")
    elif isinstance(value, (bool, list, dict)) or (convert in (any_int, positive_int) and isinstance(value, float)):
        raise TypeError(f"expected {getattr(convert, '__name__', 'a value')}, got {value!r}")
    else:
        value = convert(str(value))
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"expected one of {', '.join(map(str, action.choices))}, got {value!r}")
    return value


def resolve_config(task, args, parser):
    """Dataclass defaults < task defaults < --config file < flags; then validated."""
    values = config_module.task_defaults(task)
    if args.config:
        values.update({k: v for k, v in config_file_values(parser, args.config).items() if v is not None})
    values.update({k: v for k, v in vars(args).items() if v is not None and k not in ("config", "resume")})
    fields = {f.name for f in dataclasses.fields(config_module.Config)}
    cfg = config_module.Config(**{k: v for k, v in values.items() if k in fields})
    if cfg.conv_filters is not None:
        cfg.conv_filters = tuple(cfg.conv_filters)
    return config_module.validate(cfg)


# --------------------------------------------------------------------------- TF start-up


@contextlib.contextmanager
def quiet_native_stderr():
    """Hide TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) from stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def start_tensorflow(seed=None, deterministic=False, devices=None):
    """Import TensorFlow quietly, then seed and configure it before any op runs.

    ``devices`` naming CPU:1 or higher splits the CPU into that many logical devices, so
    MirroredStrategy can be exercised without GPUs.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_native_stderr():
        import keras
        import tensorflow as tf

        cpu_ids = [int(d.split(":")[-1]) for d in devices or () if d.upper().startswith("CPU")]
        if cpu_ids and max(cpu_ids) > 0:
            (cpu,) = tf.config.list_physical_devices("CPU")
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(max(cpu_ids) + 1)]
            )
        tf.config.list_physical_devices("GPU")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def run_cli(main):
    """Run ``main()`` turning UsageError into one stderr line and exit code 2."""
    try:
        return main()
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training (which records it itself): stop quietly
        print("interrupted", file=sys.stderr)
        return 130


# --------------------------------------------------------------------------- training


def _resume_config(run_dir):
    from tf_assign2 import runs

    run_dir = Path(run_dir)
    if not runs.is_run_dir(run_dir):
        raise UsageError(f"--resume {run_dir}: not a run directory (no config.json)")
    summary = run_dir / "summary.json"
    if summary.is_file() and runs.read_json(summary).get("status") == "completed":
        raise UsageError(f"--resume {run_dir}: this run already completed")
    return config_module.validate(config_module.from_dict(runs.read_json(run_dir / "config.json")))


def train(task, argv=None):
    parser = training_parser(task)
    args = parser.parse_args(argv)
    cfg = _resume_config(args.resume) if args.resume else resolve_config(task, args, parser)
    start_tensorflow(cfg.seed, cfg.deterministic, cfg.devices)

    from tf_assign2 import data, models, runs
    from tf_assign2 import train as trainer

    cfg = trainer.resolve_execution(cfg)
    trainer.setup_precision(cfg)
    arrays, info = data.load_arrays(cfg)
    strategy = trainer.distribution_strategy(cfg)
    with strategy.scope():
        model = models.build(cfg, info.image_shape, info.num_classes)
    if args.resume:
        run_dir = Path(args.resume)
    else:
        run_dir = runs.new_run_dir(cfg)
        try:
            trainer.write_config(cfg, info, run_dir)
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
    print(f"run directory: {run_dir}", flush=True)
    with strategy.scope():
        summary = trainer.run(cfg, arrays, info, model, run_dir, resume=bool(args.resume))
    return report(task, summary)


def report(task, summary):
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


def train_main(task, argv=None):
    return run_cli(lambda: train(task, argv))


# --------------------------------------------------------------------------- evaluation


def evaluation_parser():
    parser = ArgumentParser(
        prog="python -m tf_assign2.evaluate",
        description="Evaluate an exported SavedModel (a run directory or a saved_model/ folder) on a test split.",
    )
    parser.add_argument("path", help="run directory or SavedModel directory")
    add_data_flags(parser)
    parser.add_argument("--out", default=None, help="folder for eval.json and confusion_matrix.png "
                        "(default: a new eval-<timestamp>/ in the run directory)")
    return parser


def evaluate(argv=None):
    parser = evaluation_parser()
    args = parser.parse_args(argv)
    from tf_assign2 import evaluate as ev
    from tf_assign2 import runs

    model_dir = ev.saved_model_path(args.path)
    run_dir = model_dir.parent if runs.is_run_dir(model_dir.parent) else None
    values = {}
    if run_dir is not None:
        values = runs.read_json(run_dir / "config.json")
    values.update({k: v for k, v in vars(args).items() if v is not None and k not in ("path", "out")})
    values.setdefault("dataset", "cifar10")
    cfg = config_module.validate(config_module.from_dict(values))
    start_tensorflow()

    from tf_assign2 import data, viz

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
    viz.plot_confusion_matrix(result["confusion_matrix"], info.class_names, out / "confusion_matrix.png",
                              title=f"{model_dir} on {info.dataset} test ({result['accuracy']:.4f})")
    print(f"test accuracy {result['accuracy']:.4f} on {result['n_test']} images; wrote {out}/eval.json")
    return 0


def evaluate_main(argv=None):
    return run_cli(lambda: evaluate(argv))
