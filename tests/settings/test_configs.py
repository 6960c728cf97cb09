"""Every shipped config file loads through the CLI's own --config path, every sweep file plans, and defaults resolve."""

from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from tf_assign2 import api, cli
from tf_assign2.config import Config, default_lr, task_defaults, validate
from tf_assign2.experiments import sweep

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


def task_of(path):
    """configs/<task>_*.yaml: the file name says which CLI it is for."""
    return Path(path).name.split("_")[0]


def test_there_is_a_config_for_every_cli():
    assert {task_of(p) for p in CONFIGS} == {"cifar", "mnist"}
    assert {p.name for p in SWEEPS} >= {"cifar_optimizers.yaml", "mnist_cells.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_file_loads_and_flags_override_it(path):
    task = task_of(path)
    parser = cli.training_parser(task)

    def resolve(argv):  # what the training command does with its flags
        args = parser.parse_args(argv)
        return api.settings(task, config=args.config, **cli.flag_values(args))

    cfg = resolve(["--config", str(path)])
    for key, value in yaml.safe_load(path.read_text()).items():
        got = getattr(cfg, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    override = resolve(["--config", str(path), "--lr", "0.25", "--epochs", "3"])
    assert (override.lr, override.epochs, override.model) == (0.25, 3, cfg.model)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_file_plans(path, tmp_path):
    loaded = sweep.load_sweep(path)
    planned = sweep.plan(loaded, tmp_path / "out")
    assert len(planned) == len(loaded["entries"]) >= 2
    for entry, (name, settings) in zip(planned, loaded["entries"]):
        assert entry["name"] == name
        for key, value in settings.items():
            assert entry["config"][key] == value, (name, key)
        assert entry["config"]["runs_dir"] == str(tmp_path / "out" / "runs" / name)


def test_the_assignment_sweeps():
    cifar = sweep.load_sweep(ROOT / "configs" / "sweeps" / "cifar_optimizers.yaml")
    pairs = {(s["optimizer"], s["lr"]) for _, s in cifar["entries"]}
    assert {("adam", 1e-2), ("adam", 1e-3), ("adam", 1e-4), ("sgd", 1e-2), ("sgd", 1e-3)} <= pairs
    assert {"momentum", "adagrad"} <= {o for o, _ in pairs}
    mnist = sweep.plan(sweep.load_sweep(ROOT / "configs" / "sweeps" / "mnist_cells.yaml"), "/tmp/unused")
    grid = {(e["config"]["cell"], e["config"]["units"]) for e in mnist if e["config"]["model"] == "rnn"}
    assert grid == {(c, u) for c in ("rnn", "lstm", "gru") for u in (64, 128, 256)}
    assert [e["config"]["model"] for e in mnist].count("lenet5") == 1


def test_default_lr_is_the_starters_except_adam_on_the_rnns():
    """1e-3 unless the model is recurrent and the optimizer Adam (2e-3, measured faster); a given lr wins."""
    def resolved(task, **flags):
        return validate(Config(**{**task_defaults(task), **flags})).lr

    assert resolved("cifar") == 1e-3  # LeNet5 + Adam: the CIFAR starter
    assert resolved("mnist") == 2e-3
    assert resolved("mnist", optimizer="sgd") == 1e-3
    assert resolved("mnist", model="lenet5") == 1e-3
    assert resolved("mnist", lr=1e-3) == 1e-3
    assert (default_lr("rnn", "adam"), default_lr("rnn", "momentum"), default_lr("lenet5", "adam")) == (2e-3, 1e-3, 1e-3)
