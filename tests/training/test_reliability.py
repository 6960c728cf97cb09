"""Interruption, determinism and portable exports.

Processes where it is about the process (SIGKILL, Ctrl-C as a signal); the resumes and the other
runs go through the same command lines in this process (``cli``).
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import DATA, keep_trained_models, run_cli, trials_done

from tf_assign2.training.callbacks import latest_intact  # imported now: the polls below must be quick

TINY = ("--ntrain", "40", "--ntest", "5", "--epochs", "3", "--deterministic", "--no-test-curve")


def _popen(*args):
    env = {**os.environ, "TF_ASSIGN2_DATA": str(DATA), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _wait_until(proc, ready, what, timeout=300):
    """Poll ``ready()`` until it returns something truthy (returned); fail if ``proc`` ends or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ready()
        if found:
            return found
        assert proc.poll() is None, f"it finished before {what}: " + proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def _wait_for_epochs(runs_dir, epochs, proc, timeout=240):
    """Wait until the run's backup holds ``epochs`` completed epochs; its run dir."""

    def reached():
        for backup in runs_dir.glob("*/backup"):
            try:
                if latest_intact(backup) >= epochs:
                    return backup.parent
            except Exception:  # noqa: BLE001 - being written
                pass
        return None

    return _wait_until(proc, reached, f"epoch {epochs} of the run", timeout)


MEASUREMENTS = {"rss_mb", "epoch_seconds"}


def _history(run_dir):
    """history.csv without the measurement columns (memory and wall time are not part of the training result)."""
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    return [{k: v for k, v in row.items() if k not in MEASUREMENTS} for row in rows]


@pytest.mark.slow
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(tmp_path, cli):
    """The uninterrupted run is a process of its own too, so the resumed run must match another process's."""
    whole = run_cli("tf_assign2.cifar", *TINY, "--runs-dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    (whole_dir,) = (tmp_path / "whole").iterdir()

    proc = _popen("tf_assign2.cifar", *TINY, "--runs-dir", str(tmp_path / "killed"))
    run_dir = _wait_for_epochs(tmp_path / "killed", 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (run_dir / "summary.json").exists()

    resumed = cli("tf_assign2.cifar", "--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert _history(run_dir) == _history(whole_dir)
    a = json.loads((whole_dir / "summary.json").read_text())
    b = json.loads((run_dir / "summary.json").read_text())
    for key in ("test_accuracy", "test_loss", "final_train_loss", "final_val_accuracy", "epochs_completed"):
        assert a[key] == b[key], key


@pytest.fixture
def sigint_not_ignored():
    """Ctrl-C reaches a run in the foreground. A shell starts background jobs with SIGINT ignored and
    children inherit that, so Python in the run would never raise KeyboardInterrupt (the run then
    finished normally, exit 0, when pytest itself ran in the background): let this process's
    children start with SIGINT handled, as a terminal's foreground process group does."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_marks_the_run_interrupted(tmp_path, cli, sigint_not_ignored):
    # Enough epochs that the run is still training when the signal lands; a small LeNet5 keeps them short.
    proc = _popen("tf_assign2.cifar", *TINY, "--ntrain", "20", "--epochs", "30", "--no-visualize",
                  "--conv-filters", "4", "8", "--fc-units", "16", "--runs-dir", str(tmp_path / "runs"))
    run_dir = _wait_for_epochs(tmp_path / "runs", 1, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"--resume {run_dir}" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_completed"] >= 1
    assert (run_dir / "backup").is_dir()
    resumed = cli("tf_assign2.cifar", "--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    again = cli("tf_assign2.cifar", "--resume", run_dir)
    assert again.returncode == 2 and "already completed" in again.stderr


@pytest.mark.slow  # two runs of six steps
def test_deterministic_runs_have_identical_histories(tmp_path, cli):
    """Two runs one after the other in this process (the SIGKILL test compares two processes)."""
    args = ("--ntrain", "20", "--ntest", "5", "--epochs", "2", "--deterministic", "--seed", "3", "--no-visualize",
            "--no-export")
    for name in ("a", "b"):
        done = cli("tf_assign2.cifar", *args, "--runs-dir", tmp_path / name)
        assert done.returncode == 0, done.stderr
    (a,) = (tmp_path / "a").iterdir()
    (b,) = (tmp_path / "b").iterdir()
    assert _history(a) == _history(b)


@pytest.mark.parametrize("jit", ["off", pytest.param("auto", marks=pytest.mark.slow)])  # auto: XLA on a CPU (~15 s)
def test_rnn_export_is_portable_and_agrees_everywhere(small_config, jit):
    """The SavedModel comes from the cuDNN-free twin; SavedModel, .keras and memory agree."""
    import keras
    import tensorflow as tf

    from tf_assign2 import data, models
    from tf_assign2.analysis import evaluation
    from tf_assign2.training import export
    from tf_assign2.training.trainer import Trainer

    cfg = small_config(task="mnist", dataset="mnist", data_dir=str(DATA / "MNIST"), model="rnn", cell="lstm",
                       units=16, use_cudnn="auto", ntrain=10, batch_size=32, jit=jit)
    arrays, info = data.load_arrays(cfg)
    model = models.build(cfg, info.image_shape, info.num_classes)
    twin = export.portable_twin(model, cfg, info)
    # "auto" takes the cuDNN kernel on a GPU; the exported twin never does.
    assert model.get_layer("lstm1").use_cudnn == "auto" and twin.get_layer("lstm1").use_cudnn is False
    trainer = Trainer(cfg, arrays, info)
    run_dir = trainer.new_run_dir()
    with keep_trained_models() as built:
        # The run trains a model with those "auto" layers (under XLA the plan would choose the
        # generic kernel instead; "auto" is what a GPU run has and what the twin exists for).
        build = trainer.build_model
        trainer.build_model = lambda use_cudnn=None: build("auto")
        summary = trainer.run(run_dir)
    assert summary["status"] == "completed"
    ((_, model),) = built
    assert model.get_layer("lstm1").use_cudnn == "auto"
    images = arrays.test_x / 255.0
    in_memory = tf.nn.softmax(model.predict(images, verbose=0)).numpy()
    serve, *_ = evaluation.load_serving_function(run_dir / "saved_model")
    reloaded = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    assert np.abs(evaluation.predict(serve, arrays.test_x) - in_memory).max() <= 1e-6
    assert np.abs(tf.nn.softmax(reloaded.predict(images, verbose=0)).numpy() - in_memory).max() <= 1e-6
    loaded = tf.saved_model.load(str(run_dir / "saved_model"))
    graph = loaded.serve.get_concrete_function().graph
    assert not any("Cudnn" in op.type for op in graph.get_operations())


# --------------------------------------------------------------------------- a search and a sweep killed mid-way


def _kill_when(proc, ready, what, timeout=300):
    """SIGKILL ``proc`` as soon as ``ready()`` holds (polled); fail if it ends or times out first."""
    _wait_until(proc, ready, what, timeout)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def _csv_rows(path):
    try:
        with path.open() as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error):
        return []


@pytest.mark.slow
def test_a_search_killed_mid_way_resumes_without_redoing_finished_trials(tmp_path, cli):
    space = tmp_path / "small.yaml"  # the default search over lr and optimizer, on a small LeNet5
    space.write_text("lr: {min: 1.0e-4, max: 1.0e-2, sampling: log}\noptimizer: [adam, momentum, rmsprop]\n"
                     "fc_units: 16\nconv1_filters: 4\nconv2_filters: 8\n")
    args = ("tf_assign2.tune", "cifar", "--data-dir", str(DATA / "CIFAR10"), "--ntrain", "10", "--ntest", "3",
            "--epochs", "15", "--max-trials", "3", "--directory", str(tmp_path / "tune"), "--no-visualize",
            "--no-test-curve", "--space", str(space))
    project = tmp_path / "tune" / "cifar-random"
    proc = _popen(*args)

    def trial_1_started():
        try:
            done = json.loads((project / "trial_0" / "trial.json").read_text())["status"] == "COMPLETED"
            return done and json.loads((project / "trial_1" / "trial.json").read_text())["status"] == "RUNNING"
        except (OSError, ValueError, KeyError):
            return False  # not there yet, or being written

    _kill_when(proc, trial_1_started, "trial 0 to finish and trial 1 to start")
    finished = (project / "trial_0" / "trial.json").read_bytes()

    result = cli(*args)  # the same command again
    assert result.returncode == 0, result.stderr[-2000:]
    assert "continuing the search" in result.stdout
    assert trials_done(result.stdout) == [None] * 2  # trials 1 (restarted) and 2, not 0
    assert (project / "trial_0" / "trial.json").read_bytes() == finished
    rows = _csv_rows(project / "trials.csv")
    assert [(r["trial_id"], r["status"]) for r in rows] == [(i, "completed") for i in ("0", "1", "2")]


@pytest.mark.slow
def test_a_sweep_killed_mid_way_resumes_without_redoing_finished_runs(tmp_path, cli):
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(
        f"name: killed\ntask: cifar\nsettings: {{data_dir: {DATA / 'CIFAR10'}, ntrain: 10, ntest: 2, visualize: false}}\n"
        "runs: [{name: nan, optimizer: sgd, lr: 10.0, epochs: 2}, {name: short, optimizer: adagrad, epochs: 1},\n"
        "       {name: long, optimizer: sgd, lr: 0.01, epochs: 20, fc_units: 16, conv_filters: [4, 8]}]\n")
    out = tmp_path / "out"
    args = ("tf_assign2.sweep", str(sweep_file), "--out", str(out), "--no-test-curve")

    def long_has_an_epoch():
        return any(len(_csv_rows(h)) >= 1 for h in (out / "runs" / "long").glob("*/history.csv"))

    proc = _popen(*args)
    _kill_when(proc, long_has_an_epoch, "the third run's first epoch")
    finished = {entry: next((out / "runs" / entry).glob("*/summary.json")).read_bytes() for entry in ("nan", "short")}
    assert json.loads(finished["nan"])["status"] == "diverged"  # the sweep went on past it
    assert json.loads(finished["short"])["status"] == "completed"

    result = cli(*args)  # the same command again
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[1/3] nan: diverged earlier" in result.stdout and "[2/3] short: completed earlier" in result.stdout
    assert "[3/3] long: resuming" in result.stdout
    for entry, summary in finished.items():  # not redone: the same (only) run, untouched
        assert [p.read_bytes() for p in (out / "runs" / entry).glob("*/summary.json")] == [summary]
    long_runs = list((out / "runs" / "long").glob("*/summary.json"))
    assert len(long_runs) == 1 and json.loads(long_runs[0].read_text())["epochs_completed"] == 20
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["entry"], r["status"]) for r in rows] == [("nan", "diverged"), ("short", "completed"), ("long", "completed")]
