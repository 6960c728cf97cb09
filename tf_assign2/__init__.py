"""tf-assign2: a Keras 3 / TensorFlow 2 port of the Rice ELEC/COMP 576 Assignment 2 starters.

The public API, for notebooks and scripts (see examples/):

    from tf_assign2 import Config, Trainer, load_arrays, build_model, validate

    config = validate(Config(data_dir="../shared/data/CIFAR10", epochs=2))
    arrays, info = load_arrays(config)
    trainer = Trainer(config, arrays, info)
    model = trainer.compile(trainer.build_model())
    result = trainer.fit(model)

Importing the package does not import TensorFlow (the names below load their modules on first
use), so the command lines reject bad flags instantly.
"""

__version__ = "0.1.0"

_PUBLIC = {
    "Config": "tf_assign2.config",
    "validate": "tf_assign2.config",
    "UsageError": "tf_assign2.errors",
    "load_arrays": "tf_assign2.data",
    "load_test_split": "tf_assign2.data",
    "MODELS": "tf_assign2.models",
    "build_model": "tf_assign2.models",
    "OPTIMIZERS": "tf_assign2.training.optimizers",
    "Trainer": "tf_assign2.training.trainer",
    "make_plan": "tf_assign2.training.plan",
    "Visualization": "tf_assign2.analysis.visualization",
    "read_history": "tf_assign2.training.callbacks",
    "plot_filters": "tf_assign2.figures",
    "plot_curves": "tf_assign2.figures",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'tf_assign2' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_PUBLIC[name])
    return getattr(module, "build" if name == "build_model" else name)
