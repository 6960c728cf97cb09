"""The GPU path (marker ``gpu``): XLA, mixed precision, cuDNN, MirroredStrategy and CPU serving of a GPU run.

Every test here is skipped where TensorFlow sees no GPU, so ``python -m pytest -q tests`` passes on
CPU-only machines; on a GPU ``python -m pytest -q -m gpu tests`` runs them, and
``python -m benchmarks.gpu_check OUT_DIR`` runs them and puts the outcome in its report
(docs/speed.md, "GPU check"). Each trains a few steps on small subsets of the real data,
through the shared ``Trainer`` or the CLI.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli

pytestmark = pytest.mark.gpu

# name -> (task, settings): every model the registry can train, as the CLIs build it
MODELS = {
    "lenet5": ("cifar", {}),
    "rnn": ("mnist", {"cell": "rnn"}),
    "lstm": ("mnist", {"cell": "lstm"}),
    "gru": ("mnist", {"cell": "gru"}),
}
CUDNN_OP = "CudnnRNNV3"  # what Keras' TensorFlow backend calls for a cuDNN LSTM/GRU


@pytest.fixture(scope="module", autouse=True)
def gpus():
    """The GPUs TensorFlow sees; every test of this file is skipped without one."""
    from tf_assign2.training.startup import start_tensorflow

    start_tensorflow()
    import tensorflow as tf

    found = tf.config.list_physical_devices("GPU")
    if not found:
        pytest.skip("no GPU visible to TensorFlow")
    return found


def make_config(name, data_root, tmp_path, **overrides):
    """A small run of model ``name``: 20 train / 5 test images per class, no validation split, batch 50."""
    from tf_assign2 import config

    task, model = MODELS[name]
    values = {"data_dir": str(data_root / ("CIFAR10" if task == "cifar" else "MNIST")), "ntrain": 20, "ntest": 5,
              "val_split": 0.0, "epochs": 2, "batch_size": 50, "runs_dir": str(tmp_path / "runs"), **model}
    return config.build(task, values, overrides)


def make_trainer(cfg):
    from tf_assign2 import data
    from tf_assign2.training.trainer import Trainer

    arrays, info = data.load_arrays(cfg)
    return Trainer(cfg, arrays, info)


def op_types(model):
    """Every op type in the traced graph of ``model``'s forward pass (nested functions included)."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph.as_graph_def()
    types = {node.op for node in graph.node}
    for function in graph.library.function:
        types |= {node.op for node in function.node_def}
    return types


def on_gpu(model):
    return all("GPU" in v.value.device for v in model.trainable_variables)


def weights_finite(model):
    return all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.parametrize("name", list(MODELS))
def test_xla_compiles_each_model_through_the_trainer(name, data_root, tmp_path):
    trainer = make_trainer(make_config(name, data_root, tmp_path, jit="on"))
    plan = trainer.plan
    assert plan.device == "GPU" and plan.jit and plan.precision == "float32"
    if name in ("lstm", "gru"):  # cuDNN cannot be XLA-compiled: the plan takes the generic kernel
        assert plan.use_cudnn is False
    model = trainer.compile(trainer.build_model())
    assert model.jit_compile  # Keras turns XLA off (with a warning) for layers that cannot be compiled
    assert CUDNN_OP not in op_types(model)
    result = trainer.fit(model, verbose=0)
    assert result.divergence is None and len(result.history["loss"]) == 2
    assert on_gpu(model) and weights_finite(model)


@pytest.mark.parametrize("name", list(MODELS))
def test_mixed_precision_trains(name, data_root, tmp_path):
    """float16 compute, float32 variables and logits, loss scaling; the plan's XLA/cuDNN choice for a GPU."""
    import keras

    trainer = make_trainer(make_config(name, data_root, tmp_path, precision="mixed", epochs=3))
    assert trainer.plan.precision == "mixed" and trainer.plan.device == "GPU"
    model = trainer.compile(trainer.build_model())
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    body = model.get_layer("conv1" if name == "lenet5" else f"{MODELS[name][1]['cell']}1")
    assert body.compute_dtype == "float16" and body.variable_dtype == "float32"
    assert model.get_layer("logits").compute_dtype == "float32"
    before = model.get_weights()
    result = trainer.fit(model, verbose=0)
    assert result.divergence is None, result.divergence
    assert all(np.isfinite(result.history["loss"]))
    assert weights_finite(model) and on_gpu(model)
    changed = sum(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert changed == len(before)  # loss scaling skipped at most some of the 12 steps, not all


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_cudnn_kernel_trains_and_its_portable_twin_computes_the_same(name, data_root, tmp_path):
    """``--use-cudnn on --jit off``: cuDNN's kernel trains; export's twin (generic kernel) gives the same logits."""
    import tensorflow as tf

    from tf_assign2.training import export

    cfg = make_config(name, data_root, tmp_path, jit="off", use_cudnn=True)
    trainer = make_trainer(cfg)
    assert trainer.plan.use_cudnn is True and not trainer.plan.jit
    model = trainer.compile(trainer.build_model())
    assert CUDNN_OP in op_types(model)
    result = trainer.fit(model, verbose=0)
    assert result.divergence is None and weights_finite(model) and on_gpu(model)

    twin = export.portable_twin(model, cfg, trainer.info)
    assert twin is not model and CUDNN_OP not in op_types(twin)
    images = trainer.arrays.test_x[:50].astype("float32") / 255.0
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)  # compare the kernels, not TF32 rounding
    try:
        logits, twin_logits = model.predict(images, verbose=0), twin.predict(images, verbose=0)
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(tf32)
    np.testing.assert_allclose(twin_logits, logits, rtol=1e-3, atol=1e-3)


def test_mirrored_strategy_over_the_visible_gpus(gpus, data_root, tmp_path):
    import tensorflow as tf

    trainer = make_trainer(make_config("lenet5", data_root, tmp_path, strategy="mirrored", ntrain=30, epochs=3))
    assert isinstance(trainer.strategy, tf.distribute.MirroredStrategy)
    assert trainer.strategy.num_replicas_in_sync == len(gpus)
    assert trainer.plan.steps_per_execution == 1  # Keras 3's multi-step function fails under MirroredStrategy
    model = trainer.compile(trainer.build_model())
    result = trainer.fit(model, verbose=0)
    losses = result.history["loss"]
    assert result.divergence is None and len(losses) == 3
    assert losses[-1] < losses[0]  # the replicas' averaged gradients do train


@pytest.fixture(scope="module")
def gpu_hidden_env():
    """The environment of a CPU-only serving process, checked: TensorFlow sees no GPU under it."""
    env = {"CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", "import tensorflow as tf; "
                           "print('GPUs', len(tf.config.list_physical_devices('GPU')))"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env})
    assert done.returncode == 0 and "GPUs 0" in done.stdout, done.stdout + done.stderr
    return env


@pytest.mark.parametrize("task, flags, kernel", [("cifar", (), "xla"), ("mnist", ("--cell", "lstm"), "cudnn")],
                         ids=["lenet5-xla", "lstm-cudnn"])
def test_a_gpu_trained_run_evaluates_the_same_with_the_gpu_hidden(task, flags, kernel, cli, gpu_hidden_env,
                                                                  tmp_path):
    """Trained by the CLI on the GPU (LeNet5 under XLA; the LSTM on cuDNN's kernel), its SavedModel
    evaluated by ``python -m tf_assign2.evaluate`` in a process that sees no GPU."""
    runs_dir = tmp_path / "runs"
    done = cli(f"tf_assign2.{task}", *flags, "--ntrain", "20", "--ntest", "10", "--epochs", "2", "--runs-dir", runs_dir)
    assert done.returncode == 0, done.stderr
    (run_dir,) = runs_dir.iterdir()
    plan = json.loads((run_dir / "config.json").read_text())["plan"]
    assert plan["device"] == "GPU"
    if kernel == "xla":
        assert plan["jit"] is True
    else:  # --jit auto on a GPU keeps cuDNN's LSTM; the export is its cuDNN-free twin
        assert plan["jit"] is False and plan["use_cudnn"] == "auto"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"

    evaluated = run_cli("tf_assign2.evaluate", run_dir, "--out", tmp_path / "eval", env=gpu_hidden_env)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert result["n_test"] == 100 and result["run_test_accuracy"] == summary["test_accuracy"]
    # The same accuracy: GPU kernels and the CPU's differ in rounding only, which can flip at most a
    # near-tie; one image of the 100 is allowed for that, a wrong twin or export would miss by far more.
    assert abs(result["accuracy"] - summary["test_accuracy"]) <= 1 / result["n_test"] + 1e-9, (
        result["accuracy"], summary["test_accuracy"])


def test_memory_grows_so_a_notebook_and_a_command_share_the_gpu(gpus, data_root, tmp_path):
    """This process (the notebook) has started TensorFlow on the GPU; a command started beside it still
    gets the GPU and trains there, since neither took all of the GPU's memory at its first op."""
    import tensorflow as tf

    assert all(tf.config.experimental.get_memory_growth(gpu) for gpu in gpus)
    tf.constant(1.0) + 1.0  # this process now holds a GPU context
    done = run_cli("tf_assign2.cifar", "--data-dir", data_root / "CIFAR10", "--ntrain", "20", "--ntest", "5",
                   "--epochs", "1", "--no-visualize", "--runs-dir", tmp_path / "runs")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("plan: GPU (")  # the run's first lines say the device
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["plan"]["device"] == "GPU"


def test_bfloat16_runs_where_the_gpu_has_it_and_is_refused_in_one_line_where_not(gpus, data_root, tmp_path, cli):
    from tf_assign2.training.plan import gpu_details

    name, capability = gpu_details()
    done = cli("tf_assign2.cifar", "--precision", "bfloat16", "--ntrain", "20", "--ntest", "5", "--epochs", "1",
               "--no-visualize", "--runs-dir", tmp_path / "runs")
    if capability >= (8, 0):
        assert done.returncode == 0, done.stderr
        assert "bfloat16 compute" in done.stdout
    else:
        assert done.returncode == 2 and done.stderr.count("\n") == 1
        assert f"compute capability {capability[0]}.{capability[1]}" in done.stderr and "--precision mixed" in done.stderr
