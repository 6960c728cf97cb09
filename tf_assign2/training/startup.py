"""Starting TensorFlow for a run: imported quietly, devices configured before any op, seeded.

Shared by the commands and the Python API (the one path): both call ``start_tensorflow`` before
they build a model. On a GPU, memory growth is turned on first, so a notebook and a command in
the same runtime (a Colab session) can both use the GPU instead of the first taking all its memory.
"""

import contextlib
import os
import platform
import sys

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"


@contextlib.contextmanager
def quiet_native_stderr():
    """Hide TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) from stderr."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (some notebook front ends): nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


@contextlib.contextmanager
def scikit_learn_hidden_from_keras():
    """Import Keras without its scikit-learn wrappers' import of scikit-learn.

    ``import keras`` imports scikit-learn (and SciPy's statistics) for ``keras.wrappers``, which
    nothing here uses: most of a second of every command's start-up on 2 cores. Keras treats a
    missing scikit-learn as "wrappers unavailable", so it is hidden for the import and importable
    again right after (keras-tuner's Bayesian search imports it when a search needs it). Only a
    first import of Keras is affected; where Keras or scikit-learn is already loaded nothing changes.
    """
    hide = "keras" not in sys.modules and "sklearn" not in sys.modules
    if hide:
        sys.modules["sklearn"] = None  # an ImportError for `import sklearn`
    try:
        yield
    finally:
        if hide and sys.modules.get("sklearn", False) is None:
            del sys.modules["sklearn"]


def start_tensorflow(seed=None, deterministic=False, devices=None):
    """Import TensorFlow quietly, then configure, seed and (if asked) make it deterministic before any op.

    ``devices`` naming CPU:1 or higher splits the CPU into that many logical devices, so
    MirroredStrategy can be exercised without GPUs. Safe to call again in one process.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO and WARNING lines
    prefer_onednn()
    with quiet_native_stderr(), scikit_learn_hidden_from_keras():
        import keras
        import tensorflow as tf

        _split_cpu(tf, devices)
        for gpu in tf.config.list_physical_devices("GPU"):
            _grow_memory(tf, gpu)
    # One process trains many models in sweeps and searches; TF's warning that a new model's
    # functions were traced again is expected there, not something a user can act on.
    tf.get_logger().setLevel("ERROR")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def prefer_onednn():
    """Ask for TensorFlow's oneDNN kernels on x86 CPUs, unless the user set ``TF_ENABLE_ONEDNN_OPTS``.

    TensorFlow turns them on by itself only on CPUs with AVX512_VNNI, AVX512_BF16 or AMX. On an
    AVX2-only CPU they measured faster for every network, most for LeNet5 and, run as two chains
    (``training.plan``), the LSTM (docs/speed.md has the figures). TensorFlow reads the variable
    once, when it is first imported: where it is already loaded (a notebook that imported it first)
    this changes nothing, and the run's plan records which kernels it got.
    """
    if "tensorflow" not in sys.modules and platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault(ONEDNN, "1")


def onednn_enabled():
    """Whether this process's TensorFlow runs oneDNN's CPU kernels (False where it cannot say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


def _split_cpu(tf, devices):
    cpu_ids = [int(d.split(":")[-1]) for d in devices or () if d.upper().startswith("CPU")]
    if cpu_ids and max(cpu_ids) > 0:
        (cpu,) = tf.config.list_physical_devices("CPU")
        wanted = max(cpu_ids) + 1
        if len(tf.config.get_logical_device_configuration(cpu) or ()) != wanted:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()
                                                             for _ in range(wanted)])


def _grow_memory(tf, gpu):
    """Allocate GPU memory as needed rather than all of it at the first op. Once TensorFlow has
    initialised the GPU (the caller used it before) the setting is fixed, and stays as it is."""
    with contextlib.suppress(RuntimeError, ValueError):
        tf.config.experimental.set_memory_growth(gpu, True)
