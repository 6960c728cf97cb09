"""Shared fixtures: the real assignment data (../shared/data or $TF_ASSIGN2_DATA) and small configs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TF_ASSIGN2_DATA") or ROOT.parent / "shared" / "data").resolve()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """Runs set Keras' global precision policy (bfloat16 on CPUs that have it); tests start clean."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def data_root():
    if not (DATA / "CIFAR10" / "Train").is_dir():
        pytest.fail(f"test data not found at {DATA}: set TF_ASSIGN2_DATA to the folder holding CIFAR10/ and MNIST/")
    return DATA


@pytest.fixture
def small_config(data_root, tmp_path):
    """A CIFAR config on 20 train / 5 test images per class, writing runs under tmp_path."""
    from tf_assign2.config import Config, validate

    def make(**overrides):
        values = dict(data_dir=str(data_root / "CIFAR10"), ntrain=20, ntest=5, epochs=1, runs_dir=str(tmp_path / "runs"))
        values.update(overrides)
        return validate(Config(**values))

    return make


def run_cli(*args, env=None, timeout=300, cwd=None):
    """Run ``python -m <args>`` as a user would; returns CompletedProcess with text output."""
    full_env = {**os.environ, "TF_ASSIGN2_DATA": str(DATA), "PYTHONUNBUFFERED": "1"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd
    )
