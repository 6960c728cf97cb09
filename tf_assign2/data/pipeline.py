"""tf.data pipelines over the in-memory arrays: an exactly resumable training stream and evaluation batches."""

FLIPS = ("none", "random", "alternate")  # --flip: horizontal flips of the training images
FLIP_STREAM = 1  # folded into a batch's seed for its flips, so they never reuse the shifts' random numbers

def _to_float(images, labels):
    """uint8 -> float32 in [0, 1] (the starter's ``/ 255``), on whole batches."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 255.0, labels


def eval_dataset(x, y, batch_size):
    """A finite, ordered pipeline for validation, test and prediction, in batches of equal size where
    ``even_batch`` finds one near ``batch_size``."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(even_batch(len(y), batch_size))
    return without_autotune_thread(ds.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def without_autotune_thread(ds):
    """``ds`` with tf.data's autotuning model off: no optimisation thread per iterator.

    That thread's optimisation period doubles while its iterator lives, and destroying the iterator
    waits for the current period to end. Keras drops fit's training and validation iterators when
    fit returns, so runs stalled at their end in about half the runs (a native stack shows
    ~RootDataset::Iterator waiting for the tf_data_model thread in Model::OptimizeLoop; docs/speed.md).
    These pipelines only gather and scale in-memory arrays: with the model off (AUTOTUNE falls back to
    TensorFlow's static choices) the training steps are as fast, measured in benchmarks.floor_run.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def train_dataset(x, y, batch_size, seed, start_epoch=0, shift=0, flip="none"):
    """An endless, epoch-indexed training pipeline: epoch e is shuffled by (seed, e) alone.

    Because an epoch's order depends only on its number, a run resumed at epoch k sees
    exactly the batches an uninterrupted run would have seen. Batches never straddle
    epochs; use with ``steps_per_epoch = steps_per_epoch(len(x), batch_size)``. Every batch is
    full (the few samples left over go, a different few each epoch): equal batches keep the
    step count of an epoch divisible, so steps_per_execution can be large (71 steps, MNIST at
    batch 128, would allow only 1 per call; 70 allow 14).

    ``shift`` > 0 moves each training image by a random whole number of pixels, up to ``shift``
    along each axis (``shift_images``), drawn from (seed, epoch, batch): augmented runs resume
    exactly too.

    ``flip`` (``FLIPS``) mirrors training images left-right before any shift: ``random`` each
    image with probability 1/2, drawn from (seed, epoch, batch) like the shifts; ``alternate``
    a fixed half of the images, chosen by the seed, in even epochs and the other half in odd
    epochs (``flip_mask``), so every image is seen both ways every two epochs.
    """
    import tensorflow as tf

    images = tf.constant(x)
    labels = tf.constant(y)
    n = len(y)
    half = alternate_half(n, seed) if flip == "alternate" else None

    def epoch_batches(epoch):
        batches = tf.data.Dataset.from_tensor_slices(epoch_order(n, seed, epoch))
        batches = batches.batch(batch_size, drop_remainder=n >= batch_size)
        return batches.enumerate().map(lambda i, idx: (epoch, i, idx))

    def gather(epoch, i, idx):
        batch_x, batch_y = _to_float(tf.gather(images, idx), tf.gather(labels, idx))
        batch_seed = tf.random.experimental.stateless_fold_in(tf.stack([tf.cast(seed, tf.int64), epoch]), i)
        if flip != "none":
            batch_x = flip_images(batch_x, flip_mask(flip, idx, epoch, batch_seed, half))
        if shift:
            batch_x = shift_images(batch_x, shift, batch_seed)
        return batch_x, batch_y

    ds = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch_batches)
    return without_autotune_thread(ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def epoch_order(n, seed, epoch):
    """The order of the ``n`` training samples in ``epoch``: a shuffle by (seed, epoch) alone."""
    import tensorflow as tf

    epoch = tf.cast(epoch, tf.int64)
    return tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))


def alternate_half(n, seed):
    """``--flip alternate``'s fixed half of the ``n`` images (a bool per image, n // 2 of them True),
    chosen by the seed alone: a shuffle under "epoch" -1, which no real epoch uses."""
    return epoch_order(n, seed, -1) < n // 2


def flip_mask(flip, idx, epoch, batch_seed, half=None):
    """Which images of a batch (sample indices ``idx``) ``flip`` mirrors in ``epoch``: a bool per image.

    ``random``: a coin per image from the batch's seed (its own stream, ``FLIP_STREAM``), so the
    same (seed, epoch, batch) flips the same images and a resumed run flips what the
    uninterrupted one did. ``alternate``: the image's membership of ``half``, inverted in odd
    epochs (airbench's alternating flip: each image is seen both ways in every two epochs).
    """
    import tensorflow as tf

    if flip == "random":
        coins = tf.random.stateless_uniform(tf.shape(idx), tf.random.experimental.stateless_fold_in(batch_seed,
                                                                                                  FLIP_STREAM))
        return coins < 0.5
    if flip == "alternate":
        odd = tf.equal(tf.math.floormod(tf.cast(epoch, tf.int64), 2), 1)
        return tf.not_equal(tf.gather(half, idx), odd)
    raise ValueError(f"flip must be one of {FLIPS[1:]}, got {flip!r}")


def flip_images(images, mask):
    """Mirror left-right the images of a float batch where ``mask`` is True, exactly (a reversal of
    the width axis, which is axis 2 both for (batch, H, W, C) and for RNN rows (batch, 28, 28))."""
    import tensorflow as tf

    where = tf.reshape(mask, [-1] + [1] * (images.shape.rank - 1))
    return tf.where(where, tf.reverse(images, axis=[2]), images)


def shift_images(images, shift, seed):
    """Translate each image of a float batch by its own random (dy, dx) in [-shift, shift] pixels,
    zeros filling the edge: the classic MNIST/CIFAR augmentation, exact (no interpolation).

    Works on (batch, 28, 28) (RNN rows) and (batch, H, W, C) (LeNet5) alike.
    """
    import tensorflow as tf

    rank3 = images.shape.rank == 3
    batch = images[..., None] if rank3 else images
    offsets = tf.random.stateless_uniform([tf.shape(batch)[0], 2], seed=seed, minval=-shift, maxval=shift + 1,
                                          dtype=tf.int32)
    offsets = tf.cast(offsets, tf.float32)
    ones, zeros = tf.ones_like(offsets[:, 0]), tf.zeros_like(offsets[:, 0])
    # output pixel (y, x) reads input (y - dy, x - dx): rows [1, 0, -dx, 0, 1, -dy, 0, 0]
    transforms = tf.stack([ones, zeros, -offsets[:, 1], zeros, ones, -offsets[:, 0], zeros, zeros], axis=1)
    moved = tf.raw_ops.ImageProjectiveTransformV3(images=batch, transforms=transforms, output_shape=tf.shape(batch)[1:3],
                                                  fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")
    return moved[..., 0] if rank3 else moved


def steps_per_epoch(n, batch_size):
    """Full batches per epoch (``train_dataset`` drops the remainder); one partial if n < batch."""
    return max(1, n // batch_size)


def even_batch(n, batch_size):
    """A divisor of ``n`` within a factor of two of ``batch_size`` (the nearest), else ``batch_size``.

    A last, smaller batch is a second input shape: the evaluation and prediction functions are traced
    and, under XLA, compiled again for it - per epoch, twice (validation and test curve). 1,000 test
    images go in 4 batches of 250 instead of 3 x 256 + 232.
    """
    if n <= batch_size:
        return max(n, 1)
    candidates = [d for d in range(batch_size // 2, 2 * batch_size + 1) if n % d == 0]
    return min(candidates, key=lambda d: (abs(d - batch_size), d)) if candidates else batch_size

