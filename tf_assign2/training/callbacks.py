"""The training loop's own callbacks: progress lines, divergence, exact resume, step limits, test curve, speed.

The visualisation callback lives in ``analysis.training_visuals``; these are the ones every run's
recipe (``training.trainer.Trainer``) needs to train, stop and resume correctly.
"""

import math
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np

from tf_assign2 import runs
from tf_assign2.errors import UsageError
from tf_assign2.runs import (  # noqa: F401 (the backup's names, used here and by the tests as loop.*)
    RANDOM_STATE,
    STATE,
    WEIGHTS,
    backup_epochs,
    epoch_folder,
    latest_intact,
    sha256,
)


class StarterProgress(keras.callbacks.Callback):
    """Prints the starters' progress lines every ``display_step`` steps.

    CIFAR: ``step %d, training accuracy %g``; MNIST: ``Iter N, Minibatch Loss= ...,
    Training Accuracy= ...`` with N counted in samples as in the starter. The values are
    the mean over the last ``display_step`` steps (recovered from Keras' running means),
    which is what the starter's single-minibatch print estimates, with less noise.
    """

    def __init__(self, style, display_step, steps_per_epoch, batch_size):
        super().__init__()
        self.style, self.display_step = style, display_step
        self.steps_per_epoch, self.batch_size = steps_per_epoch, batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.seen, self.loss_sum, self.acc_sum = 0, 0.0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch * self.steps_per_epoch + batch + 1
        if step % self.display_step:
            return
        seen = batch + 1
        loss_sum, acc_sum = float(logs["loss"]) * seen, float(logs["accuracy"]) * seen
        window = max(seen - self.seen, 1)
        loss = (loss_sum - self.loss_sum) / window
        acc = (acc_sum - self.acc_sum) / window
        self.seen, self.loss_sum, self.acc_sum = seen, loss_sum, acc_sum
        if self.style == "cifar":
            print(f"step {step}, training accuracy {acc:g}", flush=True)
        else:
            print(
                f"Iter {step * self.batch_size}, Minibatch Loss= {loss:.6f}, Training Accuracy= {acc:.5f}",
                flush=True,
            )


class DivergenceStop(keras.callbacks.Callback):
    """Stops training when the loss or the starter's loss (see ``starter_cross_entropy``) is NaN/Inf.

    Complements ``TerminateOnNaN`` (which watches ``loss`` only) and remembers why it stopped.
    """

    def __init__(self):
        super().__init__()
        self.reason = None

    def _check(self, logs, keys):
        """Stop at the first of ``keys`` in ``logs`` that is NaN/Inf, remembering which."""
        for key in keys:
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)) and self.reason is None:
                self.reason = f"{key} became {float(value)} in epoch {self.epoch + 1}"
                self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, ("loss", "starter_loss"))

    def on_epoch_end(self, epoch, logs=None):
        # The last step can break the weights after every training loss was finite (a 1-step
        # epoch at lr 10): the validation loss, computed with the new weights, shows it.
        self._check(logs, ("val_loss", "val_starter_loss"))


class EpochBackup(keras.callbacks.Callback):
    """After every epoch, the whole training state in ``backup_dir/epoch-NNNN/``, written atomically.

    What a resumed run needs to continue exactly: weights with the optimizer's state
    (``model.weights.h5``) and the random generators' states (dropout masks; they are not among
    the weights, ``random_state.json``). Each epoch is written into a temporary folder, its files'
    SHA-256 recorded in ``state.json`` last, and the folder renamed into place: a kill or a failed
    write at any moment leaves either the complete epoch or no epoch, never half a file under a
    final name. The newest two epochs are kept, so a backup damaged later still has a fallback.

    ``restore_epoch`` (from ``latest_intact``) is the epoch to load in ``on_train_begin``; the
    caller starts its pipeline and history there too, so all of them agree on one epoch.
    """

    KEEP = 2

    def __init__(self, backup_dir, restore_epoch=0, settings=None):
        super().__init__()
        self.backup_dir, self.restore_epoch, self.settings = Path(backup_dir), restore_epoch, settings

    def _random_states(self):
        weights = {v.path for v in self.model.weights}
        return [v for v in self.model.variables if v.path not in weights]

    def on_train_begin(self, logs=None):
        if not self.restore_epoch:
            return
        folder = epoch_folder(self.backup_dir, self.restore_epoch)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # its variables must exist to be loaded
        self.model.load_weights(folder / WEIGHTS)
        # Matched by position: the same network has its generators in the same order, while their
        # paths carry a per-process counter (seed_generator_1 in a process that built a model before).
        saved = runs.read_json(folder / RANDOM_STATE)["states"]
        variables = self._random_states()
        if len(saved) != len(variables):
            raise UsageError(f"{folder}: backup holds {len(saved)} random states, the model has {len(variables)}")
        for variable, (_, values) in zip(variables, saved):
            variable.assign(np.asarray(values, dtype=variable.dtype))

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.backup_dir / f".epoch-{done:04d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self.model.save_weights(tmp / WEIGHTS)
        states = [[v.path, v.numpy().tolist()] for v in self._random_states()]
        runs.write_json(tmp / RANDOM_STATE, {"epoch": done, "states": states})
        runs.write_json(tmp / STATE, {"epoch": done, "sha256": {n: sha256(tmp / n) for n in (WEIGHTS, RANDOM_STATE)},
                                      "settings": self.settings})
        final = epoch_folder(self.backup_dir, done)
        shutil.rmtree(final, ignore_errors=True)  # a damaged copy of this epoch from before a resume
        os.replace(tmp, final)
        for old in backup_epochs(self.backup_dir)[: -self.KEEP]:
            shutil.rmtree(epoch_folder(self.backup_dir, old), ignore_errors=True)


class ConsoleProgress(keras.callbacks.Callback):
    """What a person watching sees: on a terminal or in a Jupyter notebook, a bar within each epoch
    with the time left; after each epoch one compact line (train loss and accuracy, validation and
    test accuracy, images/s). Elsewhere (CI, a log file): the epoch line alone. The bookkeeping
    metrics (starter_loss, rss_mb, epoch_seconds ...) stay in history.csv and TensorBoard.

    On a terminal the bar redraws its line (carriage return, then ``ESC [K`` erases the rest). In a
    notebook each epoch is one display that the bar updates in place and the epoch's line replaces
    (IPython's ``display_id``): a saved notebook, or its HTML, keeps one line per epoch rather than
    every frame of the bar.
    """

    WIDTH = 24
    NOTEBOOK_INTERVAL = 0.25  # seconds between two redraws of a notebook's bar

    def __init__(self, epochs, steps_per_epoch, batch_size, stream=None, tty=None, notebook=None):
        super().__init__()
        self.epochs, self.steps, self.batch_size = epochs, steps_per_epoch, batch_size
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.notebook = (not self.tty and _jupyter_output(self.stream)) if notebook is None else notebook
        self.display, self.drawn = None, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.started = epoch + 1, time.perf_counter()
        if self.notebook:
            from IPython.display import Pretty, display

            self.display = display(Pretty(f"epoch {self.epoch}/{self.epochs}"), display_id=True)

    def on_train_batch_end(self, batch, logs=None):
        if not (self.tty or self.notebook):
            return
        now = time.perf_counter()
        done = min(batch + 1, self.steps)
        if self.notebook and now - self.drawn < self.NOTEBOOK_INTERVAL and done < self.steps:
            return
        self.drawn = now
        left = (now - self.started) / done * (self.steps - done)
        filled = int(self.WIDTH * done / self.steps)
        bar = "=" * filled + (">" if filled < self.WIDTH else "") + " " * (self.WIDTH - filled - 1)
        loss, acc = (logs or {}).get("loss"), (logs or {}).get("accuracy")
        numbers = f"  loss {float(loss):.4f}  acc {float(acc):.4f}" if loss is not None and acc is not None else ""
        self._show(f"epoch {self.epoch}/{self.epochs} [{bar}] {done}/{self.steps}  {left:4.0f} s left{numbers}", False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = logs.get("epoch_seconds") or (time.perf_counter() - self.started)
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
        for key, label in (("loss", "loss"), ("accuracy", "acc"), ("val_accuracy", "val_acc"),
                           ("test_accuracy", "test_acc")):
            if logs.get(key) is not None:
                parts.append(f"{label} {float(logs[key]):.4f}")
        parts.append(f"{self.steps * self.batch_size / seconds:,.0f} images/s" if seconds else "")
        parts.append(f"{seconds:.1f} s")
        self._show("  ".join(p for p in parts if p), True)

    def _show(self, text, final):
        """A frame of the bar (``final``: the epoch's line) where this progress is shown."""
        if self.notebook and self.display is not None:
            from IPython.display import Pretty

            self.display.update(Pretty(text))
            return
        start = "\r\033[K" if self.tty and final else "\r" if self.tty else ""
        self.stream.write(start + text + ("\n" if final else ""))
        self.stream.flush()


def _jupyter_output(stream):
    """True for a Jupyter kernel's own stdout (ipykernel's OutStream), where progress is a display."""
    return "ipykernel" in sys.modules and type(stream).__module__.startswith("ipykernel")


class StopAfterSteps(keras.callbacks.Callback):
    """Ends training after exactly ``total_steps`` optimizer steps (the starter's step count)."""

    def __init__(self, total_steps, steps_per_epoch):
        super().__init__()
        self.total_steps, self.steps_per_epoch = total_steps, steps_per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch * self.steps_per_epoch + batch + 1 >= self.total_steps:
            self.model.stop_training = True


class TestCurve(keras.callbacks.Callback):
    """Adds ``test_loss``/``test_accuracy`` to each epoch's logs, for the assignment's plots.

    The test split never steers training (no early stopping, no checkpoint selection
    reads it); it is only recorded, as the assignment asks for test accuracy per epoch.
    Must come before CSVLogger in the callback list so the columns are written.
    """

    def __init__(self, test_ds, test_y):
        super().__init__()
        self.test_ds, self.test_y = test_ds, test_y
        self.latest = None  # (epochs done, loss, accuracy) of the last point

    def on_epoch_end(self, epoch, logs=None):
        logits = self.model.predict(self.test_ds, verbose=0)
        loss, acc = logits_metrics(logits, self.test_y)
        logs["test_loss"], logs["test_accuracy"] = loss, acc
        self.latest = (epoch + 1, loss, acc)


class Throughput(keras.callbacks.Callback):
    """Training images/s per epoch, timed from epoch start to the last training step."""

    def __init__(self, images_per_epoch):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.epoch_seconds = []
        self.images = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = self.last = time.perf_counter()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.last = time.perf_counter()
        self.steps = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(self.last - self.start)
        self.images.append(self.steps)
        if logs is not None:
            logs["rss_mb"] = resident_memory_mb()  # history.csv then shows memory stays flat
            logs["epoch_seconds"] = round(self.epoch_seconds[-1], 3)  # for time-to-accuracy from history.csv

    def images_per_sec(self, batch_size, n_train, steps_per_epoch):
        """Median over epochs after the first (which includes tracing), or the first alone."""
        rates = []
        for seconds, steps in zip(self.epoch_seconds, self.images):
            images = min(min(steps, steps_per_epoch) * batch_size, n_train)  # full batches only
            rates.append(images / seconds if seconds > 0 else float("nan"))
        steady = rates[1:] or rates
        return float(np.median(steady)) if steady else float("nan")


def resident_memory_mb():
    """Current resident memory of this process in MB (psutil)."""
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def logits_metrics(logits, labels):
    """Mean cross-entropy and accuracy from logits, in float64 NumPy (exact and reproducible)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    acc = float((logits.argmax(axis=1) == labels).mean())
    return loss, acc


def truncate_history(path, epochs):
    """On resume, drop rows of epochs the backup does not hold (killed between the two writes)."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    runs.write_atomic(path, "".join(lines[: 1 + epochs]))
