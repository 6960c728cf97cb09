"""`python -m tf_assign2.bench [--quick] [--out BENCHMARKS.md]`: training speed, side by side.

Each training figure runs in its own subprocess (a fresh TensorFlow: the TF1 baseline needs
graph mode, and one measurement must not warm up another), takes the median of several
timed windows after a warm-up, and is reported as images/s with its ratio to the TF1 loop:

* ``tf1``: the original way - a ``tf.compat.v1`` graph with placeholders, a Session and a
  feed_dict loop filling each batch sample by sample from a per-step permutation, as the
  starter does (Adam 1e-3, same LeNet5);
* ``ours``: this project's trainer (``train.compile_model`` + ``data.train_dataset``, default
  steps_per_execution and XLA policy), the path every CLI run takes;
* ``fit``: Keras ``fit`` with defaults (steps_per_execution=1) on the same pipeline;
* ``xla``: our trainer with ``jit_compile=True``;
* ``bound``: a bare ``tf.function`` train step over in-memory tensors, no Keras loop: the
  practical compute bound.

Plus the cold decode of the assignment's PNGs. No thresholds: machines are noisy.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKER_SETUP = 'import os; os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"'


def _cifar_root():
    from tf_assign2 import data

    found = [p for p in data.local_candidates("cifar10") if (p / "Train").is_dir()]
    if not found:
        from tf_assign2.errors import UsageError

        raise UsageError(f"bench needs the CIFAR10 PNG layout: set ${data.ENV_VAR} (tried {data.local_candidates('cifar10')})")
    return found[0]


def measure(method, batch_size, steps, repeats):
    """Median images/s of ``method`` at ``batch_size`` over ``repeats`` windows of ``steps`` steps."""
    out = subprocess.run(
        [sys.executable, "-m", "tf_assign2.bench", "--worker", method, str(batch_size), str(steps), str(repeats)],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"bench worker {method} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])["images_per_sec"]


# --------------------------------------------------------------------------- workers


def _load_images():
    from tf_assign2 import data

    x, y, _, _ = data.read_png_layout(_cifar_root())
    return x, y


def _timed(run_steps, steps, repeats, batch_size):
    run_steps(max(steps // 2, 2))  # warm-up: tracing, allocator, caches
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_steps(steps)
        rates.append(steps * batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def worker_tf1(batch_size, steps, repeats):
    """The 2016 starter's training loop, kept as it was (names follow the starter)."""
    import numpy as np
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    v1 = tf.compat.v1
    x, y = _load_images()
    Train = x.astype(np.float32) / 255.0
    LTrain = np.eye(10, dtype=np.float32)[y]

    def weight_variable(shape):
        return tf.Variable(v1.truncated_normal(shape, stddev=0.1))

    def bias_variable(shape):
        return tf.Variable(tf.constant(0.1, shape=shape))

    def conv2d(x, W):
        return tf.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding="SAME")

    def max_pool_2x2(x):
        return tf.nn.max_pool2d(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")

    tf_data = v1.placeholder(tf.float32, [None, 28, 28, 1])
    tf_labels = v1.placeholder(tf.float32, [None, 10])
    keep_prob = v1.placeholder(tf.float32)
    h_pool1 = max_pool_2x2(tf.nn.relu(conv2d(tf_data, weight_variable([5, 5, 1, 32])) + bias_variable([32])))
    h_pool2 = max_pool_2x2(tf.nn.relu(conv2d(h_pool1, weight_variable([5, 5, 32, 64])) + bias_variable([64])))
    h_fc1 = tf.nn.relu(tf.matmul(tf.reshape(h_pool2, [-1, 7 * 7 * 64]), weight_variable([3136, 1024]))
                       + bias_variable([1024]))
    y_conv = tf.matmul(tf.nn.dropout(h_fc1, rate=1 - keep_prob), weight_variable([1024, 10])) + bias_variable([10])
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=tf_labels, logits=y_conv))
    train_step = v1.train.AdamOptimizer(1e-3).minimize(loss)
    sess = v1.Session()
    sess.run(v1.global_variables_initializer())
    batch_xs = np.zeros((batch_size, 28, 28, 1), np.float32)
    batch_ys = np.zeros((batch_size, 10), np.float32)

    def run_steps(n):
        for _ in range(n):
            perm = np.arange(len(Train))
            np.random.shuffle(perm)
            for j in range(batch_size):
                batch_xs[j, :, :, :] = Train[perm[j], :, :, :]
                batch_ys[j, :] = LTrain[perm[j], :]
            sess.run(train_step, feed_dict={tf_data: batch_xs, tf_labels: batch_ys, keep_prob: 0.5})

    return _timed(run_steps, steps, repeats, batch_size)


def worker_keras(method, batch_size, steps, repeats):
    """Our trainer ("ours"), its XLA variant ("xla") or plain fit defaults ("fit")."""
    from tf_assign2 import data, models, train
    from tf_assign2.config import Config, validate

    x, y = _load_images()
    cfg = validate(Config(batch_size=batch_size, jit="on" if method == "xla" else "auto"))
    spe = 1 if method == "fit" else train.resolve_steps_per_execution(cfg, steps)
    model = train.compile_model(models.lenet5(), cfg, spe)
    train_ds = data.train_dataset(x, y, batch_size, seed=0)
    # One fit call, as a real run makes: epoch 0 is the warm-up (tracing), later epochs are
    # timed from their first to their last step by the trainer's own Throughput callback.
    throughput = train.Throughput(steps * batch_size)
    model.fit(train_ds, epochs=repeats + 1, steps_per_epoch=steps, verbose=0, callbacks=[throughput])
    return throughput.images_per_sec(batch_size, steps * batch_size, steps)


def worker_bound(batch_size, steps, repeats):
    """A bare tf.function training step over in-memory tensors: no Keras loop, no tf.data."""
    import keras
    import tensorflow as tf

    from tf_assign2 import models

    x, y = _load_images()
    images = tf.constant(x[: batch_size * 8], tf.float32) / 255.0
    labels = tf.constant(y[: batch_size * 8])
    model = models.lenet5()
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(i):
        start = (i % 8) * batch_size
        xb, yb = images[start : start + batch_size], labels[start : start + batch_size]
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    def run_steps(n):
        for i in range(n):
            loss = train_step(tf.constant(i))
        loss.numpy()

    return _timed(run_steps, steps, repeats, batch_size)


def png_decode_seconds(repeats):
    from tf_assign2 import data

    root = _cifar_root()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        data.read_png_layout(root)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------- report


def machine():
    import platform

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    out = subprocess.run([sys.executable, "-c", WORKER_SETUP + "; import tensorflow as tf, keras; "
                          "print(tf.__version__, keras.__version__, len(tf.config.list_physical_devices('GPU')))"],
                         capture_output=True, text=True)
    tf_version, keras_version, gpus = (out.stdout.split() + ["?", "?", "?"])[:3]
    return f"{cpu}, {os.cpu_count()} cores, {gpus} GPU(s); TensorFlow {tf_version}, Keras {keras_version}"


def run_bench(quick=False, repeats=None):
    repeats = repeats or (2 if quick else 5)
    steps = {50: 40 if quick else 180, 256: 10 if quick else 40}
    methods = ("tf1", "fit", "ours", "xla", "bound")
    rows = {}
    for batch in (50, 256):
        for method in methods:
            rows[(method, batch)] = measure(method, batch, steps[batch], repeats)
            print(f"  {method:5s} batch {batch:3d}: {rows[(method, batch)]:7.0f} images/s", flush=True)
    decode = png_decode_seconds(1 if quick else 3)
    return rows, decode, repeats, steps


def markdown(rows, decode, repeats, steps, quick):
    names = {
        "tf1": "TF1 graph + feed_dict loop (the starter)",
        "fit": "Keras `fit`, defaults (steps_per_execution=1)",
        "ours": "our trainer (default settings)",
        "xla": "our trainer, XLA on",
        "bound": "bare `tf.function` loop, in-memory tensors",
    }
    best_bound = max(rows[("bound", 50)], rows[("bound", 256)])
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.  ",
        f"`python -m tf_assign2.bench{' --quick' if quick else ''}`: LeNet5 training, Adam 1e-3, median of {repeats} "
        f"windows of {steps[50]} (batch 50) / {steps[256]} (batch 256) steps after a warm-up, each method in its own process.",
        "",
        "| method | batch 50 images/s | vs TF1 | batch 256 images/s | vs TF1 |",
        "|---|---|---|---|---|",
    ]
    for method in ("tf1", "fit", "ours", "xla", "bound"):
        a, b = rows[(method, 50)], rows[(method, 256)]
        lines.append(f"| {names[method]} | {a:.0f} | {a / rows[('tf1', 50)]:.2f}x | {b:.0f} | "
                     f"{b / rows[('tf1', 256)]:.2f}x |")
    ours = rows[("ours", 50)]
    lines += [
        "",
        f"Our trainer at batch 50: **{ours / rows[('tf1', 50)]:.2f}x the TF1 loop**, "
        f"{ours / best_bound:.2f}x the bare `tf.function` bound at its best batch size ({best_bound:.0f} images/s).",
        "",
        f"Cold decode of the {len(_all_pngs())} CIFAR PNGs (Pillow, one pass): **{decode:.2f} s**.",
        "",
    ]
    return "\n".join(lines)


def _all_pngs():
    return list(_cifar_root().glob("*/*/*.png"))


def main(argv=None):
    from tf_assign2.cli import ArgumentParser

    parser = ArgumentParser(prog="python -m tf_assign2.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (about a minute)")
    parser.add_argument("--repeats", type=int, default=None, help="timed windows per figure (5; quick 2)")
    parser.add_argument("--out", default=None, help="write the markdown table here (e.g. BENCHMARKS.md)")
    args = parser.parse_args(argv)
    rows, decode, repeats, steps = run_bench(args.quick, args.repeats)
    text = markdown(rows, decode, repeats, steps, args.quick)
    print(text)
    if args.out:
        from tf_assign2.runs import write_atomic

        write_atomic(args.out, text)
    return 0


def _worker(argv):
    method, batch_size, steps, repeats = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    if method == "tf1":
        rate = worker_tf1(batch_size, steps, repeats)
    elif method == "bound":
        rate = worker_bound(batch_size, steps, repeats)
    else:
        rate = worker_keras(method, batch_size, steps, repeats)
    print(json.dumps({"method": method, "batch_size": batch_size, "images_per_sec": rate}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(sys.argv[2:])
    else:
        from tf_assign2.cli import run_cli

        sys.exit(run_cli(main))
