"""TensorBoard's HParams dashboard: every run writes its settings and final metrics, read back from the
event files and from a running TensorBoard's hparams data endpoint; the console shows one compact line
per epoch (and a bar with the time left on a terminal)."""

import contextlib
import io
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tf_assign2 import runs
from tf_assign2.training import callbacks as loop


def _hparams_and_scalars(log_dir):
    """(hparams of the session start, {tag: last value}) from the events in ``log_dir`` (not subfolders)."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import metadata

    hparams, scalars = {}, {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME:
                    data = metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content) \
                        if value.tag == metadata.SESSION_START_INFO_TAG else None
                    if data is not None:
                        for name, v in data.hparams.items():
                            hparams[name] = v.string_value or v.number_value or v.bool_value
                elif value.tag.startswith("run/"):
                    scalars[value.tag] = float(tf.make_ndarray(value.tensor))
    return hparams, scalars


def test_a_run_writes_its_settings_and_results_for_the_hparams_dashboard(cifar_run):
    summary = json.loads((cifar_run.run_dir / "summary.json").read_text())
    hparams, scalars = _hparams_and_scalars(cifar_run.run_dir / "tensorboard")
    assert hparams["optimizer"] == "sgd" and hparams["lr"] == pytest.approx(0.01) and hparams["model"] == "lenet5"
    assert hparams["task"] == "cifar" and "units" not in hparams  # LeNet5 reads no recurrent setting
    assert scalars["run/test_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert scalars["run/images_per_sec"] == pytest.approx(summary["images_per_sec"])


def test_the_epoch_line_is_compact_and_the_bar_says_the_time_left(monkeypatch):
    plain, terminal = io.StringIO(), io.StringIO()
    for stream, tty in ((plain, False), (terminal, True)):
        progress = loop.ConsoleProgress(epochs=3, steps_per_epoch=4, batch_size=50, stream=stream, tty=tty)
        progress.on_epoch_begin(1)
        for batch in range(4):
            progress.on_train_batch_end(batch, {"loss": 1.5, "accuracy": 0.25})
        progress.on_epoch_end(1, {"loss": 1.2345, "accuracy": 0.5, "val_accuracy": 0.4, "test_accuracy": 0.45,
                                  "starter_loss": 1.2, "rss_mb": 900.0, "epoch_seconds": 2.0})
    assert plain.getvalue() == "epoch 2/3  loss 1.2345  acc 0.5000  val_acc 0.4000  test_acc 0.4500  100 images/s  2.0 s\n"
    frames = terminal.getvalue().split("\r")
    assert frames[1].startswith("epoch 2/3 [======> ") and "1/4" in frames[1] and "s left  loss 1.5000" in frames[1]
    assert frames[4].startswith("epoch 2/3 [========================] 4/4")
    assert terminal.getvalue().endswith("\033[Kepoch 2/3  loss 1.2345  acc 0.5000  val_acc 0.4000  "
                                        "test_acc 0.4500  100 images/s  2.0 s\n")
    # In a Jupyter notebook the same bar, as one display per epoch that the bar updates and the epoch's
    # line replaces: a saved notebook keeps that line, not every frame.
    shown = []

    class Handle:
        def update(self, obj):
            shown[-1].append(obj.data)

    def display(obj, display_id):
        shown.append([obj.data])
        return Handle()

    IPython = pytest.importorskip("IPython.display")
    monkeypatch.setattr(IPython, "display", display)
    notebook = io.StringIO()
    progress = loop.ConsoleProgress(epochs=3, steps_per_epoch=4, batch_size=50, stream=notebook, tty=False,
                                    notebook=True)
    progress.on_epoch_begin(1)
    for batch in range(4):
        progress.on_train_batch_end(batch, {"loss": 1.5, "accuracy": 0.25})
    progress.on_epoch_end(1, {"loss": 1.2345, "accuracy": 0.5, "epoch_seconds": 2.0})
    (frames,) = shown
    assert frames[0] == "epoch 2/3" and frames[1].startswith("epoch 2/3 [======> ") and "1/4" in frames[1]
    assert frames[-2].startswith("epoch 2/3 [========================] 4/4")  # the last step is always drawn
    assert frames[-1] == "epoch 2/3  loss 1.2345  acc 0.5000  100 images/s  2.0 s" and notebook.getvalue() == ""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_serves_the_runs_hparams(cifar_run):
    """A real TensorBoard on 127.0.0.1 over the runs folder: its HParams data endpoint lists the run."""
    port = _free_port()
    board = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(cifar_run.runs_dir),
                              "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data/plugin/hparams"
    request = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"], "colParams": [],
               "startIndex": 0, "sliceSize": 10}
    try:
        deadline, groups = time.monotonic() + 120, []
        while time.monotonic() < deadline and not groups:
            with contextlib.suppress(OSError):  # not listening yet, or still loading the events
                groups = _post(f"{base}/session_groups", request).get("sessionGroups", [])
            time.sleep(1)
        experiment = _post(f"{base}/experiment", {"experimentName": ""})
    finally:
        board.terminate()
        board.wait(timeout=30)
    (group,) = groups
    assert group["name"] == cifar_run.run_dir.name
    assert group["hparams"]["optimizer"] == "sgd" and group["hparams"]["lr"] == pytest.approx(0.01)
    names = {info["name"] for info in experiment["hparamInfos"]}
    assert {"model", "optimizer", "lr", "batch_size", "epochs", "seed"} <= names
    metrics = {m["name"]["tag"] for m in group["metricValues"]}
    assert "run/test_accuracy" in metrics


@pytest.mark.slow
def test_a_run_as_a_process_ends_with_every_file_complete(tmp_path):
    """``python -m tf_assign2.cifar`` ends its process without the final garbage collection
    (``cli.end_process``): its exit code, summary, history and TensorBoard events are all complete."""
    from conftest import run_cli

    done = run_cli("tf_assign2.cifar", "--ntrain", "40", "--ntest", "10", "--epochs", "2", "--optimizer", "adam",
                   "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and len(runs.read_history(run_dir / "history.csv")["loss"]) == 2
    hparams, scalars = _hparams_and_scalars(run_dir / "tensorboard")
    assert hparams["optimizer"] == "adam" and scalars["run/test_accuracy"] == pytest.approx(summary["test_accuracy"])
    import tensorflow as tf

    steps = [event.step for path in (run_dir / "tensorboard" / "visualization").glob("events.out.tfevents.*")
             for event in tf.compat.v1.train.summary_iterator(str(path)) if event.summary.value]
    assert {1, 2} <= set(steps)  # the last epoch's summaries, written just before the exit, are there
