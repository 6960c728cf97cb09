"""Data: every source -> in-memory uint8 arrays (``sources``) -> tf.data pipelines (``pipeline``).

Knows nothing about models. Importing it does not import TensorFlow (the pipelines import it
when called), so data locations are checked before TensorFlow starts.
"""

from tf_assign2.data.pipeline import eval_dataset, shift_images, steps_per_epoch, train_dataset  # noqa: F401
from tf_assign2.data.sources import *  # noqa: F401,F403
