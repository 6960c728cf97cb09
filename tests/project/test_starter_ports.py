"""The TF2 starter ports run end to end on the shared data, print in the TF1 files' format,
and their variables have the shapes and parameter counts of tf_assign2.models."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATA, ROOT

PORTS = ROOT / "starter_ports"
FLOAT = r"[0-9.eE+-]+|nan|inf"


def run_port(script, *args):
    env = {**os.environ, "TF_ASSIGN2_DATA": str(DATA), "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, str(PORTS / script), *args], capture_output=True, text=True,
                            env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()


def checkpoint_shapes(result_dir):
    """{variable path in the checkpoint: shape} of the checkpoint a port saved."""
    import tensorflow as tf

    path = tf.train.latest_checkpoint(str(result_dir))
    assert path, f"no checkpoint in {result_dir}"
    return {name.split("/.ATTRIBUTES")[0]: tuple(shape) for name, shape in tf.train.list_variables(path)
            if name.endswith("VARIABLE_VALUE") and not name.startswith("save_counter")}


def test_ports_are_standalone():
    for script in ("trainCifarStarterCode.py", "lstmMNISTStarterCode.py"):
        text = (PORTS / script).read_text()
        assert not re.search(r"^\s*(import|from)\s+tf_assign2", text, re.M), script


@pytest.mark.slow
def test_cifar_port_runs_and_matches_lenet5(data_root, tmp_path):
    from tf_assign2 import models

    lines = run_port("trainCifarStarterCode.py", "--data-dir", str(data_root / "CIFAR10"), "--ntrain", "5",
                     "--ntest", "3", "--batchsize", "10", "--iterations", "21", "--result-dir", str(tmp_path))
    steps = [line for line in lines if line.startswith("step ")]
    assert [int(re.match(r"step (\d+), training accuracy (" + FLOAT + ")$", s).group(1)) for s in steps] == [0, 10, 20]
    for s in steps:
        assert 0 <= float(s.rsplit(" ", 1)[1]) <= 1
    final = re.fullmatch(r"test accuracy (" + FLOAT + ")", lines[-1])
    assert final and 0 <= float(final.group(1)) <= 1
    # 30 test images: the accuracy is a multiple of 1/30
    assert np.isclose(float(final.group(1)) * 30, round(float(final.group(1)) * 30), atol=1e-4)
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())  # tf.summary

    shapes = checkpoint_shapes(tmp_path)
    names = ["W_conv1", "b_conv1", "W_conv2", "b_conv2", "W_fc1", "b_fc1", "W_fc2", "b_fc2"]
    assert sorted(shapes) == sorted(names)
    model = models.lenet5()
    assert [shapes[n] for n in names] == [tuple(w.shape) for w in model.weights]
    assert shapes["W_conv1"] == (5, 5, 1, 32) and shapes["W_fc1"] == (3136, 1024)
    assert sum(int(np.prod(s)) for s in shapes.values()) == model.count_params() == 3_274_634


@pytest.mark.slow
@pytest.mark.parametrize("cell,units", [("lstm", 16), ("rnn", 8), ("gru", 12)])
def test_mnist_port_runs_and_matches_rnn_classifier(data_root, tmp_path, cell, units):
    from tf_assign2 import models

    lines = run_port("lstmMNISTStarterCode.py", "--data-dir", str(data_root / "MNIST"), "--ntrain", "5",
                     "--ntest", "3", "--cell", cell, "--nHidden", str(units), "--trainingIters", "100",
                     "--batchSize", "10", "--displayStep", "3", "--result-dir", str(tmp_path))
    iters = [line for line in lines if line.startswith("Iter ")]
    pattern = r"Iter (\d+), Minibatch Loss= (\d+\.\d{6}), Training Accuracy= (\d\.\d{5})"
    # while step * batchSize < trainingIters: steps 1..9, printed at 3, 6, 9 (Iter counts samples)
    assert [int(re.fullmatch(pattern, line).group(1)) for line in iters] == [30, 60, 90]
    assert lines[-2] == "Optimization finished"
    final = re.fullmatch(r"Testing Accuracy: (" + FLOAT + ")", lines[-1])
    assert final and 0 <= float(final.group(1)) <= 1

    shapes = checkpoint_shapes(tmp_path)
    cell_vars = ["lstmCell/kernel", "lstmCell/recurrent_kernel", "lstmCell/bias"]
    assert sorted(shapes) == sorted(cell_vars + ["weights/out", "biases/out"])
    model = models.rnn_classifier(cell, units)
    ours = [shapes[n] for n in cell_vars + ["weights/out", "biases/out"]]
    assert ours == [tuple(w.shape) for w in model.weights]
    assert sum(int(np.prod(s)) for s in ours) == model.count_params()
