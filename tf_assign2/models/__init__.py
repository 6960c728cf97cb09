"""The model registry: every network a run can train, by the name ``--model`` takes.

Each entry is a ``ModelSpec``: how to build the Keras functional model from the settings, which
settings it reads (the others are blank in sweep and report tables), how runs and reports name
it, and the hardware facts the plan needs (which layers have a cuDNN kernel, whether bfloat16
pays on CPUs). Adding a model is one entry here plus its builder module; build, export, run
names, sweeps, reports and the benchmark read everything from the entry.

Builders are imported when called, so this registry loads without TensorFlow.
"""

import dataclasses
import importlib

CELLS = ("rnn", "lstm", "gru")
INITS = ("starter", "keras")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    builder: str  # "module:function", called as function(config, input_shape, num_classes, use_cudnn)
    family: str  # "cnn" or "recurrent": which figures and report sections apply
    settings: tuple  # the model settings it reads; the others are left blank in tables
    label: object  # config -> short name for run folders and tables ("lenet5", "lstm128")
    title: object  # config -> name in reports ("LeNet5", "LSTM-128")
    cudnn: object = lambda config: False  # config -> True if its layers have cuDNN kernels (LSTM/GRU)
    bfloat16_on_cpu: bool = False  # precision auto: bfloat16 compute on CPUs with native bfloat16
    adam_lr: float = None  # its measured default learning rate for Adam (None: the starters' 1e-3)

    def build(self, config, input_shape, num_classes, use_cudnn="auto"):
        module, function = self.builder.split(":")
        return getattr(importlib.import_module(module), function)(config, input_shape, num_classes, use_cudnn)


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
        # Adam 2e-3 ended higher than 1e-3 for every cell and seed measured (see config.default_lr).
        adam_lr=2e-3,
    ),
}


def spec(config):
    """The registry entry of ``config.model``."""
    return MODELS[config.model]


def build(config, input_shape, num_classes, use_cudnn="auto"):
    """The Keras model (logits out) that ``config`` asks for, for images of ``input_shape``."""
    return spec(config).build(config, tuple(input_shape), num_classes, use_cudnn)


def lenet5(*args, **kwargs):
    from tf_assign2.models.convnet import lenet5 as make

    return make(*args, **kwargs)


def rnn_classifier(*args, **kwargs):
    from tf_assign2.models.recurrent import rnn_classifier as make

    return make(*args, **kwargs)
