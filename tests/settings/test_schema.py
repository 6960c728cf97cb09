"""The settings schema is the one declaration: flags, YAML checks, tune's fixed flags and sweep columns
come from it; configs are frozen; the plan is resolved apart from the settings; label smoothing works."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from tf_assign2 import config as settings
from tf_assign2.cli import training_parser
from tf_assign2.cli.tune import build_parser as tune_parser
from tf_assign2.errors import UsageError
from tf_assign2.experiments import sweep
from tf_assign2.models import MODELS


def _flags(parser):
    return {a.dest: a for a in parser._actions}


def test_every_setting_is_a_training_flag_with_its_schema():
    flags = _flags(training_parser("cifar"))
    for name, rule in settings.SETTINGS.items():
        if name == "task":  # the command itself says the task
            continue
        action = flags[name]
        assert settings.flag_name(name) in action.option_strings
        assert action.default is None  # unset flags never hide a --config value
        assert rule.help in action.help
        if rule.choices is not None and rule.kind is str:
            assert tuple(action.choices) == rule.choices


def test_registries_are_the_choices():
    assert settings.SETTINGS["model"].choices == tuple(MODELS)
    from tf_assign2.data import READERS
    from tf_assign2.optimizers import OPTIMIZERS

    assert settings.SETTINGS["optimizer"].choices == tuple(OPTIMIZERS)
    assert settings.SETTINGS["source"].choices == ("auto", *READERS)


def test_tune_fixed_flags_and_sweep_columns_come_from_the_schema():
    flags = _flags(tune_parser())
    for name in settings.TUNE_FLAGS:
        assert settings.flag_name(name) in flags[name].option_strings
    assert "label_smoothing" in settings.TUNE_FLAGS
    args = tune_parser().parse_args(["cifar", "--label-smoothing", "0.2"])
    assert args.label_smoothing == 0.2
    assert sweep.SETTING_COLUMNS == settings.COLUMNS and "label_smoothing" in settings.COLUMNS


@pytest.mark.parametrize("value, ok", [(0, True), (0.1, True), (0.99, True), (1, False), (-0.1, False), ("x", False)])
def test_label_smoothing_range_on_flags_and_files(value, ok, capsys):
    parser = training_parser("cifar")
    if ok:
        assert settings.file_values({"label_smoothing": value}, "f.yaml")["label_smoothing"] == value
        assert parser.parse_args(["--label-smoothing", str(value)]).label_smoothing == value
        return
    with pytest.raises(UsageError, match=r"f\.yaml: label_smoothing: .*expected a number in \[0, 1\)"):
        settings.file_values({"label_smoothing": value}, "f.yaml")
    with pytest.raises(UsageError, match="--label-smoothing: expected a number in"):
        parser.parse_args(["--label-smoothing", str(value)])


def test_yaml_keys_are_checked_against_the_schema():
    with pytest.raises(UsageError, match="unknown key 'label_smothing' \\(did you mean label_smoothing\\?\\)"):
        settings.file_values({"label_smothing": 0.1}, "f.yaml")
    # YAML reads 1e-4 (no dot) as text; it is read as the flag would read it.
    assert settings.file_values({"lr": "1e-4", "conv_filters": [8, 16]}, "f.yaml") == {"lr": 1e-4, "conv_filters": (8, 16)}


def test_configs_are_frozen_and_validate_returns_a_new_one():
    cfg = settings.Config(model="rnn")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 0.1
    checked = settings.validate(cfg)
    assert cfg.lr is None and checked.lr == settings.RNN_ADAM_LR


def test_the_plan_leaves_the_settings_alone(monkeypatch):
    from tf_assign2.training import plan

    monkeypatch.setattr(plan, "native_bfloat16_cpu", lambda: True)
    cfg = settings.build("mnist", {"cell": "lstm"})
    resolved = plan.make_plan(cfg, steps_per_epoch=70, gpu=False, onednn=False)
    assert (resolved.jit, resolved.use_cudnn, resolved.precision, resolved.steps_per_execution) == (True, False, "float32", 14)
    assert (cfg.jit, cfg.use_cudnn, cfg.precision) == ("auto", "auto", "auto")  # recorded as asked
    lenet = plan.make_plan(settings.build("cifar"), steps_per_epoch=180, gpu=False)
    assert (lenet.jit, lenet.precision) == (False, "bfloat16")
    assert plan.Plan.from_dict(json.loads(json.dumps(lenet.to_dict()))) == lenet


def test_label_smoothing_loss_matches_its_definition():
    import keras

    from tf_assign2.training.losses import training_loss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 10)).astype("float32")
    labels = rng.integers(0, 10, size=8)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    smoothing = 0.1
    target = np.full((8, 10), smoothing / 10) + (1 - smoothing) * np.eye(10)[labels]
    expected = float(-(target * log_probs).sum(axis=1).mean())
    smoothed = training_loss(settings.build("cifar", {"label_smoothing": smoothing}))
    assert float(smoothed(labels, logits)) == pytest.approx(expected, rel=1e-5)
    plain = training_loss(settings.build("cifar"))
    assert isinstance(plain, keras.losses.SparseCategoricalCrossentropy)  # 0: the starters' loss, unchanged
    assert float(plain(labels, logits)) == pytest.approx(float(-log_probs[np.arange(8), labels].mean()), rel=1e-5)


def test_a_run_records_its_settings_and_plan(small_config):
    from tf_assign2 import data
    from tf_assign2.training.trainer import Trainer

    cfg = small_config(label_smoothing=0.1)
    arrays, info = data.load_arrays(cfg)
    trainer = Trainer(cfg, arrays, info)
    model = trainer.compile(trainer.build_model())
    assert model.loss.smoothing == pytest.approx(0.1)
    run_dir = trainer.new_run_dir()
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["label_smoothing"] == 0.1 and recorded["plan"] == trainer.plan.to_dict()
    assert settings.from_dict(recorded) == cfg


def test_sweep_rows_blank_the_settings_a_model_does_not_read():
    rnn = sweep.run_row("r", settings.to_dict(settings.build("mnist", {"cell": "gru", "units": 64})))
    cnn = sweep.run_row("c", settings.to_dict(settings.build("mnist", {"model": "lenet5"})))
    assert (rnn["cell"], rnn["units"]) == ("gru", 64)
    assert (cnn["cell"], cnn["units"], cnn["layers"]) == (None, None, None)


@pytest.mark.slow
def test_bad_data_location_is_refused_before_tensorflow_loads():
    code = ("import sys; from tf_assign2.cli.train import main; rc = main('cifar', ['--data-dir', '/no/such']); "
            "print(rc, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
    assert done.stderr.strip() == "error: --data-dir /no/such: folder not found"


@pytest.mark.parametrize("task", ["cifar", "mnist"])
def test_each_flags_shown_default_is_the_value_a_run_of_that_task_records(task):
    """``python -m tf_assign2.<task> --help`` shows, for every setting, the value a run given no flags
    records in config.json (``Trainer.write_config`` writes these settings): MNIST's own model, dataset,
    batch size and learning rate, not CIFAR's. A flag that turns something off says so."""
    import re

    from tf_assign2 import api

    recorded = json.loads(json.dumps(settings.to_dict(api.settings(task))))
    shown_any = 0
    for name, action in _flags(training_parser(task)).items():
        if name not in settings.SETTINGS:
            continue
        value = recorded[name]
        if isinstance(value, bool):
            assert ("turn off" in action.help) is value, (name, action.help)
            continue
        found = re.search(r"\(([^()]*)\)$", action.help)
        if value is None:
            assert found is None or found.group(1) != "None", (name, action.help)
            continue
        shown = found.group(1)
        parsed = ([int(v) for v in shown.split()] if isinstance(value, list) else
                  type(value)(shown) if isinstance(value, (int, float)) else shown)
        assert parsed == value, (task, name, shown, value)
        shown_any += 1
    assert shown_any >= 25
    text = training_parser(task).format_help()
    expected = {"cifar": ("(lenet5)", "(cifar10)", "(50)", "(0.001)"), "mnist": ("(rnn)", "(mnist)", "(128)", "(0.002)")}
    assert all(shown in text for shown in expected[task])


def test_commands_offer_only_the_flags_they_read_and_every_benchmark_answers_help(capsys):
    from tf_assign2.cli import evaluate, visualize

    for parser in (evaluate.parser(), visualize.parser()):
        flags = {option for action in parser._actions for option in action.option_strings}
        assert "--ntest" in flags and "--data-dir" in flags
        assert "--ntrain" not in flags and "--val-split" not in flags  # they read the test split only
    import importlib
    import pkgutil

    import benchmarks

    names = [m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_")]
    assert {"bench", "floor_run", "gpu_check", "profile_run"} <= set(names)
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        if not hasattr(module, "main"):
            continue
        with pytest.raises(SystemExit) as done:
            module.main(["--help"])
        assert done.value.code == 0 and f"python -m benchmarks.{name}" in capsys.readouterr().out
