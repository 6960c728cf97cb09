"""Command lines: argparse built from the settings schema, exit codes, errors, signals.

Every flag of a setting comes from its declaration in ``config.Config``; the modules here only
choose which settings a command takes, parse them and call the Python API (``tf_assign2.api``),
which does the work for the commands and for notebooks alike.

Exit codes: 0 done; 1 the run diverged (NaN loss); 2 bad input or a file that cannot be written
(one line on stderr, no traceback, no run directory left behind); 70 an unexpected error (a fault
of ours: one line naming the file that holds its traceback); 130 interrupted with Ctrl-C,
143 stopped by SIGTERM (what `kill`, schedulers and containers send); after either, what was done
is written: continue with --resume (or re-run the tune/sweep command).
"""

import argparse
import contextlib
import os
import signal
import sys

from tf_assign2 import config as schema
from tf_assign2.data.sources import source_help
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
    rule = schema.SETTINGS[name]
    convert = int if rule.kind is int else float
    return checked(convert, lambda v: schema.problem_with(name, rule, v) is None, rule.describe())


def _cudnn_choice(text):
    choices = {"auto": "auto", "on": True, "off": False}
    if text not in choices:
        raise argparse.ArgumentTypeError("expected auto, on or off")
    return choices[text]


def _device_list(text):
    return tuple(d.strip() for d in text.split(",") if d.strip())


def add_setting_flag(group, name, task=None):
    """One setting's flag, generated from its schema entry; its help shows the value a ``task`` run
    takes when the flag is not given (the schema's own default without a task)."""
    rule = schema.SETTINGS[name]
    default = schema.DEFAULTS[name] if task is None else schema.default_for(task, name)
    flag = schema.flag_name(name)
    shown = "" if default is None or isinstance(default, bool) else f" ({_shown(default)})"
    help_text = rule.help + shown
    if rule.kind is bool and default:  # the flag turns it off: say so
        help_text = f"turn off: {rule.help} (on by default)"
    kwargs = {"dest": name, "default": None, "help": help_text}
    if rule.kind is bool:
        kwargs["action"] = "store_false" if default else "store_true"
    elif name == "use_cudnn":
        kwargs.update(type=_cudnn_choice, metavar="{auto,on,off}")
    elif name == "devices":
        kwargs["type"] = _device_list
    elif name == "conv_filters":
        kwargs.update(type=positive_int, nargs=2)
    elif rule.choices is not None:
        kwargs["choices"] = tuple(rule.choices)  # the registries' names as they are now
    elif rule.kind in (int, float):
        kwargs["type"] = _setting_type(name)
    if rule.metavar:
        kwargs["metavar"] = rule.metavar
    group.add_argument(flag, **kwargs)


def _shown(value):
    return " ".join(map(str, value)) if isinstance(value, tuple) else f"{value:g}" if isinstance(value, float) else value


def add_setting_flags(parser, names, task=None):
    """Flags for ``names``, in schema order, under their schema groups (defaults shown for ``task``)."""
    groups = {}
    for name in schema.SETTINGS:
        if name in names:
            group_name = schema.SETTINGS[name].group
            if group_name not in groups:
                groups[group_name] = parser.add_argument_group(group_name, source_help() if group_name == "data" else None)
            add_setting_flag(groups[group_name], name, task)


DATA_SETTINGS = tuple(n for n, s in schema.SETTINGS.items() if s.group == "data" and n != "task")
# What a command that reads only the test split (evaluate, visualize) can use: not ntrain or val_split.
TEST_DATA_SETTINGS = tuple(n for n in DATA_SETTINGS if n not in ("ntrain", "val_split"))
TRAINING_SETTINGS = tuple(n for n in schema.SETTINGS if n != "task")


def add_data_flags(parser, task=None, names=DATA_SETTINGS):
    add_setting_flags(parser, names, task)


def training_parser(task):
    parser = ArgumentParser(
        prog=f"python -m tf_assign2.{task}",
        description=(
            "Train LeNet5 on the assignment's CIFAR10 (TF2 port of trainCifarStarterCode.py)."
            if task == "cifar"
            else "Train a BasicRNN/LSTM/GRU (or LeNet5) on MNIST rows (port of lstmMNISTStarterCode.py)."
        ),
    )
    add_setting_flags(parser, TRAINING_SETTINGS, task)
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue an interrupted run from its last completed epoch, with the settings it "
                        "recorded (no other flags)")
    parser.add_argument("--config", metavar="FILE", default=None, help="YAML file of settings; flags override it")
    return parser


def flag_values(args):
    """The settings given as flags (None: not given), each checked by its schema: a value argparse let
    through (a device list, a pair of filter counts) is refused naming its flag."""
    return {k: schema.check_value(k, v) for k, v in vars(args).items() if k in schema.SETTINGS and v is not None}


class _Terminated:
    """SIGTERM handled like Ctrl-C: it raises KeyboardInterrupt where the program is, so training
    writes what it has done exactly as for Ctrl-C; the exit code then says which signal it was."""

    received = False

    @classmethod
    def handler(cls, signum, frame):
        cls.received = True
        raise KeyboardInterrupt


def run_cli(main):
    """Run ``main()`` turning UsageError (and a failed write) into one stderr line and exit code 2.

    While it runs, SIGTERM is handled like Ctrl-C (where nobody else handles it); the handler found
    is put back when it returns, so a command's ``main(argv)`` called from a notebook leaves none behind.
    """
    with _sigterm_as_interrupt():
        return _run(main)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    previous = signal.getsignal(signal.SIGTERM)
    install = previous in (signal.SIG_DFL, None) and _in_main_thread()
    if install:
        _Terminated.received = False
        signal.signal(signal.SIGTERM, _Terminated.handler)
    try:
        yield
    finally:
        if install:
            signal.signal(signal.SIGTERM, previous)


def _run(main):
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
    except Exception as e:  # a fault of ours, not of the input: its own exit code, the traceback in a file
        print(f"error: unexpected {type(e).__name__} ({_one_line(e)}); the full traceback is in "
              f"{_write_traceback()}; please report it", file=sys.stderr)
        return UNEXPECTED
    return 143 if code == 130 and _Terminated.received else code


UNEXPECTED = 70  # EX_SOFTWARE: not 1, which means the run diverged


def _one_line(error):
    text = " ".join(str(error).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _write_traceback():
    """The traceback being handled, in a new file of the temporary folder; returns its path."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="tf-assign2-error-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write(f"{' '.join(sys.argv)}\n\n{traceback.format_exc()}")
    return path


def callable_as(module_name, function):
    """Make the command module ``tf_assign2.<function>`` callable as the API function of the same name.

    ``python -m tf_assign2.sweep`` needs a module ``tf_assign2.sweep``; once something imports it, it
    hides the package's ``sweep`` function (``tf_assign2.sweep(...)``) behind the module. A module
    whose class defines ``__call__`` (Python's documented way to customise a module object) keeps
    both working: the command, and the call.
    """
    import types

    from tf_assign2 import api

    target = getattr(api, function)

    class CommandModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return target(*args, **kwargs)

    CommandModule.__call__.__doc__ = target.__doc__
    sys.modules[module_name].__class__ = CommandModule


def end_process(code):
    """Exit a command's process (``python -m tf_assign2.<command>``) with ``code``, without the
    interpreter's final sweeps of the cyclic garbage collector.

    With TensorFlow loaded those sweeps walk millions of objects, for seconds (docs/speed.md, "The
    exit"), for nothing, since every file a command writes is closed by the time it returns. ``gc.freeze()`` takes the objects out of the
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
