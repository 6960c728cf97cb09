"""Command lines: argparse built from the settings schema, --config YAML files, exit codes, errors.

Every flag of a setting comes from its declaration in ``config.Config``; the modules here only
choose which settings a command takes and hold no training logic.

Exit codes: 0 done; 1 the run diverged (NaN loss); 2 bad input or a file that cannot be written
(one line on stderr, no traceback, no run directory left behind); 130 interrupted with Ctrl-C,
143 stopped by SIGTERM (what `kill`, schedulers and containers send); after either, what was done
is written: continue with --resume (or re-run the tune/sweep command).
"""

import argparse
import contextlib
import os
import signal
import sys

from tf_assign2 import config as settings
from tf_assign2.data.sources import resolve_location, source_help
from tf_assign2.errors import UsageError


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit code 2."""

    def error(self, message):
        raise UsageError(message)


def checked(convert, ok, expected):
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


positive_int = checked(int, lambda v: v >= 1, "an integer >= 1")
any_int = checked(int, lambda v: True, "an integer")


def _setting_type(name):
    """The argparse type of a numeric setting: its schema check, with the schema's words."""
    rule = settings.SETTINGS[name]
    convert = int if rule.kind is int else float
    return checked(convert, lambda v: settings._problem(name, rule, v) is None, rule.describe())


def _cudnn_choice(text):
    choices = {"auto": "auto", "on": True, "off": False}
    if text not in choices:
        raise argparse.ArgumentTypeError("expected auto, on or off")
    return choices[text]


def _device_list(text):
    return tuple(d.strip() for d in text.split(",") if d.strip())


def add_setting_flag(group, name):
    """One setting's flag, generated from its schema entry."""
    rule, default = settings.SETTINGS[name], settings.DEFAULTS[name]
    flag = settings.flag_name(name)
    shown = "" if default is None or isinstance(default, bool) else f" ({' '.join(map(str, default)) if isinstance(default, tuple) else default})"
    kwargs = {"dest": name, "default": None, "help": rule.help + shown}
    if rule.kind is bool:
        kwargs["action"] = "store_false" if default else "store_true"
    elif name == "use_cudnn":
        kwargs.update(type=_cudnn_choice, metavar="{auto,on,off}")
    elif name == "devices":
        kwargs["type"] = _device_list
    elif name == "conv_filters":
        kwargs.update(type=positive_int, nargs=2)
    elif rule.choices is not None:
        kwargs["choices"] = rule.choices
    elif rule.kind in (int, float):
        kwargs["type"] = _setting_type(name)
    if rule.metavar:
        kwargs["metavar"] = rule.metavar
    group.add_argument(flag, **kwargs)


def add_setting_flags(parser, names):
    """Flags for ``names``, in schema order, under their schema groups."""
    groups = {}
    for name in settings.SETTINGS:
        if name in names:
            group_name = settings.SETTINGS[name].group
            if group_name not in groups:
                groups[group_name] = parser.add_argument_group(group_name, source_help() if group_name == "data" else None)
            add_setting_flag(groups[group_name], name)


DATA_SETTINGS = tuple(n for n, s in settings.SETTINGS.items() if s.group == "data" and n != "task")
TRAINING_SETTINGS = tuple(n for n in settings.SETTINGS if n != "task")


def add_data_flags(parser):
    add_setting_flags(parser, DATA_SETTINGS)


def training_parser(task):
    parser = ArgumentParser(
        prog=f"python -m tf_assign2.{task}",
        description=(
            "Train LeNet5 on the assignment's CIFAR10 (TF2 port of trainCifarStarterCode.py)."
            if task == "cifar"
            else "Train a BasicRNN/LSTM/GRU (or LeNet5) on MNIST rows (port of lstmMNISTStarterCode.py)."
        ),
    )
    add_setting_flags(parser, TRAINING_SETTINGS)
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue an interrupted run from its last completed epoch (other flags are ignored)")
    parser.add_argument("--config", metavar="FILE", default=None, help="YAML file of settings; flags override it")
    return parser


# --------------------------------------------------------------------------- config files


load_yaml = settings.read_yaml


def flag_values(args):
    """The settings given as flags (None: not given)."""
    return {k: v for k, v in vars(args).items() if k in settings.SETTINGS and v is not None}


def resolve_config(task, args, parser=None):
    """Dataclass defaults < task defaults < --config file < flags; then validated."""
    file_values = {}
    if getattr(args, "config", None):
        file_values = settings.file_values(settings.read_yaml(args.config), f"--config {args.config}")
    return settings.build(task, file_values, flag_values(args))


def check_data_location(config):
    """Fail on a missing or malformed data folder now, before TensorFlow takes seconds to start."""
    return resolve_location(config.dataset, config.data_dir, config.source)


def load_data(config):
    """The run's arrays, read before TensorFlow starts when they are local files (PNG, idx): every
    data error - a bad file, bad labels, a huge PNG header - then comes within a second.
    tensorflow-datasets needs TensorFlow, so it is started first for that source."""
    source, _ = check_data_location(config)
    if source == "tfds":
        start_tensorflow(config.seed, config.deterministic, config.devices)
    from tf_assign2 import data

    return data.load_arrays(config)


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


@contextlib.contextmanager
def scikit_learn_hidden_from_keras():
    """Import Keras without its scikit-learn wrappers' import of scikit-learn.

    ``import keras`` imports scikit-learn (and SciPy's statistics) for ``keras.wrappers``, which no
    command here uses: 0.6-0.8 s of every command's start-up on 2 cores. Keras treats a missing
    scikit-learn as "wrappers unavailable", so it is hidden for the import and importable again
    right after (keras-tuner's Bayesian search imports it when a search needs it). Only a first
    import of Keras is affected; where Keras or scikit-learn is already loaded nothing changes.
    """
    hide = "keras" not in sys.modules and "sklearn" not in sys.modules
    if hide:
        sys.modules["sklearn"] = None  # an ImportError for `import sklearn`
    try:
        yield
    finally:
        if hide and sys.modules.get("sklearn", False) is None:
            del sys.modules["sklearn"]


def start_tensorflow(seed=None, deterministic=False, devices=None):
    """Import TensorFlow quietly, then seed and configure it before any op runs.

    ``devices`` naming CPU:1 or higher splits the CPU into that many logical devices, so
    MirroredStrategy can be exercised without GPUs. Safe to call again in one process.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_native_stderr(), scikit_learn_hidden_from_keras():
        import keras
        import tensorflow as tf

        cpu_ids = [int(d.split(":")[-1]) for d in devices or () if d.upper().startswith("CPU")]
        if cpu_ids and max(cpu_ids) > 0:
            (cpu,) = tf.config.list_physical_devices("CPU")
            wanted = max(cpu_ids) + 1
            if len(tf.config.get_logical_device_configuration(cpu) or ()) != wanted:
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(wanted)]
                )
        tf.config.list_physical_devices("GPU")
    # One process trains many models in sweeps and searches; TF's warning that a new model's
    # functions were traced again is expected there, not something a user can act on.
    tf.get_logger().setLevel("ERROR")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


class _Terminated:
    """SIGTERM handled like Ctrl-C: it raises KeyboardInterrupt where the program is, so training
    writes what it has done exactly as for Ctrl-C; the exit code then says which signal it was."""

    received = False

    @classmethod
    def handler(cls, signum, frame):
        cls.received = True
        raise KeyboardInterrupt


def run_cli(main):
    """Run ``main()`` turning UsageError (and a failed write) into one stderr line and exit code 2."""
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None) and _in_main_thread():
        signal.signal(signal.SIGTERM, _Terminated.handler)
    try:
        code = main()
    except UsageError as e:
        print("error: " + " ".join(str(e).splitlines()), file=sys.stderr)  # one line, whatever a file name holds
        return 2
    except OSError as e:  # disk full, read-only folder, a name too long: the file and the reason, in one line
        print(f"error: {e.filename or 'a file'}: {e.strerror or e}", file=sys.stderr)
        return 2
    except (MemoryError, _out_of_memory_error()) as e:
        print(f"error: out of memory ({type(e).__name__}); use a smaller model or --batch-size", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training (which records it itself): stop quietly
        print("interrupted", file=sys.stderr)
        code = 130
    return 143 if code == 130 and _Terminated.received else code


def end_process(code):
    """Exit a command's process (``python -m tf_assign2.<command>``) with ``code``, without the
    interpreter's final sweeps of the cyclic garbage collector.

    With TensorFlow loaded those sweeps walk millions of objects: 1.3 s at every exit on 2 cores,
    a tenth of the default MNIST run's training steps, for nothing, since every file a command
    writes is closed by the time it returns. ``gc.freeze()`` takes the objects out of the
    collector's sight; atexit handlers still run and modules are still torn down. Only for the
    process's own exit: a caller of ``main(argv)`` (a notebook, the tests) keeps its collector.
    """
    import gc

    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()
    sys.exit(code)


def _out_of_memory_error():
    """TensorFlow's out-of-memory error if TensorFlow is loaded (evaluated only when something was raised)."""
    tf = sys.modules.get("tensorflow")
    return tf.errors.ResourceExhaustedError if tf is not None else MemoryError


def _in_main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()
