"""LeNet5 as the CIFAR starter (trainCifarStarterCode.py) defines it, layer for layer.

The model takes images (height, width, channels) in [0, 1] and returns **logits**; the loss uses
``from_logits=True`` (numerically stable, and a NaN shows up in the loss rather than being hidden
by a clipped softmax). Exports add a named ``probabilities`` softmax on top.

``batchnorm=True`` is a variant for comparison, not the assignment's network: batch
normalisation between conv1, conv2, fc1 and their ReLUs.
"""

from functools import partial

import keras
from keras import layers

from tf_assign2.models.options import INITS


def _starter_conv_init(init):
    """The starter's ``weight_variable``/``bias_variable``: truncated normal 0.1, bias 0.1."""
    if init == "starter":
        return {
            "kernel_initializer": keras.initializers.TruncatedNormal(stddev=0.1),
            "bias_initializer": keras.initializers.Constant(0.1),
        }
    return {}


def lenet5(
    input_shape=(28, 28, 1),
    num_classes=10,
    conv_filters=(32, 64),
    fc_units=1024,
    dropout_rate=0.5,
    init="starter",
    name="lenet5",
    batchnorm=False,
):
    """LeNet5 as the assignment specifies it.

    conv 5x5x32 + ReLU, max-pool 2, conv 5x5x64 + ReLU, max-pool 2,
    FC 7*7*64 -> 1024 + ReLU, dropout (keep_prob 0.5 = rate 0.5), FC 1024 -> classes.
    'same' padding as in the starter's ``conv2d`` keeps 28 -> 14 -> 7.
    With the defaults and 10 classes: 3,274,634 parameters.

    ``batchnorm``: conv1, conv2 and fc1 are followed by ``BatchNormalization`` and then a ReLU
    layer (``conv1_bn``, ``conv1_relu`` ...); they lose their biases, which the normalisation's
    offset replaces (3,277,994 parameters with the defaults: 1,120 biases fewer, 4,480 normalisation
    parameters more, half of them its moving statistics).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    init_kwargs = _starter_conv_init(init)
    inputs = keras.Input(shape=input_shape, name="images")
    conv1 = partial(layers.Conv2D, conv_filters[0], 5, padding="same", name="conv1", **init_kwargs)
    conv2 = partial(layers.Conv2D, conv_filters[1], 5, padding="same", name="conv2", **init_kwargs)
    fc1 = partial(layers.Dense, fc_units, name="fc1", **init_kwargs)
    x = _with_relu(conv1, inputs, batchnorm)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = _with_relu(conv2, x, batchnorm)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = _with_relu(fc1, x, batchnorm)
    x = layers.Dropout(dropout_rate, name="dropout")(x)
    logits = layers.Dense(num_classes, name="logits", dtype="float32", **init_kwargs)(x)
    return keras.Model(inputs, logits, name=name)


def _with_relu(make, x, batchnorm):
    """The layer ``make`` builds, applied to ``x`` with its ReLU: as the layer's own activation (the
    assignment's network), or, with ``batchnorm``, the layer without bias, then batch normalisation,
    then a ReLU layer (the normalisation's offset does the bias's job)."""
    if not batchnorm:
        return make(activation="relu")(x)
    layer = make(use_bias=False)
    x = layers.BatchNormalization(name=f"{layer.name}_bn")(layer(x))
    return layers.ReLU(name=f"{layer.name}_relu")(x)


def from_config(config, input_shape, num_classes):
    """The registry's builder: LeNet5 with the run's filters, fc units, initialisation and batchnorm choice."""
    return lenet5(input_shape=input_shape, num_classes=num_classes, conv_filters=tuple(config.conv_filters),
                  fc_units=config.fc_units, init=config.init, batchnorm=config.batchnorm)
