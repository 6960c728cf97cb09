"""The lstmMNISTStarterCode classifiers: BasicRNN, LSTM or GRU reading an image row by row.

The model takes images (height, width, channels) in [0, 1] and returns **logits** of the last step.
"""

import keras
from keras import layers, ops

from tf_assign2.models.options import CELLS, INITS


class TwoChains:
    """Mixed into a Keras recurrent layer: in training, each half of the batch runs as its own chain.

    The 28 steps of one batch are a chain of small matrix products, each too small to keep two CPU
    cores busy; two halves of the batch are independent chains that TensorFlow's executor runs side
    by side (faster for every cell on oneDNN: docs/speed.md). The halves share the layer's
    weights and each sample's result is the same, so only the round-off of the summed gradients
    differs. Outside training (evaluation, export) the batch runs whole. The plan decides when it
    pays (``training.plan``); these classes hold no state of their own, so their weights load into
    the plain layer and back, and a run's exported ``model.keras`` is built from plain layers.
    ``_recurrent_layer`` also unrolls their 28 steps: without the loop's per-step bookkeeping the
    executor interleaves the two chains' small ops more freely (measured: docs/speed.md).
    """

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if not training or initial_state is not None or mask is not None or sequences.shape[0] == 1:
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        if sequences.shape[0] is not None:  # the training pipeline's batches: known when traced
            return self._two_chains(sequences)
        return ops.cond(ops.shape(sequences)[0] > 1, lambda: self._two_chains(sequences),
                        lambda: super(TwoChains, self).call(sequences, training=True))

    def _two_chains(self, sequences):
        cut = ops.shape(sequences)[0] // 2
        halves = [super(TwoChains, self).call(part, training=True) for part in (sequences[:cut], sequences[cut:])]
        return ops.concatenate(halves, axis=0)


class TwoChainSimpleRNN(TwoChains, layers.SimpleRNN):
    pass


class TwoChainLSTM(TwoChains, layers.LSTM):
    pass


class TwoChainGRU(TwoChains, layers.GRU):
    """Two chains of a GRU whose input projection, in training, runs before its unrolled recurrence.

    ``x_t @ kernel + input_bias`` of all rows is one matrix product ahead of the steps, and each step
    splits its gates with ``ops.split`` where Keras' cell slices them: a slice's gradient writes into a
    zero tensor the size of the whole, a split's is one concatenation. The arithmetic is the cell's
    (``reset_after``, Keras' default and the cuDNN form), so the weights are the plain layer's. Any other
    configuration (not unrolled, masks, dropout, ``reset_after=False``), and evaluation, run Keras' own loop.
    """

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if not training or not self.unroll or mask is not None or cell.dropout or cell.recurrent_dropout or self.go_backwards \
                or not cell.reset_after or not cell.use_bias:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        steps, width = sequences.shape[1], sequences.shape[2]
        input_bias, recurrent_bias = ops.unstack(cell.bias)
        projected = ops.matmul(ops.reshape(sequences, (-1, width)), cell.kernel) + input_bias
        rows = ops.unstack(ops.reshape(projected, (-1, steps, 3 * cell.units)), axis=1)
        (h,) = initial_state  # RNN.call passes the states as a list
        outputs = []
        for row in rows:
            h = self._projected_step(row, h, recurrent_bias)
            outputs.append(h)
        return h, ops.stack(outputs, axis=1) if self.return_sequences else h, [h]

    def _projected_step(self, projected_row, h, recurrent_bias):
        """One GRU step from the row's projection: Keras' GRUCell arithmetic with split gates."""
        inner = ops.matmul(h, self.cell.recurrent_kernel) + recurrent_bias
        x_z, x_r, x_h = ops.split(projected_row, 3, axis=1)
        inner_z, inner_r, inner_h = ops.split(inner, 3, axis=1)
        z = self.cell.recurrent_activation(x_z + inner_z)
        r = self.cell.recurrent_activation(x_r + inner_r)
        candidate = self.cell.activation(x_h + r * inner_h)
        return z * h + (1 - z) * candidate


def _recurrent_layer(cell, units, return_sequences, name, use_cudnn, chains=1):
    """One recurrent layer; the starter's BasicRNNCell / BasicLSTMCell / GRUCell."""
    two = chains > 1
    common = {"return_sequences": return_sequences, "name": name, "unroll": two}  # TwoChains: unrolled
    if cell == "rnn":
        # BasicRNNCell: tanh. SimpleRNN has no cuDNN kernel, so no use_cudnn argument.
        kind = TwoChainSimpleRNN if two else layers.SimpleRNN
        return kind(units, activation="tanh", **common)
    if cell == "lstm":
        # BasicLSTMCell(forget_bias=1.0) == unit_forget_bias=True.
        kind = TwoChainLSTM if two else layers.LSTM
        return kind(units, unit_forget_bias=True, use_cudnn=use_cudnn, **common)
    kind = TwoChainGRU if two else layers.GRU
    return kind(units, use_cudnn=use_cudnn, **common)


def rnn_classifier(
    cell="lstm",
    units=128,
    num_layers=1,
    input_shape=(28, 28, 1),
    num_classes=10,
    output_init="starter",
    use_cudnn="auto",
    name=None,
    chains=1,
):
    """The lstmMNISTStarterCode classifier: an image read as a sequence of rows.

    nSteps = image height (28), nInput = width * channels (28); ``num_layers`` recurrent
    layers of ``units`` (nHidden); a dense output layer on the last step only.
    Images come in as (H, W, C) like every model here, so one data pipeline serves
    LeNet5 and the RNNs; the ``rows`` layer reshapes them to (steps, inputs).
    ``output_init="starter"`` uses the starter's ``tf.random_normal`` weights and bias.
    ``use_cudnn``: "auto" lets Keras pick the cuDNN kernel on a GPU; False forces the
    generic kernel (needed under XLA, which cannot compile cuDNN calls). ``chains=2`` trains
    each batch as two independent halves (``TwoChains``, 28 steps unrolled): the plan's choice on
    oneDNN CPUs.
    """
    if chains not in (1, 2):
        raise ValueError(f"chains must be 1 or 2, got {chains!r}")
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
        x = _recurrent_layer(cell, units, not last, f"{cell}{i + 1}", use_cudnn, chains)(x)
    init_kwargs = {}
    if output_init == "starter":
        init_kwargs = {
            "kernel_initializer": keras.initializers.RandomNormal(stddev=1.0),
            "bias_initializer": keras.initializers.RandomNormal(stddev=1.0),
        }
    logits = layers.Dense(num_classes, name="logits", dtype="float32", **init_kwargs)(x)
    return keras.Model(inputs, logits, name=name or f"{cell}_classifier")


def from_config(config, input_shape, num_classes, use_cudnn="auto", chains=1):
    """The registry's builder: the run's cell, units, layers and output initialisation."""
    return rnn_classifier(cell=config.cell, units=config.units, num_layers=config.layers, input_shape=input_shape,
                          num_classes=num_classes, output_init=config.init, use_cudnn=use_cudnn, chains=chains)
