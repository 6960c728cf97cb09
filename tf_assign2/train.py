"""Compile, fit, evaluate and export one run; shared by every CLI, the tuner and the sweeps.

``run`` is the whole story of a training run, top to bottom:
compile (optimizer by name, XLA policy, steps_per_execution) -> fit with callbacks
(CSVLogger, TensorBoard, BackupAndRestore, TerminateOnNaN, the starter's progress lines,
per-epoch test accuracy for the curves, throughput) -> test accuracy -> summary.json,
curves.png -> SavedModel + model.keras.
"""

import csv
import functools
import math
import platform
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_assign2 import callbacks as visualization
from tf_assign2 import data, export, runs, viz
from tf_assign2.config import to_dict

# Measured by `python -m tf_assign2.bench` on the 2-core CPU (see BENCHMARKS.md):
# running several steps per tf.function call removes most of fit's per-step overhead.
CPU_STEPS_PER_EXECUTION = 16
GPU_STEPS_PER_EXECUTION = 32


def gpu_available():
    return bool(tf.config.list_physical_devices("GPU"))


def has_cudnn_kernel(config):
    """LSTM and GRU: the layers with a cuDNN kernel on GPUs, and the ones XLA speeds up on CPUs."""
    return config.model == "rnn" and config.cell in ("lstm", "gru")


def resolve_jit(config):
    """XLA where it pays, as measured (BENCHMARKS.md, docs/bench/).

    On a GPU: on, except for LSTM/GRU, which keep cuDNN's kernels there (cuDNN cannot be
    XLA-compiled). On a CPU: on for LSTM/GRU (1.4x the samples/s of the plain graph on a 2-core
    AVX2 EPYC, 1.0-1.2x on an AVX512 one), off for LeNet5 (2-3x slower with XLA) and for
    the SimpleRNN (0.9x on one CPU, 1.3x on the other: no clear gain).
    """
    if config.jit != "auto":
        return config.jit == "on"
    if gpu_available():
        return not has_cudnn_kernel(config) or config.use_cudnn is False
    return has_cudnn_kernel(config)


def resolve_execution(config):
    """Settle the choices that depend on the hardware; the result is what config.json records.

    cuDNN's LSTM/GRU kernels are fastest on a GPU but cannot be XLA-compiled, so with XLA on
    the recurrent layers use the generic kernel (``use_cudnn=False``); asking for both is an error.
    """
    from tf_assign2.errors import UsageError

    jit = resolve_jit(config)
    if config.use_cudnn is True and not gpu_available():
        raise UsageError("--use-cudnn on: no GPU found; use auto (the default) or off")
    if jit and has_cudnn_kernel(config):
        if config.use_cudnn is True:
            raise UsageError("--use-cudnn on with --jit on: cuDNN kernels cannot be XLA-compiled; drop one")
        config.use_cudnn = False
    if config.precision == "auto":
        # bfloat16 pays for the convolutions (~1.5x here); recurrent state rounded to bfloat16 at
        # each of the 28 steps gained little speed and risks accuracy, so RNNs stay float32.
        fast = config.model == "lenet5" and native_bfloat16_cpu() and not gpu_available()
        config.precision = "bfloat16" if fast else "float32"
    if config.precision == "mixed" and not gpu_available():
        print("warning: --precision mixed (float16) on a CPU is much slower than float32", flush=True)
    return config


@functools.cache
def native_bfloat16_cpu():
    """True on CPUs with bfloat16 dot-product instructions (AVX512_BF16 or AMX), where oneDNN's
    bfloat16 kernels measured ~1.5x faster than float32 for LeNet5 (BENCHMARKS.md)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


POLICIES = {"float32": "float32", "mixed": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def setup_precision(config):
    """Mixed precision computes in float16/bfloat16 with float32 variables; logits stay float32."""
    keras.mixed_precision.set_global_policy(POLICIES[config.precision])


def distribution_strategy(config):
    """The tf.distribute strategy for ``--strategy``: one device, or mirrored over ``--devices``/all GPUs."""
    if config.strategy == "mirrored":
        devices = list(config.devices) if config.devices else None
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def resolve_steps_per_execution(config, steps_per_epoch):
    """Steps per compiled call: a divisor of the epoch and of the step counts the user asked to see."""
    requested = config.steps_per_execution
    if config.strategy == "mirrored":
        # Keras 3.15's multi-step train function fails under MirroredStrategy ("You must feed a
        # value for placeholder tensor ..."), so mirrored runs execute one step per call.
        requested = 1
    elif requested is None:
        requested = GPU_STEPS_PER_EXECUTION if gpu_available() else CPU_STEPS_PER_EXECUTION
    # Keras runs whole executions: with an endless pipeline an epoch of 180 steps at 16 per call
    # would train 192 steps. A divisor of the epoch keeps every epoch exactly one pass.
    spe = max(d for d in range(1, min(requested, steps_per_epoch) + 1) if steps_per_epoch % d == 0)
    for exact in (config.display_step, config.total_steps()):
        if exact:
            spe = math.gcd(spe, exact)
    return max(1, spe)


@keras.saving.register_keras_serializable(package="tf_assign2")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam, each variable updated by TF's fused ``ResourceApplyAdam`` kernel.

    Same update rule as ``keras.optimizers.Adam`` (and the starter's ``tf.train.AdamOptimizer``),
    in one kernel per variable instead of ~10 element-wise ops: LeNet5's 3.3M parameters make
    the optimizer a fifth of each batch-50 step here, and the fused kernel measured ~15% more
    images/s (BENCHMARKS.md). AMSGrad and distributed updates take Keras' own path.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or tf.distribute.has_strategy():
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


def make_optimizer(name, lr, momentum=0.9, clipnorm=None):
    """Optimizers by the names the assignment uses; 'momentum' is SGD with momentum.

    ``clipnorm`` clips the global gradient norm (the usual remedy for RNN gradient spikes).
    """
    common = {"global_clipnorm": clipnorm} if clipnorm else {}
    if name == "adam":
        return FusedAdam(lr, **common)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, **common)
    if name == "sgd":
        return keras.optimizers.SGD(lr, **common)
    if name == "momentum":
        return keras.optimizers.SGD(lr, momentum=momentum, **common)
    if name == "adagrad":
        return keras.optimizers.Adagrad(lr, **common)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr, **common)
    raise ValueError(f"unknown optimizer {name!r}")


@keras.saving.register_keras_serializable(package="tf_assign2")
def starter_cross_entropy(y_true, logits):
    """The TF1 starters' loss, literally: ``-sum(y * log(softmax(logits)))`` per sample, in float32.

    We train on the stable ``from_logits`` loss, which never overflows. This metric tracks
    the loss the students' code optimised: it becomes inf exactly where a class probability
    underflows to 0, the point at which the TF1 starter's loss and weights turned NaN
    (e.g. Adam at 1e-2). ``DivergenceStop`` ends such a run as "diverged".
    """
    labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
    probs = tf.nn.softmax(tf.cast(logits, tf.float32))
    return -tf.math.log(tf.gather(probs, labels, batch_dims=1))


def learning_rate(config, total_steps=None):
    """``--lr`` as given (the starters' constant rate), or cosine-decayed to 0 over the run."""
    if config.schedule == "cosine" and total_steps:
        return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=total_steps)
    return config.lr


def compile_model(model, config, steps_per_execution=1, total_steps=None):
    model.compile(
        optimizer=make_optimizer(config.optimizer, learning_rate(config, total_steps), config.momentum, config.clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy", keras.metrics.MeanMetricWrapper(starter_cross_entropy, name="starter_loss")],
        jit_compile=resolve_jit(config),
        steps_per_execution=steps_per_execution,
    )
    return model


def environment():
    """Library versions and device, recorded in config.json."""
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": __import__("os").cpu_count(),
        "gpus": [g.name for g in gpus],
        "device": "GPU" if gpus else "CPU",
    }


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# --------------------------------------------------------------------------- callbacks


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
        resumed_epoch = _completed_epochs(self.path.parent)
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


# --------------------------------------------------------------------------- the run


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


def _completed_epochs(backup_dir):
    meta = Path(backup_dir) / "training_metadata.json"
    if meta.is_file():
        return int(runs.read_json(meta).get("epoch", 0))
    return 0


def _truncate_history(path, epochs):
    """On resume, drop rows of epochs the backup does not hold (killed between the two writes)."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    runs.write_atomic(path, "".join(lines[: 1 + epochs]))


def _diverged(model, history):
    losses = history.get("loss", [])
    if any(not math.isfinite(v) for v in losses):
        return True
    return not all(np.isfinite(w).all() for w in model.get_weights())


def run(config, arrays, info, model, run_dir, resume=False, extra_callbacks=()):
    """Train ``model`` on ``arrays`` into ``run_dir``; returns the summary dict (also summary.json).

    status: "completed", "diverged" (NaN/Inf loss; TerminateOnNaN ended it) or
    "interrupted" (Ctrl-C; what was done is written, the backup kept for --resume).
    """
    run_dir = Path(run_dir)
    n_train = len(arrays.train_y)
    steps_per_epoch = data.steps_per_epoch(n_train, config.batch_size)
    total_steps = config.total_steps()
    epochs = math.ceil(total_steps / steps_per_epoch) if total_steps else config.epochs
    spe = resolve_steps_per_execution(config, steps_per_epoch)
    compile_model(model, config, spe, total_steps or epochs * steps_per_epoch)

    backup_dir = run_dir / "backup"
    history_csv = run_dir / "history.csv"
    start_epoch = _completed_epochs(backup_dir) if resume else 0
    if resume:
        _truncate_history(history_csv, start_epoch)

    train_ds = data.train_dataset(arrays.train_x, arrays.train_y, config.batch_size, config.seed, start_epoch,
                                  shift=config.augment_shift)
    val_ds = data.eval_dataset(arrays.val_x, arrays.val_y, 256) if len(arrays.val_y) else None
    test_ds = data.eval_dataset(arrays.test_x, arrays.test_y, 256)

    throughput = Throughput(n_train)
    divergence = DivergenceStop()
    callbacks = []
    if config.test_curve:
        callbacks.append(TestCurve(test_ds, arrays.test_y))
    callbacks += [
        throughput,
        divergence,
        keras.callbacks.TerminateOnNaN(),
        RandomStateBackup(backup_dir),
        keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True),
        keras.callbacks.CSVLogger(str(history_csv), append=resume),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), histogram_freq=0),
    ]
    if config.visualize:
        callbacks.append(visualization.Visualization(run_dir, arrays.test_x))
    if config.display_step:
        callbacks.append(StarterProgress(config.task, config.display_step, steps_per_epoch, config.batch_size))
    if total_steps:
        callbacks.append(StopAfterSteps(total_steps, steps_per_epoch))
    callbacks += list(extra_callbacks)

    status = "completed"
    started = time.perf_counter()
    try:
        model.fit(
            train_ds,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=val_ds,
            shuffle=False,  # train_dataset shuffles, per epoch, by (seed, epoch)
            callbacks=callbacks,
            verbose=2,
        )
    except KeyboardInterrupt:
        status = "interrupted"
    train_seconds = time.perf_counter() - started

    history = read_history(history_csv)
    if status == "completed" and (divergence.reason or _diverged(model, history)):
        status = "diverged"

    summary = {
        "status": status,
        "divergence": divergence.reason if status == "diverged" else None,
        "run_dir": str(run_dir),
        "epochs_completed": len(history.get("loss", [])),
        "epochs_planned": epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps_per_execution": spe,
        "jit_compile": resolve_jit(config),
        "train_seconds": round(train_seconds, 3),
        "images_per_sec": round(throughput.images_per_sec(config.batch_size, n_train, steps_per_epoch), 1),
        "batch_size": config.batch_size,
        "parameters": model.count_params(),
        "final_train_loss": _last(history, "loss"),
        "final_train_accuracy": _last(history, "accuracy"),
        "final_val_accuracy": _last(history, "val_accuracy"),
        "best_val_accuracy": _best(history, "val_accuracy"),
    }
    if status == "completed":
        logits = model.predict(test_ds, verbose=0)
        summary["test_loss"], summary["test_accuracy"] = logits_metrics(logits, arrays.test_y)
        export.save_all(model, config, info, run_dir)
    else:
        summary["test_loss"] = summary["test_accuracy"] = None
    if history:
        viz.plot_curves(history, run_dir / "curves.png", title=run_dir.name)
    runs.write_json(run_dir / "summary.json", summary)
    return summary


def _last(history, key):
    values = history.get(key)
    return values[-1] if values else None


def _best(history, key):
    values = [v for v in history.get(key, []) if math.isfinite(v)]
    return max(values) if values else None


def write_config(config, info, run_dir):
    """config.json: every resolved setting, the data actually used, versions and device."""
    runs.write_json(
        Path(run_dir) / "config.json",
        {**to_dict(config), "data_info": info.__dict__, "environment": environment()},
    )
