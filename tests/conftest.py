"""Shared fixtures: the real assignment data (../shared/data or $TF_ASSIGN2_DATA), small configs,
the command lines run in this process, and one tiny trained run that several test files read.

Two tiers (pytest.ini): ``-m "not slow"`` runs in this process with a few training steps at most;
``slow`` tests launch processes (signals, keras-tuner's chief/worker, the starter ports, the
mirrored strategy) or train for more than ten steps.
"""

import contextlib
import importlib
import io
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TF_ASSIGN2_DATA") or ROOT.parent / "shared" / "data").resolve()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The kernels the commands get (training.startup.prefer_onednn), before any test imports TensorFlow.
from tf_assign2.training.startup import prefer_onednn  # noqa: E402

prefer_onednn()


@pytest.fixture(scope="session", autouse=True)
def frozen_library_objects():
    """TensorFlow and Keras leave ~1M objects on the heap; freeze them out of the garbage collector's
    scans, so the ``gc.collect()`` that sweeps and keras-tuner call between runs takes milliseconds
    in this long-lived process instead of most of a second. Changes nothing the tests observe."""
    import gc

    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def clean_global_state_after_each_test():
    """Runs set Keras' global precision policy (bfloat16 on CPUs that have it) and ``--deterministic``
    turns on TensorFlow's op determinism for the whole process; every test starts clean."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_global_policy("float32")
    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config as tf_config

        if tf_config.is_op_determinism_enabled():
            tf_config.disable_op_determinism()


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


def call_main(module, *args):
    """``python -m <module> <args>`` in this process: the entry module's ``main(argv)``; returns the exit code.

    Every entry module (tf_assign2.cifar, .mnist, .evaluate, .tune, .sweep, .report, .visualize)
    has ``main(argv)``, the very function its ``python -m`` runs.
    """
    return importlib.import_module(module).main([str(a) for a in args])


@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli("tf_assign2.cifar", *args)``: a command line run in this process, as ``run_cli`` runs it
    in a new one (same environment); returns a CompletedProcess with the exit code and the output."""
    monkeypatch.setenv("TF_ASSIGN2_DATA", str(DATA))

    def run(module, *args):
        capsys.readouterr()
        code = call_main(module, *args)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess([module, *map(str, args)], code, out, err)

    return run


@contextlib.contextmanager
def keep_trained_models():
    """Collect the models ``Trainer.build_model`` builds meanwhile (``Trainer.run`` builds its own):
    yields a list of (trainer, model)."""
    from tf_assign2.training.trainer import Trainer

    built, build = [], Trainer.build_model

    def keep(self, use_cudnn=None):
        model = build(self, use_cudnn)
        built.append((self, model))
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "build_model", keep)
        yield built


TINY_RUN_ARGS = ("--optimizer", "sgd", "--lr", "0.01", "--ntrain", "10", "--ntest", "5", "--epochs", "2")


@pytest.fixture(scope="session")
def cifar_run(data_root, tmp_path_factory):
    """One tiny LeNet5 run through ``python -m tf_assign2.cifar`` (in this process), visualisation and
    export on: SGD 0.01, 10 train / 5 test images per class (1 step per epoch), 2 epochs.

    Tests only read it; a test that writes into a run folder works on ``copy_run``. Besides the
    run folder it holds the exit code, the output, the trained model and the arrays it saw.
    """
    runs_dir = tmp_path_factory.mktemp("cifar_run") / "runs"
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, keep_trained_models() as built:
        patch.setenv("TF_ASSIGN2_DATA", str(data_root))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = call_main("tf_assign2.cifar", *TINY_RUN_ARGS, "--runs-dir", runs_dir)
    sys.modules["keras"].mixed_precision.set_global_policy("float32")
    assert code == 0, err.getvalue()
    (run_dir,) = runs_dir.iterdir()
    ((trainer, model),) = built
    return types.SimpleNamespace(runs_dir=runs_dir, run_dir=run_dir, returncode=code, stdout=out.getvalue(),
                                 stderr=err.getvalue(), model=model, arrays=trainer.arrays)


def copy_run(run_dir, parent):
    """A copy of a run folder under ``parent`` (for tests that write into it); returns its path."""
    return Path(shutil.copytree(run_dir, Path(parent) / Path(run_dir).name))


TRIAL_DONE = re.compile(r"^trial \d+(?:/\d+)? done(?: on (\S+))?: ", re.M)


def trials_done(text):
    """The tuning trials a search's output says finished, one entry per 'trial 3/10 done: ...' line:
    the worker that ran it ('trial 3/10 done on tuner0: ...'), None for a standalone search."""
    return [m.group(1) for m in TRIAL_DONE.finditer(text)]
