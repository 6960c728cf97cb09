"""The model registry: every network a run can train, by the name ``--model`` takes.

Each entry is a ``ModelSpec``: how to build the Keras functional model from the settings, which
settings it reads (the others are blank in sweep and report tables), how runs and reports name
it, and the hardware facts the plan needs (which layers have a cuDNN kernel, whether bfloat16
pays on CPUs). Adding a model is one entry here plus its builder module; build, export, run
names, sweeps, reports and the benchmark read everything from the entry.

Builders are imported when called, so this registry loads without TensorFlow.

The registry is open: ``register_model`` (also ``tf_assign2.register_model``) adds a network from
a notebook or a script, and every command and Python call of this process can then train, sweep,
search, export, visualise and report it by its name.
"""

import dataclasses
import importlib
import inspect
from collections.abc import Callable

from tf_assign2.errors import UsageError
from tf_assign2.models.options import CELLS, INITS  # noqa: F401 (the registry's names)
from tf_assign2.registry import check_new_name


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    # A function (config, input_shape, num_classes) -> Keras model of logits, or "module:function"
    # naming one; a builder with a ``use_cudnn`` or ``chains`` parameter also gets that plan choice.
    builder: object
    family: str  # "cnn", "recurrent" or another word: which figures and report sections apply
    settings: tuple  # the model settings it reads; the others are left blank in tables
    label: object  # config -> short name for run folders and tables ("lenet5", "lstm128")
    title: object  # config -> name in reports ("LeNet5", "LSTM-128")
    cudnn: object = lambda config: False  # config -> True if its layers have cuDNN kernels (LSTM/GRU)
    bfloat16_on_cpu: bool = False  # precision auto: bfloat16 compute on CPUs with native bfloat16
    chains_on_cpu: object = lambda config: False  # config -> True if two batch chains pay on a CPU (the cells)
    adam_lr: float = None  # its measured default learning rate for Adam (None: the starters' 1e-3)

    def build(self, config, input_shape, num_classes, use_cudnn="auto", chains=1):
        function = self.builder
        if isinstance(function, str):
            module, name = function.split(":")
            function = getattr(importlib.import_module(module), name)
        accepted = inspect.signature(function).parameters
        plan_choices = {key: value for key, value in (("use_cudnn", use_cudnn), ("chains", chains)) if key in accepted}
        return function(config, input_shape, num_classes, **plan_choices)


CELL_TITLES = {"rnn": "BasicRNN", "lstm": "LSTM", "gru": "GRU"}

MODELS = {
    "lenet5": ModelSpec(
        builder="tf_assign2.models.convnet:from_config",
        family="cnn",
        settings=("conv_filters", "fc_units", "init", "batchnorm"),
        label=lambda c: "lenet5",
        title=lambda c: "LeNet5",
        # bfloat16 pays for the convolutions (~1.5x on AVX512_BF16 CPUs, docs/speed.md).
        bfloat16_on_cpu=True,
    ),
    "rnn": ModelSpec(
        builder="tf_assign2.models.recurrent:from_config",
        family="recurrent",
        settings=("cell", "units", "layers", "init", "use_cudnn"),
        label=lambda c: f"{c.cell}{c.units}",
        title=lambda c: f"{CELL_TITLES[c.cell]}-{c.units}",
        cudnn=lambda c: c.cell in ("lstm", "gru"),
        # Two unrolled batch chains measured faster for every cell on oneDNN (docs/speed.md).
        chains_on_cpu=lambda c: True,
        # Adam 2e-3 ended higher than 1e-3 for every cell and seed measured (see config.default_lr).
        adam_lr=2e-3,
    ),
}


BUILT_IN = frozenset(MODELS)


def register_model(name: str, builder: Callable, *, family: str = "other", settings: tuple = (),
                   title: Callable | None = None, label: Callable | None = None, bfloat16_on_cpu: bool = False,
                   adam_lr: float | None = None, replace: bool = False) -> ModelSpec:
    """Make ``builder`` trainable as ``--model NAME`` / ``settings(..., model=NAME)`` in this process.

    ``builder(config, input_shape, num_classes)`` returns a Keras model from images (H, W, C) in
    [0, 1] to logits; it may read the model settings named in ``settings`` (e.g. ``("fc_units",)``:
    the others are blank in tables). ``family`` "cnn" or "recurrent" opts into those figures and
    report sections. A second registration of a name is refused, unless ``replace=True`` replaces
    your own (a notebook cell run again); the built-in models are never replaced. The public
    ``tf_assign2.register_model`` also checks ``settings`` against the settings schema, which this
    layer does not import.
    """
    check_new_name("register_model", "a model", name, MODELS, BUILT_IN, replace)
    if not callable(builder):
        raise UsageError(f"register_model {name!r}: builder must be a function (config, input_shape, num_classes)")
    MODELS[name] = ModelSpec(builder=builder, family=family, settings=tuple(settings),
                             label=label or (lambda config: name), title=title or (lambda config: name),
                             bfloat16_on_cpu=bfloat16_on_cpu, adam_lr=adam_lr)
    return MODELS[name]


def recurrent_layers(model):
    """The recurrent layers of a built Keras model (empty for a CNN): the one test of "reads rows" for a
    model in hand - a run's, a loaded model.keras or a SavedModel's twin - whatever registry entry made it."""
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.layers.RNN)]


def spec(config):
    """The registry entry of ``config.model``."""
    return MODELS[config.model]


def build(config, input_shape, num_classes, use_cudnn="auto", chains=1):
    """The Keras model (logits out) that ``config`` asks for, for images of ``input_shape``."""
    return spec(config).build(config, tuple(input_shape), num_classes, use_cudnn, chains)


def lenet5(*args, **kwargs):
    from tf_assign2.models.convnet import lenet5 as make

    return make(*args, **kwargs)


def rnn_classifier(*args, **kwargs):
    from tf_assign2.models.recurrent import rnn_classifier as make

    return make(*args, **kwargs)
