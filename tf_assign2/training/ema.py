"""Evaluating with the moving average of the weights (``--ema``): which weights the model holds, and when.

The optimizer keeps the averages in variables of its own (``use_ema``, see ``optimizers._ema``);
Keras writes them into the model when ``fit`` ends, however it ends (all epochs, ``--steps``,
divergence), so the final test metrics and every export use them with nothing more. While
training, the model holds the training weights, and the averages are swapped in only to evaluate:

* ``ExactSwapEMAWeights`` (Keras' ``SwapEMAWeights``) around validation;
* ``around_epoch_end(callbacks)`` around the callbacks that read the model at an epoch's end
  (the per-epoch test curve, the figures): the averages in before them, out after them.

The per-epoch backup is written outside both, so it holds the state as Keras keeps it (training
weights in the model, averages in the optimizer) and a resumed run continues exactly.
"""

import keras
import tensorflow as tf


class ExactSwapEMAWeights(keras.callbacks.SwapEMAWeights):
    """Keras' ``SwapEMAWeights`` (the averages in the model during validation), swapping exactly.

    Its TensorFlow path swaps without a temporary, by ``a + b``, ``a - b``, ``a - b``, which rounds:
    each validation would nudge the training weights (a weight much smaller than its average
    loses its low bits), so a run's result would depend on how often it was validated. Here the
    values go through a copy, as on Keras' other backends: the weights come back bit for bit.
    """

    def _tf_swap_variables(self, optimizer):
        swap_weights(optimizer)


class _SwapAtEpochEnd(keras.callbacks.Callback):
    """Exchanges the model's weights and the optimizer's averages at an epoch's end (``around_epoch_end``)."""

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        swap_weights(getattr(optimizer, "inner_optimizer", optimizer))  # a LossScaleOptimizer wraps the real one


def around_epoch_end(callbacks):
    """``callbacks`` between two swaps: at an epoch's end they see the averaged weights, and the
    callbacks after them the training weights again."""
    callbacks = list(callbacks)
    return [_SwapAtEpochEnd(), *callbacks, _SwapAtEpochEnd()] if callbacks else []


def swap_weights(optimizer):
    """Exchange ``optimizer``'s trainable variables with their moving averages, through a copy."""
    strategy = optimizer._distribution_strategy
    for variable, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
        strategy.extended.update(_tf_variable(variable), _exchange, args=(_tf_variable(average),))


def _exchange(a, b):
    held = tf.identity(a)  # a snapshot: TensorFlow never writes a variable's read value in place
    a.assign(b)
    b.assign(held)


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable
