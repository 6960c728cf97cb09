"""The Python API a notebook uses: one constructor of settings with the task's defaults, train returning
a Run bound to its folder, registries open at run time, a call that leaves the process's global state as
it found it, and the command modules that stay callable as the API functions of their name."""

import importlib
import logging
import os
import random
import signal

import matplotlib
import numpy as np
import pytest
from conftest import DATA

import tf_assign2 as ta
from tf_assign2 import config as schema
from tf_assign2.cli import training_parser
from tf_assign2.errors import UsageError
from tf_assign2.models import MODELS
from tf_assign2.optimizers import OPTIMIZERS

TINY = dict(data_dir=str(DATA / "CIFAR10"), ntrain=10, ntest=5, epochs=1, optimizer="sgd", lr=0.01)


# --------------------------------------------------------------------------- settings


def test_settings_take_the_tasks_defaults_however_they_are_made():
    mnist = ta.settings("mnist", cell="gru", epochs=3)
    assert (mnist.dataset, mnist.model, mnist.batch_size, mnist.lr, mnist.cell, mnist.epochs) == \
        ("mnist", "rnn", 128, 2e-3, "gru", 3)
    assert schema.validate(schema.Config(task="mnist")) == ta.settings("mnist")  # no cifar defaults left behind
    cifar = ta.settings("cifar")
    assert (cifar.dataset, cifar.model, cifar.batch_size, cifar.lr) == ("cifar10", "lenet5", 50, 1e-3)
    assert repr(mnist) == "Config(task='mnist', cell='gru', epochs=3)"  # what differs from the task's defaults


def test_settings_refuse_bad_names_and_values_in_one_sentence(tmp_path):
    with pytest.raises(UsageError, match=r"settings\(\): unknown setting 'learning_rate'"):
        ta.settings("cifar", learning_rate=0.1)
    with pytest.raises(UsageError, match=r"unknown setting 'epoch' \(did you mean epochs\?\)"):
        ta.settings("cifar", epoch=3)
    with pytest.raises(UsageError, match=r"settings\(lr=...\): -1: expected a learning rate > 0"):
        ta.settings("cifar", lr=-1)
    with pytest.raises(UsageError, match="expected a task, one of cifar, mnist"):
        ta.settings("imagenet")
    (tmp_path / "c.yaml").write_text("epochs: 7\nlr: 0.5\n")
    config = ta.settings("cifar", config=tmp_path / "c.yaml", lr=0.25)  # file < values, as --config < flags
    assert (config.epochs, config.lr) == (7, 0.25)


# --------------------------------------------------------------------------- registries


def _mlp(config, input_shape, num_classes):
    import keras

    inputs = keras.Input(input_shape)
    hidden = keras.layers.Dense(config.fc_units, activation="relu")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes, dtype="float32")(hidden))


@pytest.fixture
def registered():
    """A model and an optimizer registered as a notebook would, removed again afterwards."""
    import keras

    ta.register_model("tiny_mlp", _mlp, settings=("fc_units",))
    ta.register_optimizer("tiny_nesterov", keras.optimizers.SGD, momentum=0.9, nesterov=True)
    yield
    MODELS.pop("tiny_mlp", None)
    OPTIMIZERS.pop("tiny_nesterov", None)


def test_names_registered_at_run_time_are_choices_of_flags_files_and_calls(registered, tmp_path):
    parsed = training_parser("cifar").parse_args(["--model", "tiny_mlp", "--optimizer", "tiny_nesterov"])
    assert (parsed.model, parsed.optimizer) == ("tiny_mlp", "tiny_nesterov")
    config = ta.settings("cifar", model="tiny_mlp", optimizer="tiny_nesterov", fc_units=8)
    assert schema.ignored_by_model("tiny_mlp", "conv_filters") and not schema.ignored_by_model("tiny_mlp", "fc_units")
    from tf_assign2.optimizers import make_optimizer

    optimizer = make_optimizer(config)
    assert (type(optimizer).__name__, optimizer.momentum, optimizer.nesterov) == ("SGD", 0.9, True)
    MODELS.pop("tiny_mlp")  # unregistered: refused again, by flags and calls alike
    with pytest.raises(UsageError, match="--model: invalid choice: 'tiny_mlp' \\(choose from 'lenet5', 'rnn'\\)"):
        training_parser("cifar").parse_args(["--model", "tiny_mlp"])
    with pytest.raises(UsageError, match="model=...\\): tiny_mlp: expected one of lenet5, rnn"):
        ta.settings("cifar", model="tiny_mlp")


def test_a_second_registration_is_refused_unless_it_replaces_your_own(registered):
    import keras

    with pytest.raises(UsageError, match="'tiny_mlp': a model of that name is already registered"):
        ta.register_model("tiny_mlp", _mlp)
    with pytest.raises(UsageError, match="'lenet5': .* already registered \\(it is built in\\)"):
        ta.register_model("lenet5", _mlp, replace=True)
    with pytest.raises(UsageError, match="'adam': .* already registered \\(it is built in\\)"):
        ta.register_optimizer("adam", keras.optimizers.Lion, replace=True)
    assert ta.register_model("tiny_mlp", _mlp, settings=("units",), replace=True).settings == ("units",)
    with pytest.raises(UsageError, match="expected a short lowercase name"):
        ta.register_model("My Model", _mlp)
    with pytest.raises(UsageError, match="settings 'lr' is not a model setting"):
        ta.register_model("other", _mlp, settings=("lr",))
    with pytest.raises(UsageError, match="expected a Keras optimizer class"):
        ta.register_optimizer("broken", "not callable")


# --------------------------------------------------------------------------- global state


def _process_state():
    """Everything a call of ours may touch that the caller would notice afterwards."""
    import keras
    from absl import logging as absl_logging
    from tensorflow.python.framework import config as tf_config

    return {
        "dtype policy": keras.config.dtype_policy().name,
        "op determinism": tf_config.is_op_determinism_enabled(),
        "tensorflow logger": logging.getLogger("tensorflow").level,
        "absl verbosity": absl_logging.get_verbosity(),
        "SIGTERM handler": signal.getsignal(signal.SIGTERM),
        "environment": dict(os.environ),
        "python random": random.getstate(),
        "numpy random": np.random.get_state()[1].tolist(),
        "matplotlib backend": matplotlib.get_backend(),
    }


def test_a_train_call_leaves_the_global_state_as_it_found_it(tmp_path):
    """bfloat16 (which sets Keras' global policy), op determinism, TensorFlow's quiet logger, seeding:
    a run changes each while it trains, and puts each back."""
    before = _process_state()
    run = ta.train("cifar", **TINY, precision="bfloat16", deterministic=True, runs_dir=str(tmp_path), quiet=True)
    assert run.status == "completed" and run.recorded["plan"]["precision"] == "bfloat16"
    assert run.model.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"  # the run did compute in bfloat16
    after = _process_state()
    assert {k: v for k, v in after.items() if before[k] != v} == {}


def test_a_commands_main_called_in_process_leaves_no_signal_handler(tmp_path):
    """`main(argv)` from a kernel: SIGTERM is handled like Ctrl-C while the command runs, then put back."""
    before = _process_state()
    code = importlib.import_module("tf_assign2.cifar").main(
        ["--data-dir", str(DATA / "CIFAR10"), "--ntrain", "10", "--ntest", "5", "--epochs", "1", "--no-visualize",
         "--no-export", "--quiet", "--runs-dir", str(tmp_path)])
    assert code == 0
    after = _process_state()
    assert {k: v for k, v in after.items() if before[k] != v} == {}


def test_the_command_modules_stay_callable_as_the_api_functions_of_their_name():
    """``python -m tf_assign2.sweep`` needs a module of that name; importing it must not hide ``tf_assign2.sweep()``."""
    for name in ("evaluate", "sweep", "tune", "report"):
        module = importlib.import_module(f"tf_assign2.{name}")
        assert getattr(ta, name) is module and callable(module) and hasattr(module, "main")
        assert module.__call__.__doc__ == getattr(ta.api, name).__doc__
    with pytest.raises(UsageError, match="sweep: a sweep given as a mapping needs a name"):
        ta.sweep({"task": "cifar", "runs": [{}]})


# --------------------------------------------------------------------------- a run folder


def test_a_run_reads_its_folder_and_shows_itself(cifar_run):
    from matplotlib.figure import Figure

    run = ta.open_run(cifar_run.run_dir)
    assert run.status == "completed" and run.test_accuracy == run.summary["test_accuracy"]
    assert len(run.history["loss"]) == 2 and run.config.optimizer == "sgd"
    curves, filters = run.curves(), run.filters()
    assert isinstance(curves, Figure) and isinstance(filters, Figure)
    assert curves._repr_png_().startswith(b"\x89PNG")  # Jupyter shows it whatever the backend
    html = run._repr_html_()
    assert "<table>" in html and "test accuracy" in html and "data:image/png;base64," in html
    stats = run.activation_statistics()
    assert stats.columns[0] == "layer" and {row[0] for row in stats.rows} >= {"conv1", "pool1", "conv2", "pool2"}
    assert "| conv1 |" in str(stats)
    with pytest.raises(UsageError, match="not a run directory"):
        ta.open_run(cifar_run.runs_dir)


# --------------------------------------------------------------------------- the table in docs/python-api.md


def _table_rows():
    from conftest import ROOT

    text = (ROOT / "docs" / "python-api.md").read_text()
    table = text[text.index("| command | Python |"):].split("\n\n")[0].splitlines()[2:]
    rows = []
    for line in table:
        command, python = (cell.strip() for cell in line.strip("|").split("|")[:2])
        rows.append((command.strip("`"), python.split("`")[1]))
    return rows


def _callee(node):
    """The function or Run method an ``ast.Call`` of the table's Python names."""
    import ast

    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "ta":
        return getattr(ta.api, func.attr)
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call):
        return getattr(ta.Run, func.attr)
    raise AssertionError(f"unexpected call {ast.dump(func)}")


def test_each_command_of_the_docs_table_parses_and_its_python_call_takes_those_names():
    """docs/python-api.md pairs each command with its Python call: the command's flags parse with its own
    parser, and every function, method and keyword the Python side names exists, a keyword being one
    of the function's parameters or, where it takes settings, a setting."""
    import ast
    import inspect
    import shlex

    from tf_assign2.cli import evaluate, export, report, sweep, tune, visualize

    parsers = {"tf_assign2.cifar": lambda: training_parser("cifar"), "tf_assign2.mnist": lambda: training_parser("mnist"),
               "tf_assign2.evaluate": evaluate.parser, "tf_assign2.visualize": visualize.parser,
               "tf_assign2.export": export.parser, "tf_assign2.tune": tune.build_parser, "tf_assign2.report": report.parser}
    rows = _table_rows()
    assert len(rows) >= 11
    for command, python in rows:
        words = shlex.split(command)
        if words[2:3] == ["tf_assign2.sweep"]:  # its other flags are training flags for every entry
            args, flags = sweep.parser().parse_known_args(words[3:])
            sweep.training_overrides("cifar", flags)
        elif words[0] == "python":
            parsers[words[2]]().parse_args(words[3:])  # a flag the command does not have raises UsageError
        if python.startswith("%"):
            continue
        for node in ast.walk(ast.parse(python)):
            if not isinstance(node, ast.Call):
                continue
            function = _callee(node)
            parameters = inspect.signature(function).parameters
            takes_settings = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
            for keyword in node.keywords:
                assert keyword.arg in parameters or (takes_settings and keyword.arg in schema.SETTINGS), (
                    python, keyword.arg)
