"""tf-assign2: a Keras 3 / TensorFlow 2 port of the Rice ELEC/COMP 576 Assignment 2 starters.

The Python API, for notebooks and scripts (docs/python-api.md; every command calls the same functions):

    import tf_assign2 as ta

    config = ta.settings("cifar", optimizer="adam", epochs=10)   # the task's defaults, validated
    run = ta.train(config)                                       # a Run bound to its folder
    run.test_accuracy, run.curves(), run.filters(), run.evaluate(), run.visualize(methods="all")
    ta.sweep("configs/sweeps/cifar_optimizers.yaml"); ta.tune("mnist", max_trials=8); ta.report([...])

Lower down, for your own loops: ``Trainer`` (the one place a run's recipe is written) and
``load_data``. Importing the package does not import TensorFlow (the names below load their
modules on first use), so the command lines reject bad flags instantly.
"""

__version__ = "0.1.0"

_PUBLIC = {
    "settings": "tf_assign2.api",
    "train": "tf_assign2.api",
    "resume": "tf_assign2.api",
    "open_run": "tf_assign2.api",
    "Run": "tf_assign2.api",
    "evaluate": "tf_assign2.api",
    "sweep": "tf_assign2.api",
    "tune": "tf_assign2.api",
    "search_space": "tf_assign2.api",
    "report": "tf_assign2.api",
    "register_model": "tf_assign2.api",
    "register_optimizer": "tf_assign2.api",
    "load_data": "tf_assign2.api",
    "Trainer": "tf_assign2.training.trainer",
    "UsageError": "tf_assign2.errors",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'tf_assign2' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
