"""Keras' Adam with TensorFlow's fused update kernel: the same steps, more LeNet5 images/s (docs/speed.md)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_assign2")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam, each variable updated by TF's fused ``ResourceApplyAdam`` kernel.

    Same update rule as ``keras.optimizers.Adam`` (and the starter's ``tf.train.AdamOptimizer``),
    in one kernel per variable instead of ~10 element-wise ops: LeNet5's 3.3M parameters make
    the optimizer a large part of each batch-50 step (docs/speed.md has the figure). AMSGrad and
    distributed updates take Keras' own path.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or tf.distribute.has_strategy():
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
