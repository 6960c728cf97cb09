"""The only place layers are defined: LeNet5 and the recurrent MNIST classifiers.

Both follow the 2016 TF1 starter files layer for layer. Every model takes images of
shape (height, width, channels) in [0, 1] and returns **logits**; the loss uses
``from_logits=True`` (numerically stable, and a NaN shows up in the loss rather than
being hidden by a clipped softmax). Exports add a named ``probabilities`` softmax on
top (see ``train.export_saved_model``), so served models return class probabilities.
"""

import keras
from keras import layers

from tf_assign2.config import CELLS, INITS


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
):
    """LeNet5 as the assignment specifies it.

    conv 5x5x32 + ReLU, max-pool 2, conv 5x5x64 + ReLU, max-pool 2,
    FC 7*7*64 -> 1024 + ReLU, dropout (keep_prob 0.5 = rate 0.5), FC 1024 -> classes.
    'same' padding as in the starter's ``conv2d`` keeps 28 -> 14 -> 7.
    With the defaults and 10 classes: 3,274,634 parameters.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    init_kwargs = _starter_conv_init(init)
    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Conv2D(conv_filters[0], 5, padding="same", activation="relu", name="conv1", **init_kwargs)(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(conv_filters[1], 5, padding="same", activation="relu", name="conv2", **init_kwargs)(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(fc_units, activation="relu", name="fc1", **init_kwargs)(x)
    x = layers.Dropout(dropout_rate, name="dropout")(x)
    logits = layers.Dense(num_classes, name="logits", dtype="float32", **init_kwargs)(x)
    return keras.Model(inputs, logits, name=name)


def _recurrent_layer(cell, units, return_sequences, name, use_cudnn):
    """One recurrent layer; the starter's BasicRNNCell / BasicLSTMCell / GRUCell."""
    if cell == "rnn":
        # BasicRNNCell: tanh. SimpleRNN has no cuDNN kernel, so no use_cudnn argument.
        return layers.SimpleRNN(units, activation="tanh", return_sequences=return_sequences, name=name)
    if cell == "lstm":
        # BasicLSTMCell(forget_bias=1.0) == unit_forget_bias=True.
        return layers.LSTM(
            units, unit_forget_bias=True, return_sequences=return_sequences, name=name, use_cudnn=use_cudnn
        )
    return layers.GRU(units, return_sequences=return_sequences, name=name, use_cudnn=use_cudnn)


def rnn_classifier(
    cell="lstm",
    units=128,
    num_layers=1,
    input_shape=(28, 28, 1),
    num_classes=10,
    output_init="starter",
    use_cudnn="auto",
    name=None,
):
    """The lstmMNISTStarterCode classifier: an image read as a sequence of rows.

    nSteps = image height (28), nInput = width * channels (28); ``num_layers`` recurrent
    layers of ``units`` (nHidden); a dense output layer on the last step only.
    Images come in as (H, W, C) like every model here, so one data pipeline serves
    LeNet5 and the RNNs; the ``rows`` layer reshapes them to (steps, inputs).
    ``output_init="starter"`` uses the starter's ``tf.random_normal`` weights and bias.
    ``use_cudnn``: "auto" lets Keras pick the cuDNN kernel on a GPU; False forces the
    generic kernel (needed under XLA, which cannot compile cuDNN calls).
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    if units < 1 or num_layers < 1:
        raise ValueError("units and num_layers must be >= 1")
    if output_init not in INITS:
        raise ValueError(f"output_init must be one of {INITS}, got {output_init!r}")
    height, width, channels = input_shape
    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Reshape((height, width * channels), name="rows")(inputs)
    for i in range(num_layers):
        last = i == num_layers - 1
        x = _recurrent_layer(cell, units, not last, f"{cell}{i + 1}", use_cudnn)(x)
    init_kwargs = {}
    if output_init == "starter":
        init_kwargs = {
            "kernel_initializer": keras.initializers.RandomNormal(stddev=1.0),
            "bias_initializer": keras.initializers.RandomNormal(stddev=1.0),
        }
    logits = layers.Dense(num_classes, name="logits", dtype="float32", **init_kwargs)(x)
    return keras.Model(inputs, logits, name=name or f"{cell}_classifier")


def build(config, input_shape, num_classes):
    """Build the model a resolved config asks for (``config.model``)."""
    if config.model == "lenet5":
        return lenet5(
            input_shape=input_shape,
            num_classes=num_classes,
            conv_filters=tuple(config.conv_filters),
            fc_units=config.fc_units,
            init=config.init,
        )
    return rnn_classifier(
        cell=config.cell,
        units=config.units,
        num_layers=config.layers,
        input_shape=input_shape,
        num_classes=num_classes,
        output_init=config.init,
        use_cudnn=config.use_cudnn,
    )
