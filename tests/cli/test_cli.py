"""The command lines as a user runs them: a tiny end-to-end run, evaluate, configs, bad input.

In this process (``cli``: each entry module's ``main(argv)``, the function ``python -m`` runs),
except the mirrored strategy, which must split the CPU before TensorFlow starts; the entry
points as processes are smoke-tested at the end.
"""

import csv
import importlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import TINY_RUN_ARGS, copy_run, run_cli
from PIL import Image


def _tiny(tmp_path, *extra):
    return ("--ntrain", "10", "--ntest", "3", "--epochs", "1", "--runs-dir", str(tmp_path / "runs"), *extra)


def _only_run(tmp_path):
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def test_cifar_run_then_evaluate(cifar_run, cli, tmp_path):
    """``cifar_run`` is ``python -m tf_assign2.cifar --optimizer sgd --lr 0.01`` on 10/5 images per class."""
    assert cifar_run.returncode == 0, cifar_run.stderr
    assert "test accuracy" in cifar_run.stdout
    assert cifar_run.run_dir.name.startswith("cifar-sgd-lr0.01-")
    summary = json.loads((cifar_run.run_dir / "summary.json").read_text())

    run_dir = copy_run(cifar_run.run_dir, tmp_path / "runs")  # evaluate writes eval-*/ into the run
    evaluated = cli("tf_assign2.evaluate", run_dir)
    assert evaluated.returncode == 0, evaluated.stderr
    (eval_dir,) = run_dir.glob("eval-*")
    result = json.loads((eval_dir / "eval.json").read_text())
    assert result["accuracy"] == summary["test_accuracy"] == result["run_test_accuracy"]
    assert (eval_dir / "confusion_matrix.png").is_file()
    assert sum(map(sum, result["confusion_matrix"])) == 50  # 5 test images of each of 10 classes

    # A second run never reuses the first run's directory.
    again = cli("tf_assign2.cifar", *TINY_RUN_ARGS, "--runs-dir", tmp_path / "runs", "--no-visualize", "--no-export")
    assert again.returncode == 0 and len(list((tmp_path / "runs").iterdir())) == 2


def test_evaluate_reads_the_test_data_the_run_recorded_and_says_when_it_is_given_others(cifar_run, cli, tmp_path,
                                                                                      monkeypatch):
    """The run recorded a fingerprint of its test split (absolute folder, size, SHA-256). From another
    folder, with no $TF_ASSIGN2_DATA, evaluate finds those data; given other data it still evaluates,
    says in one line that they differ, and records it in eval.json."""
    recorded = json.loads((cifar_run.run_dir / "config.json").read_text())["test_data"]
    assert recorded["source"] == "png" and Path(recorded["location"]).is_absolute() and recorded["n_test"] == 50
    assert len(recorded["sha256"]) == 64
    run_dir = copy_run(cifar_run.run_dir, tmp_path / "runs")
    monkeypatch.delenv("TF_ASSIGN2_DATA")
    monkeypatch.chdir(tmp_path)  # no data/ here either
    same = cli("tf_assign2.evaluate", run_dir, "--out", tmp_path / "same")
    assert same.returncode == 0, same.stderr
    result = json.loads((tmp_path / "same" / "eval.json").read_text())
    assert result["test_data"] == recorded and result["test_data_differs_from_run"] is False
    assert "differ" not in same.stdout

    other = cli("tf_assign2.evaluate", run_dir, "--ntest", "3", "--out", tmp_path / "other")
    assert other.returncode == 0, other.stderr
    (note,) = [line for line in other.stdout.splitlines() if line.startswith("note:")]
    assert "differ from the ones the run was scored on (n_test 50 -> 30)" in note
    result = json.loads((tmp_path / "other" / "eval.json").read_text())
    assert result["test_data_differs_from_run"] is True and result["run_test_data"] == recorded
    assert result["n_test"] == 30


def test_config_file_with_flag_override(tmp_path, cli):
    config = tmp_path / "c.yaml"
    config.write_text("optimizer: momentum\nlr: 0.05\nmomentum: 0.5\nbatch_size: 25\n")
    done = cli("tf_assign2.cifar", "--config", config, "--lr", "0.02", *_tiny(tmp_path, "--no-visualize", "--no-export"))
    assert done.returncode == 0, done.stderr
    saved = json.loads((_only_run(tmp_path) / "config.json").read_text())
    assert (saved["optimizer"], saved["lr"], saved["momentum"], saved["batch_size"]) == ("momentum", 0.02, 0.5, 25)


def _assert_clean_error(done, tmp_path, *needles):
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    runs_dir = tmp_path / "runs"
    assert not runs_dir.exists() or not any(runs_dir.iterdir()), "a run directory was left behind"


@pytest.mark.parametrize(
    "args, needles",
    [
        (("--optimizer", "adadelta"), ("--optimizer", "invalid choice")),
        (("--lr", "0"), ("--lr", "> 0")),
        (("--lr", "-1e-3"), ("--lr",)),
        (("--epochs", "0"), ("--epochs", ">= 1")),
        (("--batch-size", "x"), ("--batch-size",)),
        (("--data-dir", "/no/such/folder"), ("--data-dir /no/such/folder", "not found")),
        (("--model", "rnn", "--units", "0"), ("--units", ">= 1")),
        (("--model", "rnn", "--cell", "transformer"), ("--cell", "invalid choice")),
        (("--val-split", "1.5"), ("--val-split",)),
        (("--jit", "maybe"), ("--jit",)),
        # argparse checks it now, in its words: "argument --augment-shift: expected ... from 0 to 7, got 9"
        (("--augment-shift", "9"), ("--augment-shift", "from 0 to 7", "got 9")),
    ],
    ids=["optimizer", "lr-zero", "lr-negative", "epochs", "batch-type", "missing-dir", "units", "cell", "val-split",
         "jit", "augment-shift"],
)
def test_bad_flags(tmp_path, cli, args, needles):
    _assert_clean_error(cli("tf_assign2.cifar", *_tiny(tmp_path), *args), tmp_path, *needles)


def _broken_layout(data_root, tmp_path, breakage, per_class=3):
    root = tmp_path / "data"
    for split in ("Train", "Test"):
        for c in range(2):
            (root / split / str(c)).mkdir(parents=True)
            for i in range(per_class):
                shutil.copy(data_root / "CIFAR10" / split / str(c) / f"Image{i:05d}.png", root / split / str(c))
    breakage(root)
    return root


@pytest.mark.parametrize(
    "breakage, needles",
    [
        (lambda r: [p.unlink() for p in (r / "Train/1").iterdir()], ("Train/1", "empty class folder")),
        (lambda r: (r / "Test/0/Image00002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20),
         ("Image00002.png", "not a valid PNG")),
        (lambda r: Image.new("L", (30, 30)).save(r / "Train/0/Image00001.png"), ("Image00001.png", "30x30x1")),
        (lambda r: (r / "Train/1/Image00009.png").symlink_to(r / "nowhere.png"), ("Image00009.png", "cannot read")),
        (lambda r: (r / "Test/1").rename(r / "Test/7"), ("Test", "must be named 0..1")),
        (lambda r: shutil.rmtree(r / "Train"), ("no Train/ folder",)),
    ],
    ids=["empty-class", "corrupt-png", "wrong-size", "unreadable", "class-names", "no-train"],
)
def test_bad_data(data_root, tmp_path, cli, breakage, needles):
    root = _broken_layout(data_root, tmp_path, breakage)
    done = cli("tf_assign2.cifar", "--epochs", "1", "--data-dir", root, "--runs-dir", tmp_path / "runs")
    _assert_clean_error(done, tmp_path, *needles)


def test_bad_config_file(tmp_path, cli):
    config = tmp_path / "typo.yaml"
    config.write_text("optimiser: adam\n")
    _assert_clean_error(cli("tf_assign2.cifar", "--config", config, *_tiny(tmp_path)), tmp_path,
                        "typo.yaml", "unknown key 'optimiser'")
    config.write_text("epochs: ten\n")
    _assert_clean_error(cli("tf_assign2.cifar", "--config", config, *_tiny(tmp_path)), tmp_path,
                        "typo.yaml", "epochs")


def test_evaluate_on_a_folder_that_is_not_a_model(tmp_path, cli):
    _assert_clean_error(cli("tf_assign2.evaluate", tmp_path), tmp_path, "not a run directory or a SavedModel")


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    """A process of its own: the CPU is split into two logical devices before TensorFlow initialises."""
    done = run_cli("tf_assign2.cifar", "--ntrain", "30", "--ntest", "5", "--epochs", "3", "--no-test-curve",
                   "--strategy", "mirrored", "--devices", "CPU:0,CPU:1", "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    run_dir = _only_run(tmp_path)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["strategy"] == "mirrored" and config["devices"] == ["CPU:0", "CPU:1"]
    assert config["plan"]["strategy"] == "mirrored" and config["plan"]["steps_per_execution"] == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_per_execution"] == 1
    losses = [float(row["loss"]) for row in csv.DictReader((run_dir / "history.csv").open())]
    assert len(losses) == 3 and losses[-1] < losses[0]  # the replicas' averaged gradients do train


def test_idx_with_a_wrong_magic_number(data_root, tmp_path, cli):
    from helpers import write_idx_folder

    from tf_assign2 import data

    folder = write_idx_folder(tmp_path / "idx", *data.read_png_layout(data_root / "MNIST", ntrain=2, ntest=1))
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    done = cli("tf_assign2.mnist", "--data-dir", folder, "--epochs", "1", "--runs-dir", tmp_path / "runs")
    _assert_clean_error(done, tmp_path, "t10k-labels-idx1-ubyte.gz", "magic number is 2051, expected 2049")


def test_runs_dir_that_cannot_be_created(tmp_path, cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = cli("tf_assign2.cifar", "--ntrain", "5", "--ntest", "2", "--runs-dir", blocker / "runs")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "--runs-dir" in done.stderr and "Traceback" not in done.stderr


def test_evaluate_rejects_data_the_model_does_not_fit(cifar_run, data_root, tmp_path, cli):
    run_dir = cifar_run.run_dir  # evaluate stops before writing anything: the shared run is only read
    three = _broken_layout(data_root, tmp_path, lambda r: None, per_class=5)  # a 2-class layout (the run reads 5 per class)
    done = cli("tf_assign2.evaluate", run_dir, "--data-dir", three)
    assert done.returncode == 2 and "model has 10 classes, the data has 2" in done.stderr
    big = tmp_path / "big"
    for split in ("Train", "Test"):
        for c in range(10):
            (big / split / str(c)).mkdir(parents=True)
            for i in range(5):
                Image.new("L", (32, 32)).save(big / split / str(c) / f"Image{i:05d}.png")
    done = cli("tf_assign2.evaluate", run_dir / "saved_model", "--data-dir", big)
    assert done.returncode == 2 and "expects images of shape (28, 28, 1), the data has (32, 32, 1)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not list(run_dir.glob("eval-*"))


# --------------------------------------------------------------------------- the entry points


def test_every_console_script_names_a_main_that_answers_help(capsys):
    """setup.py's console scripts (tf-assign2-cifar ...) call ``module:function()``; each must exist."""
    import ast
    import importlib

    from conftest import ROOT

    scripts = [node.value for node in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
               if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("tf-assign2-")]
    names = {script.split("=")[0] for script in scripts}
    assert names >= {f"tf-assign2-{n}" for n in ("cifar", "mnist", "evaluate", "tune", "sweep", "report", "visualize")}
    for script in scripts:
        name, target = script.split("=")
        module, function = target.split(":")
        main = getattr(importlib.import_module(module), function)
        with pytest.raises(SystemExit) as done:
            main(["--help"])
        assert done.value.code == 0, script
        assert "usage: python -m tf_assign2." in capsys.readouterr().out, script

# --------------------------------------------------------------------------- the entry points as processes


@pytest.mark.slow
@pytest.mark.parametrize("module", ["tf_assign2.cifar", "tf_assign2.mnist", "tf_assign2.evaluate", "tf_assign2.tune",
                                    "tf_assign2.sweep", "tf_assign2.report", "tf_assign2.visualize"])
def test_every_entry_point_answers_help_as_a_process(module):
    done = run_cli(module, "--help", timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"usage: python -m {module}" in done.stdout


@pytest.mark.slow
def test_a_usage_error_as_a_process_is_one_line_and_exit_2(tmp_path):
    """The exit code and the one stderr line are what a shell sees (the in-process tests see main's)."""
    done = run_cli("tf_assign2.cifar", *_tiny(tmp_path), "--lr", "0", timeout=60)
    _assert_clean_error(done, tmp_path, "--lr", "> 0")


@pytest.mark.slow
def test_start_up_imports_keras_without_scikit_learn_which_stays_importable():
    """A fresh process, as a command starts: Keras' scikit-learn wrappers are not loaded at start-up,
    and keras-tuner's Bayesian search, imported later, still finds scikit-learn."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from tf_assign2.training.startup import start_tensorflow\n"
            "start_tensorflow()\n"
            "print('keras' in sys.modules, 'sklearn' in sys.modules)\n"
            "from keras_tuner.src.tuners import bayesian\n"
            "print(bayesian.sklearn is not None)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "True"]


def test_an_unexpected_error_has_its_own_exit_code_and_one_line_naming_its_traceback(tmp_path, monkeypatch, capsys):
    """Not 1 (which means diverged) and not 2 (bad input): 70, and the traceback kept in a file."""
    from tf_assign2 import api
    from tf_assign2.cli import run_cli

    def broken(*args, **kwargs):
        raise KeyError("a bug of ours")

    monkeypatch.setattr(api, "train", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # honour TMPDIR in this process
    code = run_cli(lambda: importlib.import_module("tf_assign2.cli.train").train("cifar", ["--epochs", "1"]))
    err = capsys.readouterr().err
    assert code == 70 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: unexpected KeyError ('a bug of ours'); the full traceback is in ")
    (saved,) = tmp_path.glob("tf-assign2-error-*.txt")
    assert str(saved) in err and "Traceback (most recent call last)" in saved.read_text()
    assert 'raise KeyError("a bug of ours")' in saved.read_text()
