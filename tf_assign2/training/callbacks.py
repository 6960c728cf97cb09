"""The training loop's own callbacks: progress lines, divergence, exact resume, step limits, test curve, speed.

The visualisation callback lives in ``analysis.visualization``; these are the ones every run's
recipe (``training.trainer.Trainer``) needs to train, stop and resume correctly.
"""

import csv
import math
import time
from pathlib import Path

import keras
import numpy as np

from tf_assign2 import runs


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


class RandomStateBackup(keras.callbacks.Callback):
    """Backs up the dropout seed-generator states beside BackupAndRestore's weights.

    BackupAndRestore saves weights and optimizer state but not the random generators'
    states (``model.variables`` minus ``model.weights``), so a resumed run would draw other
    dropout masks. Saved with the epoch they belong to and restored only when that epoch is
    the one BackupAndRestore resumes from, so a SIGKILL between the two writes is harmless.
    Must come before BackupAndRestore in the callback list.
    """

    def __init__(self, backup_dir):
        super().__init__()
        self.path = Path(backup_dir) / "random_state.json"

    def _states(self):
        weights = {v.path for v in self.model.weights}
        return [v for v in self.model.variables if v.path not in weights]

    def on_train_begin(self, logs=None):
        resumed_epoch = completed_epochs(self.path.parent)
        if resumed_epoch and self.path.is_file():
            saved = runs.read_json(self.path)
            if saved["epoch"] == resumed_epoch:
                for variable in self._states():
                    if variable.path in saved["states"]:
                        variable.assign(np.asarray(saved["states"][variable.path], dtype=variable.dtype))

    def on_epoch_end(self, epoch, logs=None):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        states = {v.path: v.numpy().tolist() for v in self._states()}
        runs.write_json(self.path, {"epoch": epoch + 1, "states": states})


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

    def on_epoch_end(self, epoch, logs=None):
        logits = self.model.predict(self.test_ds, verbose=0)
        loss, acc = logits_metrics(logits, self.test_y)
        logs["test_loss"], logs["test_accuracy"] = loss, acc


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
    """Current resident memory of this process in MB (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


def logits_metrics(logits, labels):
    """Mean cross-entropy and accuracy from logits, in float64 NumPy (exact and reproducible)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    acc = float((logits.argmax(axis=1) == labels).mean())
    return loss, acc


def completed_epochs(backup_dir):
    """Epochs that BackupAndRestore's backup in ``backup_dir`` holds (0 if none)."""
    meta = Path(backup_dir) / "training_metadata.json"
    if meta.is_file():
        return int(runs.read_json(meta).get("epoch", 0))
    return 0


def read_history(path):
    """history.csv -> {column: [floats]}."""
    path = Path(path)
    if not path.is_file():
        return {}
    with path.open() as f:
        rows = list(csv.DictReader(f))
    columns = {k: [_number(r[k]) for r in rows] for k in (rows[0] if rows else {})}
    # Without validation data CSVLogger still writes val_* columns, filled with "NA": drop them.
    return {k: v for k, v in columns.items() if not all(math.isnan(x) for x in v)}


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def truncate_history(path, epochs):
    """On resume, drop rows of epochs the backup does not hold (killed between the two writes)."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    runs.write_atomic(path, "".join(lines[: 1 + epochs]))
