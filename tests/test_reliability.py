"""Interruption, determinism and portable exports, through the real CLI where it is about the CLI."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import DATA, run_cli

TINY = ("--ntrain", "40", "--ntest", "5", "--epochs", "3", "--deterministic", "--no-test-curve")


def _popen(*args):
    env = {**os.environ, "TF_ASSIGN2_DATA": str(DATA), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _wait_for_epochs(runs_dir, epochs, proc, timeout=240):
    """Wait until the run's BackupAndRestore state holds ``epochs`` completed epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for meta in runs_dir.glob("*/backup/training_metadata.json"):
            try:
                if json.loads(meta.read_text())["epoch"] >= epochs:
                    return meta.parents[1]
            except (ValueError, KeyError, OSError):
                pass  # being written
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the run did not reach the epoch in time")


def _history(run_dir):
    """history.csv without the rss_mb column (memory use is not part of the training result)."""
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    return [{k: v for k, v in row.items() if k != "rss_mb"} for row in rows]


def test_sigkill_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    whole = run_cli("tf_assign2.cifar", *TINY, "--runs-dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    (whole_dir,) = (tmp_path / "whole").iterdir()

    proc = _popen("tf_assign2.cifar", *TINY, "--runs-dir", str(tmp_path / "killed"))
    run_dir = _wait_for_epochs(tmp_path / "killed", 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (run_dir / "summary.json").exists()

    resumed = run_cli("tf_assign2.cifar", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert _history(run_dir) == _history(whole_dir)
    a = json.loads((whole_dir / "summary.json").read_text())
    b = json.loads((run_dir / "summary.json").read_text())
    for key in ("test_accuracy", "test_loss", "final_train_loss", "final_val_accuracy", "epochs_completed"):
        assert a[key] == b[key], key


def test_ctrl_c_stops_cleanly_and_marks_the_run_interrupted(tmp_path):
    # Enough epochs that the run is still training when the signal lands.
    proc = _popen("tf_assign2.cifar", *TINY, "--ntrain", "20", "--epochs", "60", "--no-visualize",
                  "--runs-dir", str(tmp_path / "runs"))
    run_dir = _wait_for_epochs(tmp_path / "runs", 1, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"--resume {run_dir}" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_completed"] >= 1
    assert (run_dir / "backup").is_dir()
    resumed = run_cli("tf_assign2.cifar", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    again = run_cli("tf_assign2.cifar", "--resume", str(run_dir))
    assert again.returncode == 2 and "already completed" in again.stderr


def test_deterministic_runs_have_identical_histories(tmp_path):
    args = ("--ntrain", "20", "--ntest", "5", "--epochs", "2", "--deterministic", "--seed", "3")
    for name in ("a", "b"):
        done = run_cli("tf_assign2.cifar", *args, "--runs-dir", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
    (a,) = (tmp_path / "a").iterdir()
    (b,) = (tmp_path / "b").iterdir()
    assert _history(a) == _history(b)


def test_rnn_export_is_portable_and_agrees_everywhere(small_config):
    """The SavedModel comes from the cuDNN-free twin; SavedModel, .keras and memory agree."""
    import keras
    import tensorflow as tf

    from tf_assign2 import data, evaluate, export, models, runs, train

    cfg = small_config(task="mnist", dataset="mnist", data_dir=str(DATA / "MNIST"), model="rnn", cell="lstm",
                       units=16, use_cudnn="auto", ntrain=10, batch_size=32)
    arrays, info = data.load_arrays(cfg)
    model = models.build(cfg, info.image_shape, info.num_classes)
    twin = export.portable_twin(model, cfg, info)
    # "auto" takes the cuDNN kernel on a GPU; the exported twin never does.
    assert model.get_layer("lstm1").use_cudnn == "auto" and twin.get_layer("lstm1").use_cudnn is False
    run_dir = runs.new_run_dir(cfg)
    train.write_config(cfg, info, run_dir)
    summary = train.run(cfg, arrays, info, model, run_dir)
    assert summary["status"] == "completed"
    images = arrays.test_x / 255.0
    in_memory = tf.nn.softmax(model.predict(images, verbose=0)).numpy()
    serve, *_ = evaluate.load_serving_function(run_dir / "saved_model")
    reloaded = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    assert np.abs(evaluate.predict(serve, arrays.test_x) - in_memory).max() <= 1e-6
    assert np.abs(tf.nn.softmax(reloaded.predict(images, verbose=0)).numpy() - in_memory).max() <= 1e-6
    loaded = tf.saved_model.load(str(run_dir / "saved_model"))
    graph = loaded.serve.get_concrete_function().graph
    assert not any("Cudnn" in op.type for op in graph.get_operations())
