"""Leave the process as it was found: what a Python call of this package may change, saved and restored.

A notebook calls ``train`` or ``sweep`` in a kernel that lives on. A run sets Keras' global dtype
policy (bfloat16 compute on CPUs with bfloat16 instructions), may turn on TensorFlow's op
determinism (``deterministic``), quietens TensorFlow's and absl's loggers, seeds Python's and
NumPy's global generators (``keras.utils.set_random_seed``) and, for a distributed search, sets
keras-tuner's environment variables. ``preserved()`` puts each back when the call returns, so the
user's next layer computes in the precision it would have, and their own random streams go on
where they were. What stays: TensorFlow's global seed (the last run's ``seed``), Keras' cleared
session between sweep entries, and logical CPU devices once made (``--devices``).

Nothing here imports TensorFlow: what is not loaded yet is restored to its default.
"""

import contextlib
import logging
import os
import random
import sys
import warnings


@contextlib.contextmanager
def preserved():
    """Save the process-wide settings a call may change; restore them however the call ends."""
    import numpy as np

    environ = dict(os.environ)
    python_random, numpy_random = random.getstate(), np.random.get_state()
    tf_logger = logging.getLogger("tensorflow")
    tf_level = tf_logger.level
    absl_level = _absl_verbosity()
    policy = _dtype_policy()
    determinism = _op_determinism()
    try:
        with warnings.catch_warnings():
            yield
    finally:
        _set_dtype_policy(policy)
        _set_op_determinism(determinism)
        tf_logger.setLevel(tf_level)
        if absl_level is not None:
            sys.modules["absl.logging"].set_verbosity(absl_level)
        random.setstate(python_random)
        np.random.set_state(numpy_random)
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        os.environ.update({k: v for k, v in environ.items() if os.environ.get(k) != v})


def _absl_verbosity():
    """absl's verbosity, importing absl's small logging module if TensorFlow has not yet (it will)."""
    try:
        from absl import logging as absl_logging
    except ImportError:
        return None
    return absl_logging.get_verbosity()


def _dtype_policy():
    """Keras' global dtype policy name ("float32" if Keras is not loaded: its default)."""
    keras = sys.modules.get("keras")
    return keras.config.dtype_policy().name if keras is not None else "float32"


def _set_dtype_policy(name):
    keras = sys.modules.get("keras")
    if keras is not None and keras.config.dtype_policy().name != name:
        keras.config.set_dtype_policy(name)


def _op_determinism():
    if "tensorflow" not in sys.modules:
        return False
    from tensorflow.python.framework import config as tf_config

    return tf_config.is_op_determinism_enabled()


def _set_op_determinism(enabled):
    if "tensorflow" not in sys.modules:
        return
    from tensorflow.python.framework import config as tf_config

    if tf_config.is_op_determinism_enabled() != enabled:
        (tf_config.enable_op_determinism if enabled else tf_config.disable_op_determinism)()
