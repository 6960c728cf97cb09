"""The loss a run trains on, and the starters' own loss as a metric.

Training uses the stable ``from_logits`` cross-entropy, with optional label smoothing
(``--label-smoothing``): the target puts ``1 - s`` on the true class and spreads ``s`` evenly
over all classes. Keras' sparse cross-entropy has no smoothing, so a smoothed run one-hot encodes
the integer labels first; at 0 the plain sparse loss is used, exactly the unsmoothed numbers.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_assign2")
def starter_cross_entropy(y_true, logits):
    """The TF1 starters' loss, literally: ``-sum(y * log(softmax(logits)))`` per sample, in float32.

    We train on the stable ``from_logits`` loss, which never overflows. This metric tracks
    the loss the students' code optimised: it becomes inf exactly where a class probability
    underflows to 0, the point at which the TF1 starter's loss and weights turned NaN
    (e.g. Adam at 1e-2). ``DivergenceStop`` ends such a run as "diverged".
    """
    labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
    probs = tf.nn.softmax(tf.cast(logits, tf.float32))
    return -tf.math.log(tf.gather(probs, labels, batch_dims=1))


@keras.saving.register_keras_serializable(package="tf_assign2")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy from logits against integer labels, with label smoothing ``smoothing``."""

    def __init__(self, smoothing, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true, logits):
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        one_hot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
        return keras.losses.categorical_crossentropy(one_hot, logits, from_logits=True,
                                                     label_smoothing=self.smoothing)

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}


def training_loss(config):
    """The loss ``config`` trains on: plain sparse cross-entropy, or smoothed (``label_smoothing`` > 0)."""
    if config.label_smoothing:
        return SmoothedSparseCrossentropy(config.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
