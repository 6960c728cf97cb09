"""The lstmMNISTStarterCode classifiers: BasicRNN, LSTM or GRU reading an image row by row.

The model takes images (height, width, channels) in [0, 1] and returns **logits** of the last step.
"""

import keras
from keras import layers

from tf_assign2.models.options import CELLS, INITS


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


def from_config(config, input_shape, num_classes, use_cudnn="auto"):
    """The registry's builder: the run's cell, units, layers and output initialisation."""
    return rnn_classifier(cell=config.cell, units=config.units, num_layers=config.layers, input_shape=input_shape,
                          num_classes=num_classes, output_init=config.init, use_cudnn=use_cudnn)
