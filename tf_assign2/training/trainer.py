"""The Trainer: the one place a run's recipe is written.

Every training CLI run, every tuning trial and best-trial retrain, every sweep entry and the
benchmark train through it:

    plan (hardware choices, once) -> build (seed, precision, strategy, registry builder)
    -> compile (optimizer registry, loss, metrics, XLA, steps per call)
    -> fit (tf.data pipeline, callbacks, divergence) -> test metrics -> summary.json, curves.png
    -> SavedModel + model.keras

``Trainer.fit`` is the shared core (a tuning trial calls it with its own callbacks);
``Trainer.run`` is a whole run into a run folder, resumable from its backup.
"""

import dataclasses
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_assign2 import data, figures, models, runs
from tf_assign2.config import to_dict
from tf_assign2.optimizers import make_optimizer
from tf_assign2.training import callbacks as loop
from tf_assign2.training import ema, export, schedules
from tf_assign2.training import tta as test_time
from tf_assign2.training.losses import starter_cross_entropy, training_loss
from tf_assign2.training.plan import Plan, distribution_strategy, make_plan, precision_policy

EVAL_BATCH = 256


@dataclasses.dataclass
class FitResult:
    history: dict  # Keras' History.history of this fit call
    divergence: str = None  # why the run diverged (NaN/Inf loss or weights), None if it did not
    seconds: float = 0.0


class Trainer:
    """Trains the model ``config`` names on ``arrays`` (``data.Arrays``) under one resolved ``plan``.

    ``plan`` defaults to what this machine resolves for ``config``; a resumed run passes the plan
    recorded in its config.json.
    """

    def __init__(self, config, arrays, info, plan=None):
        self.config, self.arrays, self.info = config, arrays, info
        self.model = None  # the model of the last ``run``
        self.steps_per_epoch = data.steps_per_epoch(len(arrays.train_y), config.batch_size)
        total = config.total_steps()
        self.epochs = math.ceil(total / self.steps_per_epoch) if total else config.epochs
        self.total_steps = total or self.epochs * self.steps_per_epoch
        self.plan = plan or make_plan(config, self.steps_per_epoch)
        self.strategy = distribution_strategy(self.plan)

    # ----------------------------------------------------------------------- the model

    def build_model(self, use_cudnn=None):
        """The registry's model for the settings, seeded, at the plan's precision, in the strategy's scope."""
        keras.utils.set_random_seed(self.config.seed)  # the same initial weights for the same seed
        if self.config.deterministic:  # process-wide, as TensorFlow has it
            tf.config.experimental.enable_op_determinism()
        with precision_policy(self.plan), self.strategy.scope():
            return models.build(self.config, self.info.image_shape, self.info.num_classes,
                                self.plan.use_cudnn if use_cudnn is None else use_cudnn, self.plan.chains)

    def compile(self, model, steps_per_execution=None):
        """Optimizer, loss and metrics of the settings; XLA and steps per call of the plan."""
        with self.strategy.scope():
            model.compile(
                optimizer=make_optimizer(self.config, self.learning_rate()),
                loss=training_loss(self.config),
                metrics=["accuracy", keras.metrics.MeanMetricWrapper(starter_cross_entropy, name="starter_loss")],
                jit_compile=self.plan.jit,
                steps_per_execution=steps_per_execution or self.plan.steps_per_execution,
            )
            if self.plan.strategy == "default":  # a mirrored run's are made by Keras' own symbolic build
                self.make_training_variables(model)
        return model

    def make_training_variables(self, model):
        """The optimizer's slots and the metrics' totals, made now rather than in the first training step.

        Without a distribution strategy Keras makes them while it traces the first step, and a
        ``tf.function`` that makes variables is traced a second time, which for the unrolled recurrent
        layers cost seconds of the first epoch (docs/speed.md, "Traced once"). The values are those Keras
        would give them (zeros); the metrics are reset after the one pass on a blank image that builds them.
        """
        model.optimizer.build(model.trainable_variables)
        blank = np.zeros((1, *self.info.image_shape), "float32")
        model.compute_metrics(blank, np.zeros((1,), "int32"), model(blank, training=False), sample_weight=None)
        model.reset_metrics()

    def learning_rate(self):
        """``--lr`` as given (the starters' constant rate), or its ``--schedule`` over the run's steps."""
        return schedules.learning_rate(self.config, self.total_steps)

    # ----------------------------------------------------------------------- training

    def train_dataset(self, x=None, y=None, start_epoch=0):
        """The epoch-indexed training pipeline (shuffled by (seed, epoch); flipped and shifted if asked)."""
        x = self.arrays.train_x if x is None else x
        y = self.arrays.train_y if y is None else y
        return data.train_dataset(x, y, self.config.batch_size, self.config.seed, start_epoch,
                                  shift=self.config.augment_shift, flip=self.config.flip)

    def fit(self, model, epochs=None, initial_epoch=0, callbacks=(), train=None, validation="default", verbose=2):
        """Train ``model``; returns a FitResult whose ``divergence`` says if (and why) it diverged.

        ``train``/``validation`` are (x, y) arrays; by default the run's train and validation splits
        (no validation when that split is empty). Divergence is checked here, for every caller; with
        ``--ema``, validation scores the averaged weights, for every caller too.
        """
        x, y = train if train is not None else (None, None)
        if validation == "default":
            validation = (self.arrays.val_x, self.arrays.val_y)
        val_ds = data.eval_dataset(*validation, EVAL_BATCH) if validation is not None and len(validation[1]) else None
        stop = loop.DivergenceStop()
        averaged = [ema.ExactSwapEMAWeights()] if self.config.ema and val_ds is not None else []
        started = time.perf_counter()
        history = model.fit(
            self.train_dataset(x, y, initial_epoch),
            epochs=epochs or self.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=data.steps_per_epoch(len(self.arrays.train_y if y is None else y), self.config.batch_size),
            validation_data=val_ds,
            shuffle=False,  # train_dataset shuffles, per epoch, by (seed, epoch)
            callbacks=[stop, keras.callbacks.TerminateOnNaN(), *averaged, *callbacks],
            verbose=verbose,
        ).history
        return FitResult(history, divergence(model, history, stop), time.perf_counter() - started)

    def test_metrics(self, model, tta=None):
        """(loss, accuracy) on the test split, in float64 NumPy, under the run's ``--tta`` (or ``tta``).

        With test-time augmentation the class probabilities of the views (``test_time.tta_views``)
        are averaged, as ``python -m tf_assign2.evaluate --tta`` averages an export's.
        """
        tta = self.config.tta if tta is None else tta
        if tta == "none":
            logits = model.predict(data.eval_dataset(self.arrays.test_x, self.arrays.test_y, EVAL_BATCH), verbose=0)
            return loop.logits_metrics(logits, self.arrays.test_y)

        def probabilities(images):
            logits = model.predict(data.eval_dataset(images, self.arrays.test_y, EVAL_BATCH), verbose=0)
            return tf.nn.softmax(tf.cast(logits, tf.float32)).numpy()  # the exported models' float32 softmax

        views = test_time.view_probabilities(probabilities, self.arrays.test_x, tta)
        return test_time.probability_metrics(test_time.average(views), self.arrays.test_y)

    def plain_test_metrics(self, model, callbacks, epochs_completed):
        """(loss, accuracy) on the test split without augmentation, after training: the test curve's last
        point when it was taken on the final weights (the same prediction of the same data: on the full
        Fashion-MNIST a second pass cost 1.3 s), else a pass of its own (a run resumed only to export)."""
        curve = next((c for c in callbacks if isinstance(c, loop.TestCurve)), None)
        if curve is not None and curve.latest is not None and curve.latest[0] == epochs_completed:
            return curve.latest[1:]
        return self.test_metrics(model, tta="none")

    def float32_test_metrics(self, model):
        """``test_loss_float32`` and ``test_accuracy_float32`` of a run computed in 16 bits: its weights in
        float32, as model.onnx and model.tflite compute them (their CPU runtimes have no 16-bit kernels)."""
        loss, accuracy = self.test_metrics(export.float32_model(model))
        return {"test_loss_float32": loss, "test_accuracy_float32": accuracy}

    # ----------------------------------------------------------------------- a whole run

    def new_run_dir(self):
        """A fresh run folder under ``runs_dir`` holding config.json (removed again if that fails)."""
        run_dir = runs.new_run_dir(self.config, models.spec(self.config).label(self.config))
        try:
            self.write_config(run_dir)
        except BaseException:
            runs.remove_tree(run_dir)
            raise
        return run_dir

    def settings_record(self):
        """The settings as config.json holds them (JSON's lists for tuples): what each backup records."""
        return json.loads(json.dumps(to_dict(self.config)))

    def write_config(self, run_dir):
        """config.json: every setting, the resolved plan, the data actually used (with the test split's
        fingerprint), versions and device."""
        fingerprint = data.test_fingerprint(self.arrays.test_x, self.arrays.test_y, self.info)
        runs.write_json(Path(run_dir) / "config.json", {**to_dict(self.config), "plan": self.plan.to_dict(),
                                                       "data_info": self.info.__dict__, "test_data": fingerprint,
                                                       "environment": environment()})

    def run(self, run_dir, resume=False, extra_callbacks=()):
        """Train into ``run_dir``; returns the summary dict (also summary.json).

        ``extra_callbacks`` come after the run's own (the visualisation callback of
        ``analysis.training_visuals.for_run``, which the callers add where ``config.visualize``).

        status: "completed", "diverged" (NaN/Inf loss or weights) or "interrupted" (Ctrl-C or SIGTERM
        during training; what was done is written, the backup kept for --resume). The phases after
        training (test metrics, export, summary.json) resume too: a run stopped there keeps its
        backup of the last epoch, and ``--resume`` loads it and finishes them without retraining.
        """
        with runs.owned(run_dir, "run folder"), precision_policy(self.plan):  # the export's twin too
            return self._run(Path(run_dir), resume, extra_callbacks)

    def _run(self, run_dir, resume, extra_callbacks):
        config = self.config
        backup_dir, history_csv = run_dir / "backup", run_dir / "history.csv"
        # Resume from the newest intact backup; the history, the pipeline and the weights all start there.
        start_epoch = runs.latest_intact(backup_dir) if resume else 0
        if resume:
            runs.check_settings_unchanged(backup_dir, start_epoch, self.settings_record(), run_dir / "config.json")
            loop.truncate_history(history_csv, start_epoch)
        self.model = model = self.compile(self.build_model())
        throughput = loop.Throughput(len(self.arrays.train_y))
        callbacks = self.run_callbacks(run_dir, throughput, resume, start_epoch) + self.epoch_end_view(extra_callbacks)

        status, result = "completed", None
        started = time.perf_counter()
        try:
            result = self.fit(model, initial_epoch=start_epoch, callbacks=callbacks, verbose=2 if config.verbose else 0)
        except KeyboardInterrupt:
            status = "interrupted"
        train_seconds = time.perf_counter() - started
        if result is not None and result.divergence:
            status = "diverged"

        history = runs.read_history(history_csv)
        summary = {
            "status": status,
            "divergence": result.divergence if status == "diverged" else None,
            "run_dir": str(run_dir),
            "epochs_completed": len(history.get("loss", [])),
            "epochs_planned": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "steps_per_execution": self.plan.steps_per_execution,
            "jit_compile": self.plan.jit,
            "train_seconds": round(train_seconds, 3),
            "images_per_sec": self.images_per_sec(throughput, history),
            "batch_size": config.batch_size,
            "parameters": model.count_params(),
            "final_train_loss": _last(history, "loss"),
            "final_train_accuracy": _last(history, "accuracy"),
            "final_val_accuracy": _last(history, "val_accuracy"),
            "best_val_accuracy": _best(history, "val_accuracy"),
            "test_loss": None,
            "test_accuracy": None,
        }
        try:
            if status == "completed":
                self.score_and_export(model, callbacks, summary, run_dir)
            if history:
                figures.plot_curves(history, run_dir / "curves.png", title=run_dir.name)
            write_hparams(run_dir / "tensorboard", config, summary)
        except KeyboardInterrupt:  # after the last epoch: the backup stays, --resume finishes what is left
            status = summary["status"] = "interrupted"
            summary["interrupted_after_training"] = True
            summary.update({key: None for key in summary if key.startswith("test_")})  # the resume scores it
        runs.write_json(run_dir / "summary.json", summary)
        if status != "interrupted":  # the run is final: its backup has served (kept until summary.json is written)
            shutil.rmtree(backup_dir, ignore_errors=True)
        return summary

    def score_and_export(self, model, callbacks, summary, run_dir):
        """After the last epoch: the test metrics (with and without ``--tta``), then model.keras and the
        SavedModel (and the float32 figures their ONNX/LiteRT copies reproduce), into ``summary``."""
        config = self.config
        plain = self.plain_test_metrics(model, callbacks, summary["epochs_completed"])
        if config.tta == "none":
            summary["test_loss"], summary["test_accuracy"] = plain
        else:  # the augmented figure, and the one without test-time augmentation to compare
            summary["test_loss"], summary["test_accuracy"] = self.test_metrics(model)
            summary["test_loss_no_tta"], summary["test_accuracy_no_tta"] = plain
        if config.export:
            if self.plan.precision != "float32" and export.installed_formats():
                summary.update(self.float32_test_metrics(model))  # what the ONNX/LiteRT files will reproduce
            export.save_all(model, config, self.info, run_dir)

    def images_per_sec(self, throughput, history):
        """Training images/s: of the epochs this process trained, else (a resume that only finishes the
        export) of the epochs history.csv records; None when no epoch was timed."""
        images = len(self.arrays.train_y)
        rate = throughput.images_per_sec(self.config.batch_size, images, self.steps_per_epoch)
        if not math.isfinite(rate):
            seconds = [s for s in history.get("epoch_seconds", []) if math.isfinite(s) and s > 0]
            steady = seconds[1:] or seconds
            rate = float(np.median([min(self.steps_per_epoch * self.config.batch_size, images) / s for s in steady])) \
                if steady else float("nan")
        return round(rate, 1) if math.isfinite(rate) else None

    def run_callbacks(self, run_dir, throughput, resume, start_epoch=0):
        """The callbacks of a whole run, in the order they must run (see each class)."""
        config, backup_dir = self.config, run_dir / "backup"
        callbacks = []
        if config.test_curve:  # before CSVLogger, so its columns are written
            callbacks += self.epoch_end_view([self.test_curve()])
        callbacks += [
            throughput,
            loop.EpochBackup(backup_dir, restore_epoch=start_epoch, settings=self.settings_record()),
            keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resume),
            keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), histogram_freq=0),
        ]
        if not (config.quiet or config.verbose):  # after Throughput, whose epoch_seconds it shows
            callbacks.append(loop.ConsoleProgress(self.epochs, self.steps_per_epoch, config.batch_size))
        if config.display_step:
            callbacks.append(loop.StarterProgress(config.task, config.display_step, self.steps_per_epoch,
                                                  config.batch_size))
        if config.total_steps():
            callbacks.append(loop.StopAfterSteps(config.total_steps(), self.steps_per_epoch))
        return callbacks

    def test_curve(self):
        """The callback scoring the test split after each epoch (the assignment's per-epoch test accuracy)."""
        return loop.TestCurve(data.eval_dataset(self.arrays.test_x, self.arrays.test_y, EVAL_BATCH), self.arrays.test_y)

    def epoch_end_view(self, callbacks):
        """``callbacks`` as they are, or with ``--ema`` seeing the averaged weights at each epoch's end
        (``ema.around_epoch_end``; the backup, written between such groups, keeps the training state)."""
        return ema.around_epoch_end(callbacks) if self.config.ema else list(callbacks)


def divergence(model, history, stop=None):
    """Why training diverged, or None: a NaN/Inf loss seen by ``stop`` or in ``history``, or NaN/Inf weights."""
    if stop is not None and stop.reason:
        return stop.reason
    losses = history.get("loss", [])
    if any(not math.isfinite(v) for v in losses):
        return f"loss became {next(v for v in losses if not math.isfinite(v))}"
    if not all(np.isfinite(w).all() for w in model.get_weights()):
        return "the weights became NaN/Inf"
    return None


HPARAM_METRICS = ("test_accuracy", "best_val_accuracy", "final_train_loss", "train_seconds", "images_per_sec")


def write_hparams(log_dir, config, summary):
    """The run's settings and final metrics for TensorBoard's HParams dashboard.

    With every run, sweep entry and retrained best trial writing these, ``tensorboard --logdir
    runs`` compares runs in the HParams table, parallel-coordinates and scatter views. The
    settings are the schema's table columns (plus task, dataset and schedule) that the model reads;
    a setting that is off (None) is written as 0 so each column keeps one type.
    """
    from tensorboard.plugins.hparams import api as hp

    from tf_assign2.config import COLUMNS, ignored_by_model

    values = {}
    for name in ("task", "dataset", *COLUMNS, "schedule"):
        if not ignored_by_model(config.model, name):  # LeNet5 runs have no cell or units
            value = getattr(config, name)
            values[name] = 0.0 if value is None else value
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        hp.hparams(values, trial_id=Path(summary["run_dir"]).name)
        for name in HPARAM_METRICS:
            value = summary.get(name)
            if value is not None and math.isfinite(value):
                tf.summary.scalar(f"run/{name}", value, step=summary.get("epochs_completed") or 0)
    writer.close()


def recorded_plan(run_dir):
    """The plan a run folder's config.json recorded (None for runs made before plans were recorded)."""
    values = runs.read_json(Path(run_dir) / "config.json").get("plan")
    return Plan.from_dict(values) if values else None


def _last(history, key):
    values = history.get(key)
    return values[-1] if values else None


def _best(history, key):
    values = [v for v in history.get(key, []) if math.isfinite(v)]
    return max(values) if values else None


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
        "cpu_count": os.cpu_count(),
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
