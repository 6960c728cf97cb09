"""The trainer on real data: loss falls, export matches, resume continues, divergence is caught;
the plan (XLA, precision, cuDNN, steps per call) resolves as measured."""

import csv
import json
import os
import platform
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import keep_trained_models

from tf_assign2 import data
from tf_assign2.analysis import evaluation
from tf_assign2.errors import UsageError
from tf_assign2.runs import latest_intact, read_history
from tf_assign2.training import plan as plans
from tf_assign2.training.fused_adam import FusedAdam
from tf_assign2.training.losses import starter_cross_entropy
from tf_assign2.training.trainer import Trainer, recorded_plan


def _setup(cfg):
    """The run's arrays, its Trainer and a fresh run folder holding config.json."""
    arrays, info = data.load_arrays(cfg)
    trainer = Trainer(cfg, arrays, info)
    return arrays, info, trainer, trainer.new_run_dir()


def _run(trainer, run_dir, **kwargs):
    """``trainer.run``; returns the summary and the model it trained."""
    with keep_trained_models() as built:
        summary = trainer.run(run_dir, **kwargs)
    ((_, model),) = built
    return summary, model


@pytest.mark.slow
def test_short_training_lowers_the_loss(small_config):
    cfg = small_config(ntrain=10)
    arrays, info = data.load_arrays(cfg)
    trainer = Trainer(cfg, arrays, info)
    model = trainer.compile(trainer.build_model())  # seeded with cfg.seed (0)
    x, y = arrays.train_x[:50] / 255.0, arrays.train_y[:50]
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    model.fit(x, y, epochs=15, batch_size=50, verbose=0)
    after = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert after < 0.5 * before


@pytest.mark.parametrize("network", ["lenet5", "lstm"])
def test_run_writes_every_output_and_export_matches(small_config, network):
    """Every output of a run; the exported files serve the trained model's predictions. The LSTM
    trains on a two-chain plan, and its files hold the stock Keras layers."""
    cfg = small_config(ntrain=10, epochs=2)  # 90 training images: one step per epoch
    if network == "lstm":
        cfg = small_config(ntrain=10, epochs=2, model="rnn", cell="lstm", dataset="mnist",
                           data_dir=cfg.data_dir.replace("CIFAR10", "MNIST"))
    arrays, info = data.load_arrays(cfg)
    trainer = Trainer(cfg, arrays, info, plan=plans.make_plan(cfg, 1, gpu=False, onednn=True))
    run_dir = trainer.new_run_dir()
    summary, model = _run(trainer, run_dir)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    for name in ("config.json", "history.csv", "curves.png", "summary.json", "model.keras", "saved_model/saved_model.pb"):
        assert (run_dir / name).exists(), name
    assert summary["images_per_sec"] > 0 and summary["parameters"] == model.count_params()
    assert trainer.plan.chains == (2 if network == "lstm" else 1)
    assert {type(layer).__name__ for layer in model.layers} >= ({"TwoChainLSTM"} if network == "lstm" else {"Conv2D"})
    config = json.loads((run_dir / "config.json").read_text())
    assert config["lr"] == (2e-3 if network == "lstm" else 1e-3) and config["environment"]["tensorflow"] == tf.__version__
    assert config["plan"] == json.loads(json.dumps(trainer.plan.to_dict())) and recorded_plan(run_dir) == trainer.plan
    columns = next(csv.reader((run_dir / "history.csv").open()))
    assert {"epoch", "loss", "accuracy", "val_accuracy", "test_accuracy", "rss_mb"} <= set(columns)

    # The SavedModel serves the in-memory model's probabilities, with no project code.
    serve, input_shape, num_classes, _ = evaluation.load_serving_function(run_dir / "saved_model")
    assert input_shape == (28, 28, 1) and num_classes == 10
    served = evaluation.predict(serve, arrays.test_x)
    in_memory = tf.nn.softmax(model.predict(arrays.test_x / 255.0, verbose=0)).numpy()
    # Equal to float32 rounding: the SavedModel's graph and Keras' predict sum in different orders
    # (1.1e-6 apart on an AVX2-only CPU, under 1e-6 on one with bfloat16 instructions).
    np.testing.assert_allclose(served, in_memory, rtol=1e-5, atol=1e-6)
    result = evaluation.evaluate(serve, arrays.test_x, arrays.test_y, num_classes)
    assert result["accuracy"] == summary["test_accuracy"]
    reloaded = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    assert not any(type(layer).__name__.startswith("TwoChain") for layer in reloaded.layers)
    np.testing.assert_allclose(reloaded.predict(arrays.test_x / 255.0, verbose=0),
                               model.predict(arrays.test_x / 255.0, verbose=0), atol=1e-6)


class InterruptAt(keras.callbacks.Callback):
    """Simulates Ctrl-C at the start of a given epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.at = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_at_the_next_epoch(small_config):
    cfg = small_config(ntrain=10, epochs=3, test_curve=False, export=False)
    arrays, info, trainer, run_dir = _setup(cfg)
    summary = trainer.run(run_dir, extra_callbacks=[InterruptAt(2)])
    assert summary["status"] == "interrupted" and summary["epochs_completed"] == 2
    assert not (run_dir / "saved_model").exists()
    assert latest_intact(run_dir / "backup") == 2  # the epoch --resume continues from

    keras.backend.clear_session()
    resumed = Trainer(cfg, arrays, info, plan=recorded_plan(run_dir))  # as --resume makes it
    assert resumed.plan == trainer.plan
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    summary = resumed.run(run_dir, resume=True, extra_callbacks=[record])
    assert seen == [2]
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    epochs = [row["epoch"] for row in csv.DictReader((run_dir / "history.csv").open())]
    assert epochs == ["0", "1", "2"]
    assert not (run_dir / "backup").exists()


@pytest.mark.parametrize("network", ["lenet5", "lstm"])
def test_training_makes_no_variables_so_its_step_is_traced_once(small_config, network):
    """A compiled model holds the optimizer's and the metrics' variables before ``fit``: a
    ``tf.function`` that made them would be traced twice. The metrics start from zero."""
    cfg = small_config(ntrain=10, ema=0.99)  # the moving average adds its own optimizer variables
    if network == "lstm":
        cfg = small_config(ntrain=10, ema=0.99, model="rnn", cell="lstm", dataset="mnist",
                           data_dir=cfg.data_dir.replace("CIFAR10", "MNIST"))
    arrays, info = data.load_arrays(cfg)
    trainer = Trainer(cfg, arrays, info, plan=plans.make_plan(cfg, 1, gpu=False, onednn=True))
    model = trainer.compile(trainer.build_model())
    assert all(float(keras.ops.sum(v)) == 0 for v in model.metrics_variables)
    made = []

    def record(next_creator, **kwargs):
        made.append(kwargs.get("name"))
        return next_creator(**kwargs)

    with tf.variable_creator_scope(record):
        trainer.fit(model, epochs=1, validation=None, verbose=0)
    assert made == []
    assert model.optimizer.iterations.numpy() == trainer.steps_per_epoch


def test_divergence_is_recorded_not_raised(small_config):
    cfg = small_config(lr=10.0, ntrain=10, epochs=2, test_curve=False)
    arrays, info, trainer, run_dir = _setup(cfg)
    summary = trainer.run(run_dir)
    assert summary["status"] == "diverged" and summary["test_accuracy"] is None
    assert "became" in summary["divergence"]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"
    assert not (run_dir / "saved_model").exists()


def test_starter_cross_entropy_matches_the_stable_loss_until_underflow():
    logits = tf.constant([[2.0, 1.0, 0.1], [0.0, 200.0, 0.0]])
    labels = tf.constant([0, 0])
    starter = starter_cross_entropy(labels, logits).numpy()
    stable = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True).numpy()
    assert starter[0] == pytest.approx(stable[0], rel=1e-6)
    assert np.isinf(starter[1]) and np.isfinite(stable[1])


def test_steps_follow_the_starter_counting(small_config):
    # MNIST starter: `while step * batchSize < trainingIters` from step 1 -> (iters - 1) // batch steps.
    assert small_config(training_iters=1000, batch_size=128).total_steps() == 7
    assert small_config(training_iters=1024, batch_size=128).total_steps() == 7
    assert small_config(training_iters=1025, batch_size=128).total_steps() == 8
    cfg = small_config(steps=7, batch_size=16, display_step=5, test_curve=False, export=False)
    arrays, info, trainer, run_dir = _setup(cfg)
    counter = []
    count = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: counter.append(batch))
    summary = trainer.run(run_dir, extra_callbacks=[count])
    assert summary["steps_per_execution"] == 1  # gcd keeps steps 5 and 7 visible
    assert len(counter) == 7 and summary["epochs_completed"] == 1


def test_steps_per_execution_divides_the_epoch(small_config):
    # Keras runs whole executions; 16 per call on an 18-step epoch would train 32 steps.
    cfg = small_config(steps_per_execution=16)
    for gpu in (False, True):  # asked for: the same on either device
        assert plans.resolve_steps_per_execution(cfg, 180, gpu) == 15
        assert plans.resolve_steps_per_execution(cfg, 18, gpu) == 9
        assert plans.resolve_steps_per_execution(cfg, 8, gpu) == 8
    # auto: 16 per call on a CPU, 32 on a GPU, each cut to a divisor of the epoch
    assert (plans.CPU_STEPS_PER_EXECUTION, plans.GPU_STEPS_PER_EXECUTION) == (16, 32)
    assert plans.resolve_steps_per_execution(small_config(), 180, gpu=False) == 15
    assert plans.resolve_steps_per_execution(small_config(), 180, gpu=True) == 30
    assert plans.resolve_steps_per_execution(small_config(strategy="mirrored"), 180, gpu=True) == 1


@pytest.mark.slow
def test_steps_per_execution_divides_the_epoch_in_a_run(small_config):
    cfg = small_config(epochs=2, batch_size=10, steps_per_execution=16, test_curve=False, export=False)
    arrays, info, trainer, run_dir = _setup(cfg)
    summary, model = _run(trainer, run_dir)
    steps_per_epoch = data.steps_per_epoch(len(arrays.train_y), cfg.batch_size)
    assert summary["steps_per_execution"] == 9 and steps_per_epoch == 18
    assert int(model.optimizer.iterations) == 2 * steps_per_epoch


def test_no_validation_split(small_config):
    cfg = small_config(val_split=0, ntrain=10, epochs=2, export=False)  # 100 training images: two steps per epoch
    arrays, info, trainer, run_dir = _setup(cfg)
    summary = trainer.run(run_dir)
    assert summary["status"] == "completed" and summary["best_val_accuracy"] is None
    history = read_history(run_dir / "history.csv")
    assert "val_accuracy" not in history and len(history["test_accuracy"]) == 2


def test_learning_rate_schedules(small_config):
    def trainer(**values):  # a run of 100 steps
        cfg = small_config(ntrain=5, steps=100, **values)
        return Trainer(cfg, *data.load_arrays(cfg))

    assert trainer(lr=0.01).total_steps == 100
    assert trainer(lr=0.01).learning_rate() == 0.01
    cosine = trainer(lr=0.01, schedule="cosine").learning_rate()
    assert float(cosine(0)) == pytest.approx(0.01) and float(cosine(50)) == pytest.approx(0.005)
    assert float(cosine(100)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow
def test_fused_adam_takes_the_same_steps_as_keras_adam():
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8), dtype=np.float32), rng.integers(0, 3, 64)
    weights = []
    for optimizer in (keras.optimizers.Adam(1e-2), FusedAdam(1e-2)):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8,))
        model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(16, activation="relu")(inputs)))
        model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    assert int(optimizer.iterations) == 24
    for keras_adam, fused in zip(*weights):
        np.testing.assert_allclose(fused, keras_adam, atol=1e-5)
    assert not np.allclose(weights[0][0], _initial_dense_kernel())  # the weights did move


def _initial_dense_kernel():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    return keras.Model(inputs, keras.layers.Dense(16)(inputs)).get_weights()[0]


def test_jit_auto_follows_the_measured_policy(small_config):
    """auto: on a CPU without oneDNN XLA for LSTM/GRU, with oneDNN for none; LeNet5 and SimpleRNN never;
    on a GPU XLA except where cuDNN runs."""
    def jit(gpu, onednn=False, **values):
        return plans.resolve_jit(small_config(**values), gpu, onednn)

    cells = ("lstm", "gru", "rnn")
    assert [jit(False, model="rnn", cell=cell) for cell in cells] == [True, True, False]
    assert [jit(False, True, model="rnn", cell=cell) for cell in cells] == [False, False, False]
    assert not jit(False) and not jit(False, True) and jit(True)  # LeNet5
    assert not jit(True, model="rnn", cell="lstm") and jit(True, model="rnn", cell="lstm", use_cudnn=False)
    assert not jit(False, model="rnn", cell="lstm", jit="off") and jit(False, jit="on") and jit(False, True, jit="on")
    gru = small_config(model="rnn", cell="gru")
    plan = plans.make_plan(gru, 10, gpu=False, onednn=False)
    assert plan.jit and plan.use_cudnn is False  # XLA: the generic kernel
    assert gru.use_cudnn == "auto"  # the settings are not rewritten: the choice is the plan's
    assert plans.make_plan(gru, 10, gpu=True).use_cudnn == "auto"  # a GPU keeps cuDNN (and no XLA)


def test_two_chains_for_the_cells_on_a_onednn_cpu_without_xla(small_config):
    """The plan trains the recurrent cells' batches as two chains where that measured faster, and says so
    in its line; a plan recorded before chains existed reads back as one chain."""
    def plan(gpu=False, onednn=True, **values):
        return plans.make_plan(small_config(**{"model": "rnn", **values}), 10, gpu=gpu, onednn=onednn)

    assert [plan(cell=cell).chains for cell in ("lstm", "gru", "rnn")] == [2, 2, 2]
    assert plan(cell="lstm").describe() == "CPU, float32, oneDNN, XLA off, 2 unrolled chains, 10 steps per call"
    assert plan(cell="lstm", onednn=False).chains == 1 and plan(cell="gru", gpu=True).chains == 1
    assert plan(cell="lstm", jit="on").chains == 1  # under XLA two chains ran one after the other
    assert plan(cell="rnn", onednn=False).chains == 1 and plan(cell="rnn", jit="on").chains == 1
    assert plans.make_plan(small_config(), 10, gpu=False, onednn=True).chains == 1  # LeNet5
    old = plan(cell="lstm").to_dict()
    del old["chains"], old["onednn"]
    assert plans.Plan.from_dict(old).chains == 1 and not plans.Plan.from_dict(old).onednn


ASK_AND_REPORT = """
import os
from tf_assign2 import global_state
from tf_assign2.training import startup
before = dict(os.environ)
with global_state.preserved():
    startup.start_tensorflow()
print(startup.onednn_enabled(), dict(os.environ) == before)
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="oneDNN is asked for on x86 only")
def test_a_fresh_process_gets_onednn_unless_the_user_said_no():
    """Starting TensorFlow asks for oneDNN's kernels; a user's TF_ENABLE_ONEDNN_OPTS=0 is kept; a Python
    call leaves the environment as it found it either way."""
    clean = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    for extra, expected in (({}, ["True", "True"]), ({"TF_ENABLE_ONEDNN_OPTS": "0"}, ["False", "True"])):
        out = subprocess.run([sys.executable, "-c", ASK_AND_REPORT], env={**clean, **extra}, capture_output=True,
                             text=True, timeout=120)
        assert out.stdout.split()[-2:] == expected, out.stderr[-2000:]


def test_precision_auto_is_bfloat16_only_on_cpus_with_native_bfloat16(small_config, monkeypatch):
    for native, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(plans, "native_bfloat16_cpu", lambda native=native: native)
        assert plans.make_plan(small_config(precision="auto"), 10, gpu=False).precision == expected
    assert plans.make_plan(small_config(precision="float32"), 10, gpu=False).precision == "float32"
    rnn = small_config(model="rnn", cell="lstm", dataset="mnist", data_dir=small_config().data_dir.replace("CIFAR10", "MNIST"))
    for native in (True, False):  # native or not: recurrent state stays float32
        monkeypatch.setattr(plans, "native_bfloat16_cpu", lambda native=native: native)
        assert plans.make_plan(rnn, 10, gpu=False).precision == "float32"
    with plans.precision_policy(plans.make_plan(small_config(precision="bfloat16"), 10, gpu=False)):
        assert keras.mixed_precision.global_policy().compute_dtype == "bfloat16"
    assert keras.mixed_precision.global_policy().compute_dtype == "float32"  # the caller's policy again


def test_bfloat16_is_refused_on_gpus_without_it_and_the_plan_says_its_device(small_config, monkeypatch):
    """A T4 (compute capability 7.5) has no bfloat16 arithmetic: refused in one sentence naming the GPU and
    what to use instead; an A100 (8.0) takes it. The plan's line names the device, precision and XLA."""
    config = small_config(precision="bfloat16")
    monkeypatch.setattr(plans, "gpu_details", lambda: ("Tesla T4", (7, 5)))
    with pytest.raises(UsageError, match=r"--precision bfloat16: this GPU \(Tesla T4, compute capability 7\.5\) "
                                         r"has no bfloat16 arithmetic .* use --precision mixed \(float16\) or float32"):
        plans.make_plan(config, 10, gpu=True)
    assert plans.make_plan(small_config(precision="mixed"), 10, gpu=True).precision == "mixed"
    monkeypatch.setattr(plans, "gpu_details", lambda: ("NVIDIA A100-SXM4-40GB", (8, 0)))
    plan = plans.make_plan(config, 10, gpu=True)
    assert plan.describe() == ("GPU (NVIDIA A100-SXM4-40GB, compute capability 8.0), bfloat16 compute, XLA on, "
                               "10 steps per call")
    monkeypatch.setattr(plans, "native_bfloat16_cpu", lambda: False)
    assert plans.make_plan(small_config(), 10, gpu=False, onednn=False).describe() == \
        "CPU, float32, XLA off, 10 steps per call"
    assert plans.make_plan(small_config(), 10, gpu=False, onednn=True).describe() == \
        "CPU, float32, oneDNN, XLA off, 10 steps per call"
