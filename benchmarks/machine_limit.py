"""The machine's practical limit, and a training row's arithmetic as a fraction of it.

``peak_gflops``: chained large matrix products through TensorFlow, in float32 and bfloat16 - the
fastest sustained arithmetic any training step could reach on this machine. ``training_flops``:
the floating-point operations of one image's training step, counted from the model's own layers
(Conv2D, Dense, SimpleRNN/LSTM/GRU), so a model with other settings is counted as it is built.
"""

import time

TRAINING_PASSES = 3  # forward, then two products per forward one in the backward pass (inputs and weights)


def peak_gflops(size=2048, repeats=8):
    """{dtype: GFLOP/s} of ``repeats`` chained ``size`` x ``size`` matrix products, after a warm-up.

    Each product feeds the next (nothing can be hoisted or skipped); the matrix is scaled to keep the
    values bounded. bfloat16 runs on the CPU's native instructions where it has them (AVX512_BF16, AMX),
    emulated elsewhere, which the figure then shows.
    """
    import tensorflow as tf

    out = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.stateless_normal((size, size), seed=(1, 2)), dtype)
        b = tf.cast(tf.random.stateless_normal((size, size), seed=(3, 4)) / size**0.5, dtype)

        @tf.function(jit_compile=False)
        def chain(a, b):
            for _ in tf.range(repeats):
                a = tf.matmul(a, b)
            return a

        chain(a, b).numpy()  # trace, and let oneDNN pick its kernel
        started = time.perf_counter()
        chain(a, b).numpy()
        out[dtype.name] = 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9
    return out


def forward_flops(model):
    """Floating-point operations (a multiply-add is two) of one image's forward pass through the
    model's Conv2D, Dense and recurrent layers; pooling, activations and biases are left out (a few
    percent for these networks)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel_h, kernel_w, channels_in, channels_out = layer.kernel.shape
            _, height, width, _ = layer.output.shape
            total += 2 * kernel_h * kernel_w * channels_in * channels_out * height * width
        elif isinstance(layer, keras.layers.Dense):
            inputs, outputs = layer.kernel.shape
            total += 2 * inputs * outputs
        elif isinstance(layer, keras.layers.RNN):
            steps, cell = layer.input.shape[1], layer.cell
            total += steps * 2 * (cell.kernel.shape[0] + cell.recurrent_kernel.shape[0]) * cell.kernel.shape[1]
    return int(total)


def training_flops(model):
    """Floating-point operations of one image's training step: ``TRAINING_PASSES`` forward passes."""
    return TRAINING_PASSES * forward_flops(model)
