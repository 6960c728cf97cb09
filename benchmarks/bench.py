"""`python -m benchmarks.bench [--quick] [--out FILE] [--repeats N]`: every speed figure, one run.

Run it from the repository root (``benchmarks`` is not installed). Ratios only mean something
between figures taken on the same machine in the same state, so one command measures everything
side by side and writes one markdown table; the records are kept in ``docs/bench/`` and
``docs/speed.md`` explains the figures:

* LeNet5 training images/s at batch 50 and 256 (CIFAR subset) and RNN/LSTM/GRU-128 samples/s
  at batch 128 (MNIST rows), each for

  - ``tf1``: the original way - a ``tf.compat.v1`` graph with placeholders, a Session and a
    feed_dict loop filling numpy batches as the starters do (CIFAR: sample by sample from a
    fresh permutation each step; MNIST: ``next_batch`` slices). It is built in its own
    ``tf.Graph`` so graph mode never leaks into the Keras figures;
  - ``fit``: Keras ``fit`` with its defaults (NumPy arrays, ``batch_size``, one step per call,
    Keras' own XLA choice) on the Trainer's model, loss and optimizer;
  - ``ours``: the shared trainer itself (``tf_assign2.training.trainer.Trainer``: ``build_model``,
    ``compile`` and ``fit`` under its resolved plan - steps_per_execution, XLA, precision - and
    its ``train_dataset``), the path every CLI run takes;
  - ``ours_f32``: the same in float32 (``ours`` computes LeNet5 in bfloat16 where the CPU has it;
    elsewhere the two are one run, timed once);
  - ``xla``: the same with ``jit_compile=True``;
  - ``one_chain``: the same with the plan's two batch chains of the recurrent cells set to one (only
    where the plan has two: a CPU with oneDNN), which is Keras' own layer as it comes (one chain, a
    loop of 28 steps) and shows what the hand-written ``TwoChains`` layers buy;
  - ``bound``: a bare ``tf.function`` loop over in-memory float tensors (no Keras loop, no
    tf.data, no metrics) with the Trainer's model, loss, optimizer and precision: the practical
    compute bound;

  each the median of ``repeats`` timed epochs after one warm-up epoch (tracing, compilation),
  with its ratio to ``tf1`` and its fraction of ``bound``;
* data: decoding the 11k CIFAR PNGs in a fresh process, again in the same process (warm), and
  from disk with the OS page cache dropped; the Fashion-MNIST idx files likewise;
* time-to-accuracy: training seconds until the test accuracy first reaches 0.50 (CIFAR,
  LeNet5, Adam) and 0.95 (MNIST, LSTM-128), checked after every epoch, capped; trained by the
  Trainer on a default run's data;
* peak RSS of a default ``python -m tf_assign2.cifar`` run (10 epochs), from ``wait4`` on that
  child, with the images/s it reports itself (every callback on).

No thresholds anywhere: the speed goals are printed beside the figures, not enforced,
because shared machines are noisy. Importing this module does not import TensorFlow, so the
data worker (``--data-worker``, a fresh ``python -m benchmarks.bench`` process run from the
repository root) times the PNG decoder alone.
"""

import dataclasses
import datetime
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import machine_limit, pytorch_peers
from tf_assign2 import data
from tf_assign2.errors import UsageError
from tf_assign2.training.plan import native_bfloat16_cpu

ROOT = Path(__file__).resolve().parents[1]  # the repository root: where ``-m benchmarks.bench`` imports

LENET_BATCHES = (50, 256)
RNN_BATCH = 128
RNN_UNITS = 128
# PyTorch's bfloat16 autocast on a CPU without bfloat16 instructions is emulated, 10-20x slower than
# float32 (LeNet5: about 90 images/s, 15 minutes of a record for every epoch of every batch size): it is
# timed on this many images per epoch, enough for its rate, and the table says so.
EMULATED_PEER_IMAGES = 1024
NUM_CLASSES = 10  # both tasks: the CIFAR-10 subset and MNIST digits
CELLS = ("rnn", "lstm", "gru")
METHODS = ("tf1", "fit", "ours", "ours_f32", "one_chain", "xla", "bound")
RNN_METHODS = ("tf1", "fit", "ours", "one_chain", "xla", "bound")  # ours_f32 is ours: RNNs train in float32
TARGETS = {"cifar": 0.50, "mnist": 0.95}
# The recipes' time to accuracy: (task, settings file, target test accuracy, settings over the file's).
RECIPES = {"cifar recipe": ("cifar", "configs/cifar_lenet5_recipe.yaml", 0.60, {}),
           "mnist LSTM recipe": ("mnist", "configs/mnist_rnn_recipe.yaml", 0.97, {"cell": "lstm"})}
GOALS = {"vs_tf1": 1.3, "of_bound": 0.9, "decode_s": 1.0}
METHOD_NAMES = {
    "tf1": "TF1 graph + feed_dict loop (the starter)",
    "fit": "Keras `fit`, defaults (NumPy arrays, 1 step per call)",
    "ours": "our trainer (default settings)",
    "ours_f32": "our trainer, `--precision float32`",
    "one_chain": "our trainer, one chain (the plan's two set to one)",
    "xla": "our trainer, XLA on",
    "bound": "bare `tf.function` loop, in-memory tensors (bound)",
}


@dataclasses.dataclass
class Scope:
    """How much to measure (the Trainer has its own hardware plan, ``Trainer.plan``).

    ``full_run()`` makes a record for ``docs/bench/``; ``quick_run()`` is the CI-sized run.
    """

    quick: bool = False
    repeats: int = 3  # timed epochs per figure, after one warm-up epoch
    lenet_batches: tuple = LENET_BATCHES
    lenet_images: int = None  # images per timed epoch; None: all 10,000 CIFAR training images
    cells: tuple = CELLS
    rnn_images: int = None  # None: all 10,000 MNIST training images
    methods: tuple = METHODS
    xla_batches: tuple = LENET_BATCHES  # LeNet5 batch sizes that also get the XLA figure
    rnn_methods: tuple = RNN_METHODS
    decode_repeats: int = 3  # fresh data-worker processes
    tta_max_epochs: int = 20
    tta_ntrain: int = None  # training images per class for time-to-accuracy; None: a default run's
    rss_args: tuple = ("--epochs", "10")
    peak_size: int = 2048  # the matrix side of the peak measurement (chained products)
    peers: bool = True  # PyTorch rows for the same networks, where PyTorch is installed
    paired_rounds: int = 3  # recurrent rows: ours and PyTorch's best alternately, this many times each
    cli_only: bool = False  # only the default CLI runs' wall time (--cli-only)
    compare_with: str = None  # another checkout whose default CLI runs are measured alongside

    @classmethod
    def full_run(cls, repeats=None):
        return cls(repeats=repeats or 3)

    @classmethod
    def quick_run(cls, repeats=None):
        """Small epochs, LeNet5 at batch 50 only and the LSTM alone among the cells (each XLA compile takes
        5-15 s on 2 cores), time-to-accuracy capped at one epoch of 200 images per class, one-epoch CLI
        runs for memory and wall time. Every section and method of a full run, at CI size."""
        return cls(quick=True, repeats=repeats or 2, lenet_batches=(50,), lenet_images=800, cells=("lstm",),
                   rnn_images=1024, xla_batches=(50,),
                   rnn_methods=("tf1", "fit", "ours", "bound"), decode_repeats=1, tta_max_epochs=1, tta_ntrain=200,
                   peak_size=1024, paired_rounds=1,
                   rss_args=("--epochs", "1", "--ntrain", "50", "--ntest", "10"))


def _median_after_warmup(rates):
    """The figure we report: the median of the epochs after the first (tracing, compilation)."""
    steady = rates[1:] or rates
    return float(statistics.median(steady)) if steady else float("nan")


def _figure(rates):
    return {"median": _median_after_warmup(rates), "epochs": [round(r, 1) for r in rates]}


def _log(text):
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the TF1 baseline


def tf1_lenet(x, y, batch_size, epochs, seed=0):
    """The CIFAR starter's graph and loop, kept as it was (names follow the starter).

    Returns images/s of each epoch of ``len(x) // batch_size`` steps; each step draws a fresh
    permutation and copies the batch sample by sample into NumPy buffers, then feeds them.
    """
    import numpy as np
    import tensorflow as tf

    v1 = tf.compat.v1
    rng = np.random.RandomState(seed)
    Train = x.astype(np.float32) / 255.0
    LTrain = np.eye(10, dtype=np.float32)[y]
    nsamples = len(Train)

    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)

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
        cross_entropy = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=tf_labels, logits=y_conv))
        train_step = v1.train.AdamOptimizer(1e-3).minimize(cross_entropy)
        init = v1.global_variables_initializer()

    batch_xs = np.zeros((batch_size, 28, 28, 1), np.float32)
    batch_ys = np.zeros((batch_size, 10), np.float32)
    steps = nsamples // batch_size
    rates = []
    with v1.Session(graph=graph) as sess:
        sess.run(init)
        for _ in range(epochs):
            start = time.perf_counter()
            for _ in range(steps):
                perm = np.arange(nsamples)
                rng.shuffle(perm)
                for j in range(batch_size):
                    batch_xs[j, :, :, :] = Train[perm[j], :, :, :]
                    batch_ys[j, :] = LTrain[perm[j], :]
                sess.run(train_step, feed_dict={tf_data: batch_xs, tf_labels: batch_ys, keep_prob: 0.5})
            rates.append(steps * batch_size / (time.perf_counter() - start))
    return rates


def _tf1_cell(cell, nHidden):
    """TF1's BasicRNNCell / BasicLSTMCell(forget_bias=1.0) / GRUCell, written with tf.compat.v1 ops.

    ``tf.compat.v1.nn.rnn_cell`` needs Keras 2 and is gone with Keras 3, so the three cells are
    spelled out exactly as TF1 computed them: one matmul of ``concat([input, state])`` per gate
    group, Glorot-uniform kernels (``get_variable``'s default), zero biases (GRU gates: 1.0).
    Returns ``(zero_state(batch), step(input, state) -> (output, state))``.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    nInput = 28
    if cell == "rnn":
        W = v1.get_variable("rnn_kernel", [nInput + nHidden, nHidden])
        b = v1.get_variable("rnn_bias", [nHidden], initializer=v1.zeros_initializer())

        def step(x, h):
            h = tf.tanh(tf.matmul(tf.concat([x, h], 1), W) + b)
            return h, h

        return lambda n: tf.zeros([n, nHidden]), step
    if cell == "lstm":
        W = v1.get_variable("lstm_kernel", [nInput + nHidden, 4 * nHidden])
        b = v1.get_variable("lstm_bias", [4 * nHidden], initializer=v1.zeros_initializer())

        def step(x, state):
            c, h = state
            i, j, f, o = tf.split(tf.matmul(tf.concat([x, h], 1), W) + b, 4, axis=1)
            c = c * tf.sigmoid(f + 1.0) + tf.sigmoid(i) * tf.tanh(j)
            h = tf.tanh(c) * tf.sigmoid(o)
            return h, (c, h)

        return lambda n: (tf.zeros([n, nHidden]), tf.zeros([n, nHidden])), step
    Wg = v1.get_variable("gru_gates_kernel", [nInput + nHidden, 2 * nHidden])
    bg = v1.get_variable("gru_gates_bias", [2 * nHidden], initializer=v1.constant_initializer(1.0))
    Wc = v1.get_variable("gru_candidate_kernel", [nInput + nHidden, nHidden])
    bc = v1.get_variable("gru_candidate_bias", [nHidden], initializer=v1.zeros_initializer())

    def step(x, h):
        r, u = tf.split(tf.sigmoid(tf.matmul(tf.concat([x, h], 1), Wg) + bg), 2, axis=1)
        c = tf.tanh(tf.matmul(tf.concat([x, r * h], 1), Wc) + bc)
        h = u * h + (1 - u) * c
        return h, h

    return lambda n: tf.zeros([n, nHidden]), step


def tf1_rnn(cell, x, y, batch_size, epochs, seed=0, nHidden=RNN_UNITS):
    """The MNIST starter's graph and loop: static_rnn over 28 rows, ``next_batch``, feed_dict."""
    import numpy as np
    import tensorflow as tf

    v1 = tf.compat.v1
    nInput = nSteps = 28
    nClasses = 10
    rng = np.random.RandomState(seed)
    images = x.reshape(len(x), 784).astype(np.float32) / 255.0
    labels = np.eye(nClasses, dtype=np.float32)[y]
    order = {"perm": rng.permutation(len(images)), "next": 0}

    def next_batch(n):
        """mnist.train.next_batch: slices of a shuffled copy, reshuffled after each pass."""
        if order["next"] + n > len(images):
            order["perm"], order["next"] = rng.permutation(len(images)), 0
        idx = order["perm"][order["next"]:order["next"] + n]
        order["next"] += n
        return images[idx], labels[idx]

    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        tf_x = v1.placeholder("float", [None, nSteps, nInput])
        tf_y = v1.placeholder("float", [None, nClasses])
        weights = {"out": tf.Variable(v1.random_normal([nHidden, nClasses]))}
        biases = {"out": tf.Variable(v1.random_normal([nClasses]))}
        zero_state, step = _tf1_cell(cell, nHidden)
        rows = tf.split(tf.reshape(tf.transpose(tf_x, [1, 0, 2]), [-1, nInput]), nSteps, 0)
        state = zero_state(tf.shape(tf_x)[0])
        for row in rows:  # rnn.static_rnn: the 28 steps unrolled in the graph
            output, state = step(row, state)
        pred = tf.matmul(output, weights["out"]) + biases["out"]
        cost = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=pred, labels=tf_y))
        optimizer = v1.train.AdamOptimizer(learning_rate=1e-3).minimize(cost)
        init = v1.global_variables_initializer()

    steps = len(images) // batch_size
    rates = []
    with v1.Session(graph=graph) as sess:
        sess.run(init)
        for _ in range(epochs):
            start = time.perf_counter()
            for _ in range(steps):
                batchX, batchY = next_batch(batch_size)
                batchX = batchX.reshape((batch_size, nSteps, nInput))
                sess.run(optimizer, feed_dict={tf_x: batchX, tf_y: batchY})
            rates.append(steps * batch_size / (time.perf_counter() - start))
    return rates


# --------------------------------------------------------------------------- Keras figures


def our_config(task, jit="auto", **overrides):
    """The settings of a default CLI run of ``task`` (plus ``jit``), validated.

    Hardware choices stay unresolved here (``precision="auto"`` ...): what they mean on this
    machine is the Trainer's plan, ``our_trainer(config, x, y).plan``.
    """
    from tf_assign2 import config

    return config.build(task, {"jit": jit, "units": RNN_UNITS, **overrides})


def our_trainer(cfg, x=None, y=None):
    """The shared ``Trainer`` for ``cfg`` over the in-memory training arrays ``x``, ``y``.

    Its ``Arrays`` have empty validation and test splits (the training figures time training
    alone); its ``DataInfo`` describes ``x``. Without ``x``, one batch of blank 28x28x1 images:
    enough for the plan's precision and the model's weights, not for timing an epoch.
    """
    import numpy as np

    from tf_assign2.training.trainer import Trainer

    if x is None:
        x, y = np.zeros((cfg.batch_size, 28, 28, 1), np.uint8), np.zeros(cfg.batch_size, np.int32)
    arrays = data.Arrays(x, y, x[:0], y[:0], x[:0], y[:0])
    info = data.DataInfo(dataset=cfg.dataset, source="memory", location="benchmark arrays", num_classes=NUM_CLASSES,
                         class_names=[str(c) for c in range(NUM_CLASSES)], image_shape=tuple(int(d) for d in x.shape[1:]),
                         n_train=len(y), n_val=0, n_test=0)
    return Trainer(cfg, arrays, info)


def build_model(trainer):
    """``Trainer.build_model`` (seeded, the plan's precision, the strategy's scope), then Keras'
    global policy back to float32 so that the next figure starts clean."""
    import keras

    try:
        return trainer.build_model()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _fit_rates(model, fit, n, batch_size):
    """Call ``fit(callbacks=...)``; images/s of each epoch.

    Time is the trainer's Throughput clock (epoch start to its last step). Work is the optimizer's
    step count, not ``steps_per_epoch``: with an endless pipeline Keras runs whole executions, so
    the count stays right even where steps_per_execution would not divide the epoch.
    """
    import keras

    from tf_assign2.training.callbacks import Throughput

    steps_per_epoch = data.steps_per_epoch(n, batch_size)
    throughput = Throughput(n)
    steps = []
    counter = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: steps.append(-int(model.optimizer.iterations)),
        on_epoch_end=lambda epoch, logs: steps.append(steps.pop() + int(model.optimizer.iterations)),
    )
    fit(callbacks=[counter, throughput])  # counter first: its variable read stays off the clock
    return [n * done / steps_per_epoch / seconds for done, seconds in zip(steps, throughput.epoch_seconds)]


def ours(cfg, x, y, epochs, chains=None):
    """The shared trainer: ``Trainer.build_model``, ``compile`` and ``fit`` under its resolved plan
    (with ``chains`` instead of the plan's, if given).

    One ``Trainer.fit`` call, as a real run makes (its divergence checks included, its
    ``train_dataset`` pipeline); the per-epoch test curve, visualisation, validation and backups
    of ``Trainer.run`` act between epochs, outside what its Throughput callback times, so they
    are left out here (the full CLI run in the memory row reports the figure with them).
    """
    trainer = our_trainer(dataclasses.replace(cfg, epochs=epochs), x, y)
    if chains:
        trainer.plan = dataclasses.replace(trainer.plan, chains=chains)
    model = trainer.compile(build_model(trainer))
    return _fit_rates(model, lambda callbacks: trainer.fit(model, callbacks=callbacks, validation=None, verbose=0),
                      len(y), cfg.batch_size)


def keras_fit_defaults(cfg, x, y, epochs):
    """What a plain Keras script does: ``fit(x, y, batch_size)`` on float arrays, one step per call.

    The Trainer's model, loss, optimizer and metrics (``Trainer.compile``), but steps_per_execution=1,
    Keras' ``jit_compile="auto"`` and its array pipeline instead of ours; float32 (Keras' default).
    """
    from tf_assign2.training.plan import gpu_available

    # Keras' own jit_compile="auto" leaves XLA off on CPU-only machines.
    cfg = dataclasses.replace(cfg, epochs=epochs, precision="float32", jit="on" if gpu_available() else "off")
    trainer = our_trainer(cfg, x, y)
    model = trainer.compile(build_model(trainer), steps_per_execution=1)
    images = x.astype("float32") / 255.0
    return _fit_rates(model, lambda callbacks: model.fit(images, y, batch_size=cfg.batch_size, epochs=epochs,
                                                         verbose=0, callbacks=callbacks), len(y), cfg.batch_size)


def bound(cfg, x, y, epochs):
    """A bare ``tf.function`` training loop: whole epochs in one call over in-memory float tensors.

    No Keras fit loop, no tf.data, no metrics, no shuffling: forward, loss, gradients and our
    optimizer for ``len(x) // batch`` contiguous batches, with the Trainer's model (at its plan's
    precision), loss (``training_loss``) and optimizer (``make_optimizer``). The fastest this
    computation runs in TF2 here; our trainer's fraction of it is its overhead.
    """
    import tensorflow as tf

    from tf_assign2.optimizers import make_optimizer
    from tf_assign2.training.losses import training_loss

    model = build_model(our_trainer(cfg, x, y))
    images = tf.constant(x, tf.float32) / 255.0
    labels = tf.constant(y)
    batch = cfg.batch_size
    steps = len(y) // batch
    optimizer = make_optimizer(cfg)
    optimizer.build(model.trainable_variables)
    loss_fn = training_loss(cfg)

    @tf.function(jit_compile=False)
    def train_epoch():
        loss = tf.constant(0.0)
        for i in tf.range(steps):
            xb, yb = images[i * batch:(i + 1) * batch], labels[i * batch:(i + 1) * batch]
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        train_epoch().numpy()
        rates.append(steps * batch / (time.perf_counter() - start))
    return rates


def optimizer_step_ms(cfg, repeats=200):
    """Milliseconds of one optimizer update of the model's weights alone, gradients given.

    The part of a step that does not shrink with the batch: for LeNet5 it is Adam reading and
    writing four 3.3M-float tensors, memory-bound. It caps how close batch 50 can come to the
    images/s of a larger batch. The model is the Trainer's, the optimizer ``make_optimizer``'s.
    """
    import tensorflow as tf

    from tf_assign2.optimizers import make_optimizer

    model = build_model(our_trainer(cfg))
    optimizer = make_optimizer(cfg)
    optimizer.build(model.trainable_variables)
    gradients = [tf.random.normal(v.shape) * 1e-3 for v in model.trainable_variables]

    @tf.function
    def updates(count):
        for _ in tf.range(count):
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return optimizer.iterations

    updates(tf.constant(5)).numpy()
    start = time.perf_counter()
    updates(tf.constant(repeats)).numpy()
    return 1e3 * (time.perf_counter() - start) / repeats


def measure(method, task, x, y, batch_size, epochs, cell="lstm"):
    """Per-epoch images/s of ``method`` (see the module docstring) training ``task``'s model."""
    if method == "tf1":
        return tf1_lenet(x, y, batch_size, epochs) if task == "cifar" else tf1_rnn(cell, x, y, batch_size, epochs)
    precision = "float32" if method == "ours_f32" else "auto"
    cfg = our_config(task, jit="on" if method == "xla" else "auto", batch_size=batch_size, cell=cell, precision=precision)
    if method in ("ours", "ours_f32", "xla", "one_chain"):
        return ours(cfg, x, y, epochs, chains=1 if method == "one_chain" else None)
    if method == "fit":
        return keras_fit_defaults(cfg, x, y, epochs)
    return bound(cfg, x, y, epochs)


def lenet_methods(methods, auto_precision):
    """The LeNet5 methods worth timing: ``ours_f32`` only where ``ours`` computes in something else
    (bfloat16 on CPUs that have it; the Trainer's plan says); elsewhere it is the same run twice."""
    return tuple(m for m in methods if m != "ours_f32" or auto_precision != "float32")


def training_figures(scope, x, y, task, batches, methods, cells=(None,), label="images/s", chained=()):
    """{batch: {cell: {method: figure}}} for every combination, each method one fit in turn
    (``one_chain`` only for the ``chained`` cells: those whose plan has two chains)."""
    out = {}
    for batch in batches:
        for cell in cells:
            for method in methods:
                if method == "xla" and task == "cifar" and batch not in scope.xla_batches:
                    continue
                if method == "one_chain" and cell not in chained:
                    continue
                begun = time.perf_counter()
                rates = measure(method, task, x, y, batch, scope.repeats + 1, cell=cell or "lstm")
                figure = _figure(rates)
                figure["seconds"] = round(time.perf_counter() - begun, 1)
                out.setdefault(str(batch), {}).setdefault(cell or task, {})[method] = figure
                _log(f"  {cell or 'lenet5'} batch {batch} {method:5s}: {figure['median']:8.0f} {label}"
                     f" ({figure['seconds']:.0f} s)")
    return out


def _train_arrays(task, n):
    """The task's training images (no validation split), the first ``n`` if given."""
    from tf_assign2 import config

    arrays, _ = data.load_arrays(config.build(task, {"val_split": 0.0}))
    x, y = arrays.train_x, arrays.train_y
    if n:
        keep = __import__("numpy").random.default_rng(0).permutation(len(y))[:n]
        x, y = x[keep], y[keep]
    return x, y


def pytorch_figures(scope, cifar, mnist):
    """{network: {batch: {precision: figure}}} of the PyTorch loop (``pytorch_peers``) on the same arrays and
    batch sizes as our rows, or {"installed": False}."""
    if not pytorch_peers.installed():
        _log("  PyTorch is not installed: no peer rows (pip install -e \".[bench]\")")
        return {"installed": False}
    out = {"installed": True, "version": __import__("torch").__version__}
    jobs = [("lenet5", cifar, batch, 1e-3) for batch in scope.lenet_batches]
    jobs += [(cell, mnist, RNN_BATCH, our_config("mnist", cell=cell).lr) for cell in scope.cells]
    emulated = not native_bfloat16_cpu()
    for network, (x, y), batch, lr in jobs:
        for precision in pytorch_peers.PRECISIONS:
            images = EMULATED_PEER_IMAGES if emulated and precision == "bfloat16" else len(y)
            try:
                figure = _figure(pytorch_peers.rates(network, x[:images], y[:images], batch, scope.repeats + 1,
                                                     precision, lr=lr, units=RNN_UNITS))
            except RuntimeError as e:  # oneDNN has no bfloat16 LSTM on CPUs without bfloat16 instructions
                figure = {"median": None, "error": str(e).splitlines()[0][:200]}
            if images < len(y) and figure["median"] is not None:
                figure["emulated_images"] = images
            out.setdefault(network, {}).setdefault(str(batch), {})[precision] = figure
            _log(f"  PyTorch {network} batch {batch} {precision}: {_num(figure['median'])} images/s")
        if network != "lenet5":
            out[network][str(batch)]["paired"] = paired_rounds(scope, network, x, y, out[network][str(batch)], lr)
    return out


def _peer_best(peer):
    """The precision of PyTorch's faster figure in ``peer`` ({precision: figure}), None if none ran."""
    measured = {p: _get(peer, p, "median") for p in pytorch_peers.PRECISIONS}
    return max((p for p in measured if measured[p]), key=measured.get, default=None)


def paired_rounds(scope, cell, x, y, peer, lr):
    """ours / PyTorch's best for ``cell``, measured in alternating rounds: {"precision", "rounds", "median"}.

    A recurrent row trains for seconds, and a shared machine's speed drifts by more, between the
    minutes of our row and PyTorch's, than the gaps we compare (docs/speed.md shows a record where
    the two differed 2.3x unpaired and 0.97x paired). Each round therefore runs our trainer and then PyTorch (in its
    faster precision here, ``peer``), each for a warm-up epoch and ``scope.repeats`` timed ones, and
    the ratio of the two medians is the round's; the figure is the median over the rounds.
    """
    precision = _peer_best(peer)
    if precision is None:
        return None
    cfg = our_config("mnist", cell=cell)
    rounds = []
    for _ in range(scope.paired_rounds):
        ours_rate = _median_after_warmup(ours(cfg, x, y, scope.repeats + 1))
        peer_rate = _median_after_warmup(pytorch_peers.rates(cell, x, y, RNN_BATCH, scope.repeats + 1, precision,
                                                             lr=lr, units=RNN_UNITS))
        rounds.append({"ours": round(ours_rate), "pytorch": round(peer_rate), "ratio": round(ours_rate / peer_rate, 3)})
        _log(f"  paired round, {cell}: ours {_num(ours_rate)}, PyTorch {precision} {_num(peer_rate)}")
    return {"precision": precision, "rounds": rounds, "median": statistics.median(r["ratio"] for r in rounds)}


# --------------------------------------------------------------------------- time to accuracy


def time_to_accuracy(task, target, max_epochs, ntrain=None, recipe=None, overrides=None):
    """Training seconds until the test accuracy first reaches ``target``; a default run (or the ``recipe``
    settings file's, with ``overrides``), capped at ``max_epochs`` (None: the recipe's own epochs).

    The data (``data.load_arrays``: validation split carved out, test split only measured), the
    model, compile settings and pipeline are a default ``python -m tf_assign2.<task>`` run's: a
    ``Trainer`` builds, compiles and fits. After every epoch the trainer's TestCurve computes
    test accuracy; the clock is the trainer's Throughput epoch time (first to last step, tracing
    included), so evaluation is not counted as training.
    """
    import keras

    from tf_assign2 import models
    from tf_assign2.training.callbacks import TestCurve, Throughput
    from tf_assign2.training.trainer import EVAL_BATCH, Trainer

    if recipe:
        from tf_assign2 import config as schema

        values = schema.file_values(schema.read_yaml(ROOT / recipe), recipe)
        cfg = schema.build(task, values, overrides or {}, {"epochs": max_epochs, "ntrain": ntrain})
    else:
        cfg = our_config(task, epochs=max_epochs, ntrain=ntrain)
    max_epochs = cfg.epochs
    arrays, info = data.load_arrays(cfg)
    trainer = Trainer(cfg, arrays, info)
    n = len(arrays.train_y)
    model = trainer.compile(build_model(trainer))
    throughput = Throughput(n)
    result = {"task": task, "target": target, "max_epochs": max_epochs, "seconds": None, "epoch": None,
              "curve": [], "model": models.spec(cfg).title(cfg), "batch_size": cfg.batch_size,
              "optimizer": f"{cfg.optimizer} {cfg.lr:g}", "train_images": n, "plan": trainer.plan.to_dict()}
    started = time.perf_counter()

    def check(epoch, logs):
        accuracy = float(logs["test_accuracy"])
        result["curve"].append(round(accuracy, 4))
        if accuracy >= target and result["seconds"] is None:
            result.update(seconds=round(sum(throughput.epoch_seconds), 2), epoch=epoch + 1,
                          wall_seconds=round(time.perf_counter() - started, 2))
            model.stop_training = True

    callbacks = [TestCurve(data.eval_dataset(arrays.test_x, arrays.test_y, EVAL_BATCH), arrays.test_y), throughput,
                 keras.callbacks.LambdaCallback(on_epoch_end=check)]
    fit = trainer.fit(model, callbacks=callbacks, validation=None, verbose=0)
    result["divergence"] = fit.divergence
    result["best"] = max(result["curve"]) if result["curve"] else float("nan")
    result["train_seconds_run"] = round(sum(throughput.epoch_seconds), 2)
    result["epoch_seconds"] = [round(s, 2) for s in throughput.epoch_seconds]
    return result


# --------------------------------------------------------------------------- memory


def peak_rss(scope, env=None):
    """Peak resident memory of a default CIFAR CLI run (``cli_run``)."""
    return cli_run("cifar", scope.rss_args, env)


def cli_run(task, args=(), env=None, source=None):
    """A default ``python -m tf_assign2.<task>`` run as a user starts it: wall seconds, the seconds of its
    training steps (history.csv's ``epoch_seconds``, summed), their ratio, and its peak resident memory.

    ``source``: another checkout of the project whose code runs instead (``--compare-with``).

    Peak memory is read from ``wait4`` on that child alone (``RUSAGE_CHILDREN`` would report the
    largest of every child this process waited for). The run's summary.json adds its images/s and
    test accuracy.
    """
    from tf_assign2.runs import read_history

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        command = [sys.executable, "-m", f"tf_assign2.{task}", *args, "--runs-dir", tmp]
        with open(Path(tmp) / "log.txt", "w+") as log:
            started = time.perf_counter()
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=source,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {}),
                                          **({"PYTHONPATH": str(Path(source).resolve())} if source else {})})
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - started
            child.returncode = os.waitstatus_to_exitcode(status)
            log.seek(0)
            output = log.read()
        if child.returncode:
            raise RuntimeError(f"{' '.join(command)} exited {child.returncode}:\n{output[-2000:]}")
        summaries = glob.glob(os.path.join(tmp, "*", "summary.json"))
        summary = json.loads(Path(summaries[0]).read_text()) if summaries else {}
        histories = glob.glob(os.path.join(tmp, "*", "history.csv"))
        steps = sum(read_history(histories[0]).get("epoch_seconds", [])) if histories else float("nan")
    kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024
    return {"command": f"python -m tf_assign2.{task} " + " ".join(args), "peak_rss_mb": round(kib / 1024, 1),
            "images_per_sec": summary.get("images_per_sec"), "test_accuracy": summary.get("test_accuracy"),
            "epochs": summary.get("epochs_completed"), "train_seconds": summary.get("train_seconds"),
            "wall_seconds": round(wall, 1), "step_seconds": round(steps, 1), "wall_over_steps": round(wall / steps, 2),
            "output": output}


def default_cli_runs(scope):
    """The default runs the wall-time rows measure: CIFAR, MNIST and, where its idx files are installed,
    two epochs of LeNet5 on the full Fashion-MNIST (where the per-epoch extras meet 6x the data)."""
    runs = [("cifar", scope.rss_args), ("mnist", scope.rss_args)]
    if _fashion_folder() is not None:
        epochs = ("--epochs", "1", "--ntrain", "200", "--ntest", "50") if scope.quick else ("--epochs", "2")
        runs.append(("mnist", ("--dataset", "fashion_mnist", "--model", "lenet5", *epochs)))
    return runs


def compare_cli_runs(scope, other=None):
    """Each default CLI run with this checkout's code, with ``other``'s where given (before it, so both
    meet the machine in the same state: the before/after rows of one benchmark run), and its floor
    (``floor_cli_run``)."""
    codes = ([(_checkout_label(other), other)] if other else []) + [("this checkout", None)]
    rows = []
    for task, args in default_cli_runs(scope):
        for code, source in codes:
            _log(f"wall time ({code}): python -m tf_assign2.{task} {' '.join(args)} ...")
            rows.append({**cli_run(task, args, source=source), "code": code})
            _log_ratio(rows[-1])
        _log(f"wall time (floor): python -m benchmarks.floor_run {task} {' '.join(args)} ...")
        rows.append(floor_cli_run(task, args))
        _log_ratio(rows[-1])
    return rows


def _log_ratio(row):
    _log(f"  {row['wall_seconds']} s wall / {row['step_seconds']} s steps = {row['wall_over_steps']}x")


def floor_cli_run(task, args=()):
    """``benchmarks.floor_run``'s bare run of the same configuration (import, data, fit with the per-epoch
    validation and test evaluation, nothing else), timed from outside like ``cli_run``: the least
    ``wall / training steps`` any run of it can show on this machine."""
    command = [sys.executable, "-m", "benchmarks.floor_run", task, *args]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    steps = result["step_seconds"]
    return {"command": f"python -m tf_assign2.{task} " + " ".join(args), "code": FLOOR_LABEL, "peak_rss_mb": None,
            "images_per_sec": None, "test_accuracy": result["test_accuracy"], "wall_seconds": round(wall, 1),
            "step_seconds": round(steps, 1), "wall_over_steps": round(wall / steps, 2)}


FLOOR_LABEL = "floor: import, data, fit, per-epoch validation and test only"


def _checkout_label(path):
    try:
        commit = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{path} ({commit})" if commit else str(path)


# --------------------------------------------------------------------------- data


def _cifar_root():
    found = [p for p in data.local_candidates("cifar10") if (p / "Train").is_dir()]
    if not found:
        raise UsageError(f"bench needs the CIFAR10 PNG layout: set ${data.ENV_VAR} "
                         f"(tried {', '.join(map(str, data.local_candidates('cifar10')))})")
    return found[0]


def _fashion_folder():
    found = [p for p in data.local_candidates("fashion_mnist") if any(p.glob("*-idx3-ubyte*"))]
    return found[0] if found else None


def _files(folder, pattern):
    return sorted(p for p in Path(folder).glob(pattern) if p.is_file())


def _read_all(files):
    """Read every file's bytes: puts them in the OS page cache without decoding anything."""
    for path in files:
        path.read_bytes()


def _drop_page_cache(files):
    """Ask the kernel to forget these files' cached pages (clean pages only; no root needed)."""
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def data_timings(root=None, fashion=None):
    """Run in a fresh process (``--data-worker [CIFAR_ROOT [FASHION_FOLDER]]``): the loads a CLI run starts with.

    ``png_cold``: the first decode in a process (Pillow imported on the way), files already in
    the OS page cache - what every run pays. ``png_warm``: the same again in the same process.
    ``png_disk``: with the page cache dropped first, i.e. read from disk (first run after boot).
    ``idx_*``: the same for Fashion-MNIST's gzipped idx files. ``root``/``fashion`` default to
    where a run would find the data.
    """
    root = Path(root) if root else _cifar_root()
    pngs = _files(root, "*/*/*.png")
    _read_all(pngs)
    out = {"png_files": len(pngs)}
    out["png_cold"] = _seconds(lambda: data.read_png_layout(root))
    out["png_warm"] = _seconds(lambda: data.read_png_layout(root))
    out["png_pillow"] = _seconds(lambda: _pillow_decode(pngs))  # why the project decodes plain PNGs itself
    if hasattr(os, "posix_fadvise"):
        _drop_page_cache(pngs)
        out["png_disk"] = _seconds(lambda: data.read_png_layout(root))
    fashion = Path(fashion) if fashion else _fashion_folder()
    if fashion is not None:
        idx = _files(fashion, "*-ubyte*")
        _read_all(idx)
        start = time.perf_counter()
        train_x, _, test_x, _ = data.read_idx_folder(fashion)
        out["idx_cold"] = time.perf_counter() - start
        out["idx_images"] = len(train_x) + len(test_x)
        out["idx_warm"] = _seconds(lambda: data.read_idx_folder(fashion))
        if hasattr(os, "posix_fadvise"):
            _drop_page_cache(idx)
            out["idx_disk"] = _seconds(lambda: data.read_idx_folder(fashion))
        out["idx_folder"] = str(fashion)
    return out


def _pillow_decode(files):
    """Every file decoded by Pillow alone, as grayscale arrays: what ``data.png``'s fast path is measured against."""
    import numpy as np
    from PIL import Image

    return [np.asarray(Image.open(path).convert("L")) for path in files]


def data_worker_command():
    """``python -m benchmarks.bench --data-worker CIFAR_ROOT [FASHION_FOLDER]``, to run in ``ROOT``.

    The worker runs from the repository root, where ``benchmarks`` imports; the data folders are
    resolved here, in the caller's directory, and passed as absolute paths, so a relative
    ``$TF_ASSIGN2_DATA`` or ``./data`` still means what it means to the caller.
    """
    fashion = _fashion_folder()
    return [sys.executable, "-m", "benchmarks.bench", "--data-worker", str(_cifar_root().resolve()),
            *([str(fashion.resolve())] if fashion is not None else [])]


def data_figures(repeats):
    """Median over ``repeats`` fresh worker processes of every ``data_timings`` figure."""
    runs = []
    command = data_worker_command()
    for _ in range(repeats):
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            raise RuntimeError(f"bench data worker failed:\n{done.stderr[-2000:]}")
        runs.append(json.loads(lines[-1]))
    out = {}
    for key, value in runs[0].items():
        values = [r[key] for r in runs]
        out[key] = statistics.median(values) if isinstance(value, float) else value
    return out


# --------------------------------------------------------------------------- the run


def machine():
    """CPU model, cores, GPUs and versions (the trainer's own ``environment()``) and the load."""
    from tf_assign2.training.trainer import environment

    env = environment()
    env["loadavg_start"] = _loadavg()
    return env


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def run_bench(scope):
    """Measure everything in ``scope``; returns the results dict that ``markdown`` renders.

    The children (data workers, the CLI run for peak RSS) go first, before this process loads
    TensorFlow; then the training figures, all in this process. ``phase_seconds`` says where
    the time went, to keep ``--quick`` within its two minutes.
    """
    from tf_assign2.training.startup import start_tensorflow

    _cifar_root()  # no data: one line and exit code 2 now, not a worker's traceback later
    started = time.perf_counter()
    results = {"quick": scope.quick, "repeats": scope.repeats, "date": datetime.date.today().isoformat(),
               "scope": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(scope).items()},
               "phase_seconds": {}}

    def phase(name, fn):
        begun = time.perf_counter()
        value = fn()
        results["phase_seconds"][name] = round(time.perf_counter() - begun, 1)
        return value

    load_start = _loadavg()
    if scope.compare_with or scope.cli_only:
        results["cli_runs"] = phase("cli_runs", lambda: compare_cli_runs(scope, scope.compare_with))
    if scope.cli_only:
        results["machine"] = {**machine(), "loadavg_start": load_start, "loadavg_end": _loadavg()}
        results["seconds"] = round(time.perf_counter() - started, 1)
        return results
    _log("data loading (fresh processes)...")
    results["data"] = phase("data", lambda: data_figures(scope.decode_repeats))
    _log(f"  PNG decode {results['data']['png_cold']:.2f} s")
    _log(f"peak RSS and wall time: python -m tf_assign2.cifar {' '.join(scope.rss_args)} ...")
    results["memory"] = phase("memory", lambda: peak_rss(scope))
    _log(f"  {results['memory']['peak_rss_mb']:.0f} MB, wall / training steps {results['memory']['wall_over_steps']}")
    _log(f"wall time: python -m tf_assign2.mnist {' '.join(scope.rss_args)} ...")
    results["mnist_cli"] = phase("mnist_cli", lambda: cli_run("mnist", scope.rss_args))
    _log(f"  wall / training steps {results['mnist_cli']['wall_over_steps']}")

    phase("tensorflow_import", lambda: start_tensorflow(seed=0))
    results["machine"] = machine()
    x, y = cifar_arrays = _train_arrays("cifar", scope.lenet_images)
    results["lenet_images"] = len(y)
    _log(f"LeNet5 training, {len(y)} images per epoch, {scope.repeats} timed epochs after a warm-up...")
    lenet_config = our_config("cifar")
    results["trainer_plans"] = {"lenet5": our_trainer(lenet_config, x, y).plan.to_dict()}
    methods = lenet_methods(scope.methods, results["trainer_plans"]["lenet5"]["precision"])
    results["lenet"] = phase("lenet", lambda: training_figures(scope, x, y, "cifar", scope.lenet_batches, methods))
    results["lenet_optimizer_ms"] = phase("optimizer", lambda: optimizer_step_ms(lenet_config))
    _log(f"  optimizer update alone: {results['lenet_optimizer_ms']:.2f} ms/step")
    x, y = _train_arrays("mnist", scope.rnn_images)
    results["rnn_images"] = len(y)
    for cell in scope.cells:
        results["trainer_plans"][cell] = our_trainer(our_config("mnist", cell=cell), x, y).plan.to_dict()
    _log(f"RNN training, {len(y)} samples per epoch...")
    chained = [cell for cell in scope.cells if results["trainer_plans"][cell].get("chains", 1) > 1]
    rnn = phase("rnn", lambda: training_figures(scope, x, y, "mnist", (RNN_BATCH,), scope.rnn_methods, scope.cells,
                                                "samples/s", chained=chained))
    results["rnn"] = rnn[str(RNN_BATCH)]
    _log("the machine's limit: chained matrix products, float32 and bfloat16...")
    results["peak_gflops"] = phase("peak", lambda: machine_limit.peak_gflops(scope.peak_size))
    _log("  " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in results["peak_gflops"].items()))
    results["training_flops"] = {"lenet5": machine_limit.training_flops(build_model(our_trainer(lenet_config))),
                                 **{cell: machine_limit.training_flops(build_model(our_trainer(
                                     our_config("mnist", cell=cell)))) for cell in scope.cells}}
    if scope.peers:
        results["pytorch"] = phase("pytorch", lambda: pytorch_figures(scope, cifar_arrays, (x, y)))
    results["time_to_accuracy"] = {}
    for task, target in TARGETS.items():
        _log(f"time to {target} test accuracy, {task} (at most {scope.tta_max_epochs} epochs)...")
        tta = phase(f"time_to_accuracy_{task}",
                    lambda: time_to_accuracy(task, target, scope.tta_max_epochs, scope.tta_ntrain))  # noqa: B023
        results["time_to_accuracy"][task] = tta
        _log(f"  {tta['seconds']} s, epoch {tta['epoch']}, curve {tta['curve']}")
    for name, (task, recipe, target, overrides) in RECIPES.items():
        _log(f"time to {target} test accuracy, {name} ({recipe})...")
        epochs = scope.tta_max_epochs if scope.quick else None  # a full run: the recipe's own length
        tta = phase(f"time_to_accuracy_{name.replace(' ', '_')}",
                    lambda: time_to_accuracy(task, target, epochs, scope.tta_ntrain, recipe, overrides))  # noqa: B023
        results["time_to_accuracy"][name] = {**tta, "recipe": recipe}
        _log(f"  {tta['seconds']} s, epoch {tta['epoch']}, curve {tta['curve']}")
    results["machine"]["loadavg_end"] = _loadavg()
    results["seconds"] = round(time.perf_counter() - started, 1)
    _log("phase seconds: " + ", ".join(f"{k} {v}" for k, v in results["phase_seconds"].items()))
    return results


# --------------------------------------------------------------------------- the table


def _num(value, digits=0):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(a, b):
    if a is None or b is None or not b or not math.isfinite(a) or not math.isfinite(b):
        return "-"
    return f"{a / b:.2f}x"


def _get(figures, *keys):
    for key in keys:
        if not isinstance(figures, dict) or key not in figures:
            return None
        figures = figures[key]
    return figures


def _best(figures, method):
    """(batch, images/s) of ``method`` at its fastest LeNet5 batch size."""
    found = [(b, figures[b]["cifar"][method]["median"]) for b in figures if method in figures[b]["cifar"]]
    return max(found, key=lambda pair: pair[1]) if found else (None, None)


def headline(results):
    """The goals' ratios and what was measured, one line each: (what, value, goal)."""
    lenet, data_ = results["lenet"], results["data"]
    ours50 = _get(lenet, "50", "cifar", "ours", "median")
    tf1_50 = _get(lenet, "50", "cifar", "tf1", "median")
    bound_batch, bound_best = _best(lenet, "bound")
    ours_batch, ours_best = _best(lenet, "ours")
    bound_same = _get(lenet, str(ours_batch), "cifar", "bound", "median")
    rows = [
        ("our trainer / TF1 loop, LeNet5 batch 50", _ratio(ours50, tf1_50), f">= {GOALS['vs_tf1']}x"),
        (f"our trainer batch 50 / bound at its best batch ({bound_batch})", _ratio(ours50, bound_best),
         f">= {GOALS['of_bound']}x"),
        (f"our trainer / bound, both at our best batch ({ours_batch})", _ratio(ours_best, bound_same),
         f">= {GOALS['of_bound']}x"),
        (f"bound batch 50 / bound at its best batch ({bound_batch}): the ceiling of any batch-50 loop",
         _ratio(_get(lenet, "50", "cifar", "bound", "median"), bound_best), ""),
    ]
    if results.get("lenet_optimizer_ms"):
        rows.append(("Adam update of LeNet5's 3.3M weights alone, per step (does not shrink with the batch)",
                     f"{results['lenet_optimizer_ms']:.1f} ms", ""))
    for cell, figures in results.get("rnn", {}).items():
        ours_rnn = _get(figures, "ours", "median")
        rows.append((f"our trainer, {cell.upper()}-{RNN_UNITS} batch {RNN_BATCH}: vs TF1 loop; of bound",
                     f"{_ratio(ours_rnn, _get(figures, 'tf1', 'median'))}; "
                     f"{_ratio(ours_rnn, _get(figures, 'bound', 'median'))}", ""))
    for task, tta in results.get("time_to_accuracy", {}).items():
        rows.append((f"time to {tta['target']:.2f} test accuracy, {task} {tta['model']}", _tta_text(tta), "reached"))
    rows.append((f"PNG decode of the {data_['png_files']:,} CIFAR images (fresh process)",
                 f"{data_['png_cold']:.2f} s", f"<= {GOALS['decode_s']:g} s"))
    return rows


def _tta_text(tta):
    if tta["seconds"] is None:
        return f"not reached in {tta['max_epochs']} epoch{'s' * (tta['max_epochs'] != 1)} (best {tta['best']:.3f})"
    return f"{tta['seconds']:.1f} s (epoch {tta['epoch']})"


def markdown(results):
    """The markdown record (see docs/speed.md) of a ``run_bench`` results dict: header, the goals' ratios,
    then one section per figure."""
    m = results["machine"]
    command = "python -m benchmarks.bench" + (" --quick" if results["quick"] else "")
    if results.get("scope", results.get("plan", {})).get("cli_only"):
        return cli_markdown(results, command + " --cli-only")
    lines = [
        "# Benchmarks",
        "",
        f"`{command}`, {results['date']}, {results['seconds']:.0f} s in all"
        + (" (**--quick**: small epochs, one-epoch caps; a smoke run, not comparable)." if results["quick"] else "."),
        "",
        f"Machine: {m['processor']}, {m['cpu_count']} cores, GPU: {', '.join(m.get('gpus') or []) or 'none'}; "
        f"Python {m['python']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}, NumPy {m['numpy']}. "
        f"Load average (1/5/15 min) at start {_load(m.get('loadavg_start'))}, at end {_load(m.get('loadavg_end'))}.",
        "",
        f"Training figures: median of {results['repeats']} timed epochs after one warm-up epoch (tracing, "
        "compilation), every method in turn in one process (the TF1 baseline in its own `tf.Graph` and Session).",
        "",
        *_plans_lines(results.get("trainer_plans")),
        "## Summary: the speed goals and what was measured",
        "",
        "| figure | measured | goal |",
        "|---|---|---|",
        *(f"| {what} | {value} | {goal} |" for what, value, goal in headline(results)),
    ]
    for section in (_lenet_section, _rnn_section, _limit_section, _data_section, _tta_section, _memory_section,
                    _cli_comparison_section):
        lines += section(results)
    return "\n".join(lines) + "\n"


def cli_markdown(results, command):
    """The record of a ``--cli-only`` run: the machine and the default CLI runs' wall time."""
    m = results["machine"]
    compare = results.get("scope", results.get("plan", {})).get("compare_with")
    lines = ["# Benchmarks: default CLI runs", "",
             f"`{command}{f' --compare-with {compare}' if compare else ''}`, {results['date']}, "
             f"{results['seconds']:.0f} s in all.", "",
             f"Machine: {m['processor']}, {m['cpu_count']} cores; TensorFlow {m['tensorflow']}, Keras {m['keras']}. "
             f"Load average (1/5/15 min) at start {_load(m.get('loadavg_start'))}, at end {_load(m.get('loadavg_end'))}."]
    return "\n".join(lines + _cli_comparison_section(results)) + "\n"


def _plan_words(plan):
    """'float32, oneDNN, XLA off, 2 unrolled chains, 16 steps per call' from a recorded plan."""
    words = [plan["precision"], *(["oneDNN"] if plan.get("onednn") else []), f"XLA {'on' if plan['jit'] else 'off'}"]
    if plan.get("chains", 1) > 1:
        words.append(f"{plan['chains']} unrolled chains")
    steps = plan["steps_per_execution"]
    return ", ".join([*words, f"{steps} step{'s' * (steps != 1)} per call"])


def _plans_lines(plans):
    """One line: what the shared Trainer's plan resolved to for each default model (the ``ours`` rows)."""
    if not plans:
        return []
    text = "; ".join(f"{name}: {_plan_words(p)}" for name, p in plans.items())
    device = "/".join(sorted({p.get("device", "?") for p in plans.values()}))
    return [f"Our trainer's resolved plans (`Trainer.plan`, default settings, {device}): {text}.", ""]


def _lenet_section(results):
    batches = list(results["lenet"])
    lines = ["", f"## LeNet5 training, CIFAR subset 28x28x1, Adam 1e-3 ({results['lenet_images']:,} images per epoch)",
             "", "| method |" + "".join(f" batch {b} images/s | vs TF1 | of bound |" for b in batches),
             "|---|" + "---|---|---|" * len(batches)]
    for method in METHODS:
        if not any(method in results["lenet"][b]["cifar"] for b in batches):
            continue
        row = f"| {METHOD_NAMES[method]} |"
        for b in batches:
            figures = results["lenet"][b]["cifar"]
            value = _get(figures, method, "median")
            row += (f" {_num(value)} | {_ratio(value, _get(figures, 'tf1', 'median'))} | "
                    f"{_ratio(value, _get(figures, 'bound', 'median'))} |")
        lines.append(row)
    mem = results.get("memory") or {}
    if mem.get("images_per_sec"):
        lines += ["", f"With every callback of a real run (per-epoch test curve, visualisation, validation, TensorBoard, "
                  f"backups), `{mem['command']}` reports **{_num(mem['images_per_sec'])} images/s** at batch 50 in its "
                  "summary.json. Those callbacks act between epochs, outside the trainer's Throughput clock, so the "
                  "`ours` row leaves them out. Both count the full batches an epoch trains."]
    return lines


def _rnn_section(results):
    if not results.get("rnn"):
        return []
    lines = ["", f"## RNN training, MNIST rows, {RNN_UNITS} units, batch {RNN_BATCH} "
             f"({results['rnn_images']:,} samples per epoch)", "",
             "The TF1 cells are written out with `tf.compat.v1` ops (TF1's `rnn_cell.*` need Keras 2), "
             "unrolled over the 28 rows like `static_rnn`.", "",
             "| cell | method | samples/s | vs TF1 | of bound |", "|---|---|---|---|---|"]
    for cell, figures in results["rnn"].items():
        for method in (m for m in METHODS if m in figures):
            value = figures[method]["median"]
            lines.append(f"| {cell.upper()} | {METHOD_NAMES[method]} | {_num(value)} | "
                         f"{_ratio(value, _get(figures, 'tf1', 'median'))} | "
                         f"{_ratio(value, _get(figures, 'bound', 'median'))} |")
    return lines


def _limit_section(results):
    """Each `ours` training row as FLOP/s and a fraction of the machine's peak, beside PyTorch's loop."""
    peak = results.get("peak_gflops")
    if not peak:
        return []
    flops, plans, torch = results.get("training_flops", {}), results.get("trainer_plans", {}), results.get("pytorch")
    lines = ["", "## The machine's limit, and PyTorch on the same machine", "",
             f"Practical peak, chained {results['scope'].get('peak_size', 2048)}-square matrix products through "
             f"TensorFlow: **float32 {_num(peak['float32'])} GFLOP/s, bfloat16 {_num(peak['bfloat16'])} GFLOP/s**. "
             "FLOP per image: one training step counted from the model's layers (forward, times 3 for the backward "
             "pass). A row's fraction is of the peak of the precision it computes in.", ""]
    if torch is not None and not torch.get("installed"):
        lines += ["PyTorch: not installed (`pip install -e \".[bench]\"`).", ""]
    elif torch:
        lines += [f"PyTorch {torch['version']}: eager loop, Adam, threads = CPU count, denormals flushed.", ""]
    lines += ["| network | batch | training MFLOP per image | ours images/s | ours GFLOP/s | of peak "
              "| PyTorch float32 images/s | PyTorch bfloat16 autocast images/s | ours / PyTorch's best |",
              "|---|---|---|---|---|---|---|---|---|"]
    rows = [("lenet5", b, _get(results["lenet"][b]["cifar"], "ours", "median")) for b in results.get("lenet", {})]
    rows += [(cell, str(RNN_BATCH), _get(figures, "ours", "median")) for cell, figures in results.get("rnn", {}).items()]
    for network, batch, rate in rows:
        if network not in flops or rate is None:
            continue
        gflops = rate * flops[network] / 1e9
        precision = (plans.get(network) or {}).get("precision", "float32")
        peer = (torch or {}).get(network, {}).get(batch, {})
        peers = [_peer_cell(peer.get(p, {})) if peer else "-" for p in ("float32", "bfloat16")]
        best = _get(peer, _peer_best(peer), "median") if peer else None
        paired = peer.get("paired") if peer else None
        versus = f"{paired['median']:.2f}x (paired)" if paired else _ratio(rate, best)
        lines.append(f"| {network} | {batch} | {flops[network] / 1e6:.1f} | {_num(rate)} | {gflops:.1f} | "
                     f"{gflops / peak['bfloat16' if precision == 'bfloat16' else 'float32']:.0%} ({precision}) | "
                     f"{peers[0]} | {peers[1]} | {versus} |")
    return lines + _paired_lines(torch or {})


def _peer_cell(figure):
    """One PyTorch figure of the limit table: images/s, why it failed, or that it was emulated."""
    if figure.get("error"):
        return "fails: " + figure["error"][:60]
    if figure.get("emulated_images"):
        return f"{_num(figure['median'])} (emulated: no bfloat16 instructions; {figure['emulated_images']:,} images per epoch)"
    return _num(figure.get("median"))


def _paired_lines(torch):
    """The paired rounds behind the recurrent rows' "ours / PyTorch's best" (``paired_rounds``)."""
    rows = [(network, batch, figures["paired"]) for network, batches in torch.items() if isinstance(batches, dict)
            for batch, figures in batches.items() if isinstance(figures, dict) and figures.get("paired")]
    if not rows:
        return []
    lines = ["", "The recurrent rows train for seconds, so their ratio is paired: our trainer and then PyTorch in its "
             "faster precision, each a warm-up and timed epochs, alternately; the figure is the median of the rounds' "
             "ratios (the two speeds above were measured minutes apart).", "",
             "| network | batch | PyTorch precision | rounds: ours / PyTorch samples/s | round ratios | median |",
             "|---|---|---|---|---|---|"]
    for network, batch, paired in rows:
        pairs = ", ".join(f"{_num(r['ours'])} / {_num(r['pytorch'])}" for r in paired["rounds"])
        ratios = " ".join(f"{r['ratio']:.2f}" for r in paired["rounds"])
        lines.append(f"| {network} | {batch} | {paired['precision']} | {pairs} | {ratios} | {paired['median']:.2f}x |")
    return lines


def _data_section(results):
    d = results["data"]
    rows = [(f"{d['png_files']:,} CIFAR PNGs, first decode in a fresh process (files in the OS page cache)", "png_cold"),
            ("same, again in the same process (warm)", "png_warm"),
            ("the same files decoded by Pillow alone, warm (what the fast path in `data.png` replaces)", "png_pillow"),
            ("same, OS page cache dropped first (read from disk)", "png_disk"),
            (f"Fashion-MNIST idx, {d.get('idx_images', 0):,} images (gzip), first read in the process", "idx_cold"),
            ("same, again (warm)", "idx_warm"),
            ("same, OS page cache dropped first", "idx_disk")]
    return ["", "## Data loading", "", "| load | seconds |", "|---|---|",
            *(f"| {what} | {d[key]:.2f} |" for what, key in rows if key in d)]


def _tta_section(results):
    tta = results.get("time_to_accuracy") or {}
    if not tta:
        return []
    lines = ["", "## Time to accuracy", "",
             "A default run of each CLI, and each recipe's settings file (validation split carved out); test "
             "accuracy checked after every epoch; "
             "seconds are training time (first to last step of each epoch, tracing included, evaluation not).", "",
             "| task | model | training images | target | training seconds | epochs | first epoch s (tracing in it) "
             "| later epochs s (median) | test accuracy per epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task, t in tta.items():
        reached = t["seconds"] is not None
        seconds = _num(t["seconds"], 1) if reached else f"not reached ({t['train_seconds_run']:.1f} s run)"
        epochs = t["epoch"] if reached else f"> {t['max_epochs']}"
        each = t.get("epoch_seconds") or []
        first = f"{each[0]:.2f}" if each else "-"
        later = f"{statistics.median(each[1:]):.2f}" if len(each) > 1 else "-"
        lines.append(f"| {task} | {t['model']}, batch {t['batch_size']}, {t['optimizer']} | {t['train_images']:,} | "
                     f"{t['target']:.2f} | {seconds} | {epochs} | {first} | {later} | "
                     f"{' '.join(f'{a:.3f}' for a in t['curve'])} |")
    return lines


def _cli_comparison_section(results):
    runs = results.get("cli_runs") or []
    if not runs:
        return []
    lines = ["", "## Default CLI runs, code compared", "",
             "Each run with each code in turn, in one benchmark process. Wall: the whole command (start-up, data, "
             "every epoch's validation, test curve, visualisation and backup, export). Training steps: "
             "history.csv's `epoch_seconds`, summed. The floor row is `python -m benchmarks.floor_run` with the "
             "same flags: the same run with nothing but TensorFlow's import, the data, and the fit with its "
             "per-epoch validation and test evaluation; no run of that configuration can go below its ratio here.",
             "",
             "| run | code | wall s | training steps s | wall / steps | peak RSS | images/s | test accuracy |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| `{r['command']}` | {r['code']} | {_num(r.get('wall_seconds'), 1)} | "
                     f"{_num(r.get('step_seconds'), 1)} | {_num(r.get('wall_over_steps'), 2)}x | "
                     f"{_num(r['peak_rss_mb']) + ' MB' if r['peak_rss_mb'] else '-'} | {_num(r.get('images_per_sec'))} | "
                     f"{_num(r.get('test_accuracy'), 3)} |")
    return lines


def _memory_section(results):
    runs = [r for r in (results.get("memory"), results.get("mnist_cli")) if r]
    if not runs:
        return []
    lines = ["", "## Default CLI runs: wall time, training steps, memory", "",
             "Wall: the whole command as a user waits for it (start-up, data, every epoch's validation, test "
             "curve, visualisation and backup, export). Training steps: history.csv's `epoch_seconds`, summed.", "",
             "| run | wall s | training steps s | wall / steps | peak RSS | images/s | test accuracy |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| `{r['command']}` | {_num(r.get('wall_seconds'), 1)} | {_num(r.get('step_seconds'), 1)} | "
                     f"{_num(r.get('wall_over_steps'), 2)}x | {_num(r['peak_rss_mb'])} MB | "
                     f"{_num(r.get('images_per_sec'))} | {_num(r.get('test_accuracy'), 3)} |")
    return lines


def _load(values):
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


def main(argv=None):
    from tf_assign2.cli import ArgumentParser, positive_int

    parser = ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small epochs, caps of one epoch (under 2 minutes)")
    parser.add_argument("--repeats", type=positive_int, default=None, help="timed epochs per figure (3; quick 2)")
    parser.add_argument("--out", default=None, help="write the markdown here (e.g. BENCHMARKS.md; the records "
                        "are kept in docs/bench/, named like docs/bench/2026-11-26-epyc-avx2.md)")
    parser.add_argument("--json", default=None, help="also write every figure, per epoch, as JSON here")
    parser.add_argument("--cli-only", action="store_true", help="only the default CLI runs' wall time / training "
                        "steps (CIFAR, MNIST, and 2 epochs of LeNet5 on Fashion-MNIST where installed)")
    parser.add_argument("--compare-with", metavar="CHECKOUT", default=None, help="another checkout of this project "
                        "(e.g. a git worktree of an older commit): its default CLI runs are measured alongside, "
                        "alternately, for a before/after table")
    args = parser.parse_args(argv)
    scope = Scope.quick_run(args.repeats) if args.quick else Scope.full_run(args.repeats)
    if args.compare_with and not (Path(args.compare_with) / "tf_assign2" / "__init__.py").is_file():
        raise UsageError(f"--compare-with {args.compare_with}: not a checkout of this project (no tf_assign2/)")
    scope = dataclasses.replace(scope, cli_only=args.cli_only, compare_with=args.compare_with)
    results = run_bench(scope)
    text = markdown(results)
    print(text)
    from tf_assign2.runs import write_atomic

    if args.out:
        write_atomic(args.out, text)
    if args.json:
        write_atomic(args.json, json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--data-worker"]:
        print(json.dumps(data_timings(*sys.argv[2:4])))
    else:
        from tf_assign2.cli import run_cli

        sys.exit(run_cli(main))
