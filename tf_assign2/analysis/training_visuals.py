"""The visualisation callback: filters, activation statistics and TensorBoard summaries of a run.

``Visualization`` is added to every training run (``--no-visualize`` turns it off). For a CNN,
in the run directory:

* ``filters/filters_epoch_NNN.png`` every ``every`` epochs (000: the initial filters),
  ``filters.png`` at the end, ``filters_evolution.png`` (rows: epochs, columns: filters) and
  ``filters_change.png`` (final minus initial filters: what training added);
  the kernels themselves are kept in ``filters/history.npz``, so a resumed run continues them;
* ``activation_stats.json``: mean, variance, std, min, max and fraction of zeros of each conv
  layer's output after ReLU and after pooling (plus the net input ``conv(x) + b``) on the test
  images, rewritten after every epoch (with the means and variances of all epochs so far) and
  printed one line per layer at the end of training;

for an RNN, ``hidden_state_stats.json``, ``hidden_states.png`` (statistics of the hidden state
over the 28 steps) and ``recurrent_kernel.png``.

TensorBoard (``tensorboard/visualization``): the starter's ``variable_summaries`` (mean, stddev,
min, max, histogram) of every weight and bias, of the activations, and the filter grid (or
recurrent kernel) as an image, per epoch. All of it is computed here, eagerly, between epochs:
nothing is added to the compiled training step, and no random generator is touched, so runs
stay exactly reproducible and resumable.

The callback holds only its settings and NumPy arrays until ``on_train_begin``, and
``copy.deepcopy`` gives a fresh, unstarted callback, as keras-tuner needs (it copies callbacks
for every trial).
"""

import copy
import math
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_assign2 import figures, models, runs
from tf_assign2.errors import UsageError

STATS = ("mean", "variance", "std", "min", "max", "zero_fraction")
POOLING = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
GATES = {"LSTM": ["input", "forget", "cell", "output"], "GRU": ["update", "reset", "candidate"]}


# --------------------------------------------------------------------------- statistics


class RunningStats:
    """Mean, variance (population, ddof=0), std, min, max and fraction of zeros, batch by batch.

    Batches are merged with Chan et al.'s pairwise update in float64, so the result equals
    NumPy's ``mean``/``var`` over all values concatenated, to float64 round-off.
    """

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.min, self.max, self.zeros = math.inf, -math.inf, 0

    def update(self, values):
        values = np.asarray(values)
        if values.dtype not in (np.float32, np.float64):
            values = values.astype(np.float64)  # float16 (mixed precision), integers
        values = values.ravel()
        n = values.size
        if n == 0:
            return self
        # float32 values stay float32 (no copy); the sums are accumulated in float64.
        mean = float(values.sum(dtype=np.float64)) / n
        deviation = values - values.dtype.type(mean)
        m2 = float(np.dot(deviation, deviation)) if values.dtype == np.float64 else \
            float(np.square(deviation).sum(dtype=np.float64))
        return self.merge(n, mean, m2, float(values.min()), float(values.max()), int(np.count_nonzero(values == 0)))

    def merge(self, n, mean, m2, low, high, zeros):
        """Add a batch given by its moments (``batch_moments``: count, mean, sum of squared deviations
        from that mean, min, max, number of zeros)."""
        n = int(n)
        if n == 0:
            return self
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.min, self.max = min(self.min, float(low)), max(self.max, float(high))
        self.zeros += int(zeros)
        return self

    def result(self):
        if not self.count:
            return {key: None for key in STATS}
        variance = self.m2 / self.count
        return {
            "mean": float(self.mean),
            "variance": float(variance),
            "std": float(math.sqrt(variance)) if variance >= 0 else float("nan"),
            "min": self.min,
            "max": self.max,
            "zero_fraction": self.zeros / self.count,
        }


def as_float_images(images):
    """uint8 images -> float32 in [0, 1] (as in training); float images are passed through."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def spread_indices(n, limit):
    """At most ``limit`` indices spread evenly over range(n) (test sets may be sorted by class)."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def batches(images, batch_size):
    for start in range(0, len(images), batch_size):
        yield as_float_images(images[start : start + batch_size])


def activation_layers(model):
    """The conv and pooling layers, in order: [(name, layer, stage)]."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            activation = keras.activations.serialize(layer.activation)
            name = activation if isinstance(activation, str) else getattr(layer.activation, "__name__", "activation")
            found.append((layer.name, layer, "after ReLU" if name == "relu" else f"after {name}"))
        elif isinstance(layer, POOLING):
            found.append((layer.name, layer, "after pooling"))
    return found


def net_input(layer, inputs):
    """A Conv2D layer's pre-activation ``conv(x) + b``, with the layer's own kernel and settings."""
    x = keras.ops.cast(inputs, "float32")  # float32 even under mixed precision
    out = layer.convolution_op(x, keras.ops.cast(layer.kernel, "float32"))
    if layer.use_bias:
        out = out + keras.ops.cast(layer.bias, "float32")
    return out


def batch_moments(values):
    """[count, mean, sum of squared deviations, min, max, zeros] of a batch of tensors, in float64.

    A batch's share of ``RunningStats`` computed where the values are: inside the probe's compiled
    function, so only six numbers per layer leave TensorFlow (moving the activations to NumPy and
    reducing them there cost more than the forward pass). Sums run in float32 within each image
    (at most a few ten thousand values: relative error ~1e-7) and in float64 across images, twice
    as fast as float64 throughout; min, max and zeros are exact.
    """
    x = tf.cast(tf.reshape(values, [tf.shape(values)[0], -1]), tf.float32)
    count = tf.cast(tf.size(x), tf.float64)
    mean = tf.reduce_sum(tf.cast(tf.reduce_sum(x, axis=1), tf.float64)) / count
    deviation = x - tf.cast(mean, tf.float32)
    m2 = tf.reduce_sum(tf.cast(tf.reduce_sum(deviation * deviation, axis=1), tf.float64))
    # the float32 mean's rounding, corrected exactly as in a two-pass algorithm: m2 -= n * (mean_32 - mean)^2
    shift = tf.cast(tf.cast(mean, tf.float32), tf.float64) - mean
    return tf.stack([count, mean, m2 - count * shift * shift, tf.cast(tf.reduce_min(x), tf.float64),
                     tf.cast(tf.reduce_max(x), tf.float64), tf.reduce_sum(tf.cast(tf.equal(x, 0.0), tf.float64))])


class ActivationProbe:
    """Computes the outputs of a model's conv/pool layers (and conv net inputs) on images."""

    def __init__(self, model, net_inputs=True):
        self.layers = activation_layers(model)
        self.convs = [(name, layer) for name, layer, _ in self.layers if isinstance(layer, keras.layers.Conv2D)]
        outputs = [layer.output for _, layer, _ in self.layers]
        if net_inputs:
            outputs += [layer.input for _, layer in self.convs]
        self.net_inputs = net_inputs
        self.extractor = keras.Model(model.input, outputs, name="activation_probe") if self.layers else None
        self.names = [name for name, _, _ in self.layers] + [f"{name}/net_input" for name, _ in self.convs
                                                             if net_inputs]
        # One trace for every batch size (the per-epoch sample's 256 and the final pass's last, shorter
        # batch): each trace of the probe cost about 0.3 s.
        batch = tf.TensorSpec((None, *model.input.shape[1:]), tf.float32)
        self._moments = tf.function(self._batch_moments, input_signature=[batch])

    def _outputs(self, images):
        """[tensor] in ``self.names`` order: the layers' outputs, then the conv net inputs."""
        outputs = self.extractor(images, training=False)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        outputs = list(outputs[: len(self.layers)]) + (
            [net_input(layer, inputs) for (_, layer), inputs in zip(self.convs, outputs[len(self.layers) :])]
            if self.net_inputs else [])
        return outputs

    def __call__(self, images):
        """{name: array} for one batch; net inputs as ``<conv>/net_input``."""
        return {name: np.asarray(out) for name, out in zip(self.names, self._outputs(images))}

    def _batch_moments(self, images):
        return [batch_moments(out) for out in self._outputs(images)]

    def moments(self, images):
        """{name: its ``batch_moments`` as NumPy} for one batch, in one compiled call."""
        values = self._moments(tf.convert_to_tensor(images))
        return {name: np.asarray(v) for name, v in zip(self.names, values)}

    def shapes(self):
        """{name: [H, W, C] per image} of each probed tensor."""
        layers = [list(layer.output.shape[1:]) for _, layer, _ in self.layers]
        convs = [list(layer.output.shape[1:]) for _, layer in self.convs] if self.net_inputs else []
        return dict(zip(self.names, layers + convs))


def activation_statistics(model, images, batch_size=256, net_inputs=True, probe=None, first_batch=None):
    """Statistics of every conv layer's output (after its ReLU), pooled output and net input.

    Returns {name: {mean, variance, std, min, max, zero_fraction, stage, shape}} in layer
    order (``conv1``, ``pool1``, ``conv2``, ``pool2``, then ``conv1/net_input`` ...).
    ``first_batch``, a dict, receives the first batch's activations (for histograms).
    """
    probe = probe or ActivationProbe(model, net_inputs)
    if probe.extractor is None:
        return {}
    stats, shapes = {}, probe.shapes()
    for i, batch in enumerate(batches(images, batch_size)):
        if i == 0 and first_batch is not None:
            first_batch.update(probe(batch))
        for name, moments in probe.moments(batch).items():
            stats.setdefault(name, RunningStats()).merge(*moments)
    stages = {name: stage for name, _, stage in probe.layers}
    result = {}
    for name, running in stats.items():
        stage = stages.get(name, "net input conv(x) + b")
        result[name] = {**running.result(), "stage": stage, "shape": shapes[name]}
    return result


def stats_line(name, stats):
    """``conv1: mean 0.0904 variance 0.0163 std 0.1277 min 0 max 1.52 zeros 41.3% (after ReLU)``."""
    if stats.get("mean") is None:
        return f"{name}: no values"
    return (
        f"{name}: mean {stats['mean']:.4f} variance {stats['variance']:.4f} std {stats['std']:.4f} "
        f"min {stats['min']:.4g} max {stats['max']:.4g} zeros {100 * stats['zero_fraction']:.1f}%"
        + (f" ({stats['stage']})" if stats.get("stage") else "")
    )


def first_conv_kernel(model):
    """(layer name, kernel as NumPy) of the first Conv2D layer, or None."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer.name, layer.kernel.numpy()
    return None


# --------------------------------------------------------------------------- recurrent layers


def recurrent_kernel(layer):
    """(recurrent kernel (units, gates * units), gate names) of an RNN/LSTM/GRU layer."""
    kernel = layer.cell.recurrent_kernel.numpy()
    return kernel, GATES.get(type(layer).__name__, ["hidden"])


class HiddenStateProbe:
    """The hidden state of every recurrent layer at every step: (images, steps, units) per layer.

    The last recurrent layer returns only its last step, so each layer is re-run by a twin
    built with ``return_sequences=True`` on the layer's own input, with the layer's weights.
    """

    def __init__(self, model):
        self.layers = models.recurrent_layers(model)
        self.inputs = keras.Model(model.input, [layer.input for layer in self.layers]) if self.layers else None
        self.twins = []
        for layer in self.layers:
            config = {**layer.get_config(), "return_sequences": True, "return_state": False}
            if "use_cudnn" in config:
                config["use_cudnn"] = False  # plain kernel: runs anywhere, same numbers
            twin = type(layer).from_config(config)
            twin.build(tuple(layer.input.shape))
            self.twins.append(twin)

    def __call__(self, images):
        inputs = self.inputs(images, training=False)
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        result = {}
        for layer, twin, x in zip(self.layers, self.twins, inputs):
            twin.set_weights(layer.get_weights())
            result[layer.name] = np.asarray(twin(x, training=False))
        return result


def hidden_state_statistics(model, images, batch_size=256, probe=None, first_batch=None):
    """Per recurrent layer: statistics of the hidden state overall and at each step.

    {layer: {overall: {mean, variance, ...}, steps: n, mean/std/min/max/mean_abs/
    saturated_fraction: [per step], unit_means: [[per unit] per step]}}.
    """
    probe = probe or HiddenStateProbe(model)
    if not probe.layers:
        return {}
    overall, per_step, abs_sum, saturated, unit_sum, count = {}, {}, {}, {}, {}, 0
    for i, batch in enumerate(batches(images, batch_size)):
        states = probe(batch)
        if i == 0 and first_batch is not None:
            first_batch.update(states)
        count += len(batch)
        for name, h in states.items():
            h = h.astype(np.float64)
            overall.setdefault(name, RunningStats()).update(h)
            steps = per_step.setdefault(name, [RunningStats() for _ in range(h.shape[1])])
            for t, running in enumerate(steps):
                running.update(h[:, t])
            abs_sum[name] = abs_sum.get(name, 0) + np.abs(h).sum(axis=(0, 2))
            saturated[name] = saturated.get(name, 0) + (np.abs(h) > 0.9).sum(axis=(0, 2))
            unit_sum[name] = unit_sum.get(name, 0) + h.sum(axis=0)
    result = {}
    for name, steps in per_step.items():
        values = [s.result() for s in steps]
        units = unit_sum[name].shape[1]
        result[name] = {
            "overall": overall[name].result(),
            "steps": len(steps),
            "units": units,
            **{key: [v[key] for v in values] for key in ("mean", "std", "min", "max")},
            "mean_abs": (abs_sum[name] / (count * units)).tolist(),
            "saturated_fraction": (saturated[name] / (count * units)).tolist(),
            "unit_means": (unit_sum[name] / count).tolist(),
        }
    return result


# --------------------------------------------------------------------------- TensorBoard


HISTOGRAM_VALUES = 20_000


def histogram_sample(values, limit=HISTOGRAM_VALUES):
    """At most ``limit`` finite values, evenly strided, for ``tf.summary.histogram``.

    TensorFlow's histogram op builds a (values x buckets) matrix: for fc1's 3.2M weights that
    is ~900 MB of memory, kept by the allocator. A strided sample draws the same shape.
    """
    values = np.asarray(values, dtype=np.float32).ravel()
    values = values[np.isfinite(values)]
    step = -(-values.size // limit)
    return values[::step] if step > 1 else values


def write_summary_scalars(tag, count, mean, stddev, low, high, step):
    """The starter's ``variable_summaries`` scalars: mean, stddev, max, min (nothing when no value is finite)."""
    if count:
        tf.summary.scalar(f"{tag}/mean", mean, step=step)
        tf.summary.scalar(f"{tag}/stddev", stddev, step=step)
        tf.summary.scalar(f"{tag}/max", high, step=step)
        tf.summary.scalar(f"{tag}/min", low, step=step)


def finite_summary(values):
    """[count, mean, stddev, min, max] of the finite values of a tensor, in float64 (TensorFlow)."""
    x = tf.reshape(tf.cast(values, tf.float64), [-1])
    finite = tf.math.is_finite(x)
    count = tf.reduce_sum(tf.cast(finite, tf.float64))
    safe = tf.maximum(count, 1.0)
    mean = tf.reduce_sum(tf.where(finite, x, 0.0)) / safe
    variance = tf.reduce_sum(tf.where(finite, tf.square(x - mean), 0.0)) / safe
    return tf.stack([count, mean, tf.sqrt(variance), tf.reduce_min(tf.where(finite, x, np.inf)),
                     tf.reduce_max(tf.where(finite, x, -np.inf))])


class WeightSummaries:
    """``variable_summaries`` of every weight of a model, the scalars reduced by TensorFlow where the
    weights are (fc1's 3.2 M weights moved to NumPy and reduced there every epoch cost more than the
    statistics of the activations); histograms, when asked, from a strided sample of the values.

    Eager on purpose: tracing these few reductions into a ``tf.function`` cost 0.45 s at the first
    epoch, more than ten epochs of eager calls (about 0.02 s each for LeNet5)."""

    def __init__(self, model):
        self.tagged = [(f"weights/{layer.name}/{v.name}", v) for layer in model.layers for v in layer.weights]

    def write(self, step, histograms):
        for tag, variable in self.tagged:
            summary = finite_summary(variable)
            write_summary_scalars(tag, *np.asarray(summary).tolist(), step)
            if histograms:
                tf.summary.histogram(tag, histogram_sample(variable.numpy()), step=step)


def _upscaled(image, factor):
    return np.kron(image, np.ones((factor, factor, 1))) if factor > 1 else image


# --------------------------------------------------------------------------- the callback


class Visualization(keras.callbacks.Callback):
    """Filter figures, activation statistics and TensorBoard summaries of a training run.

    Args:
        out_dir: the run directory; figures and JSON are written there.
        test_images: the test images (uint8 (N, H, W, C) as loaded, or floats in [0, 1]).
        every: write a filter grid every this many epochs (and always after the last one).
        histogram_freq: TensorBoard histograms every this many epochs and after the last one
            (0: scalars only).
        shared_scale: draw filters on one symmetric scale (grey = 0) instead of each on its own.
        max_images: at most this many test images, spread over the set, for the final statistics.
        epoch_images: at most this many of those for the statistics after each epoch: a fixed
            sample, so the per-epoch cost stays the same whatever the size of the test set.
        batch_size: images per forward pass.
        log_dir: TensorBoard folder (default ``out_dir/tensorboard/visualization``).
        verbose: print the statistics, one line per layer, at the end of training.
    """

    def __init__(self, out_dir, test_images, every=1, histogram_freq=5, shared_scale=False,
                 max_images=2000, epoch_images=256, batch_size=256, log_dir=None, verbose=True):
        super().__init__()
        self._settings = dict(out_dir=out_dir, test_images=test_images, every=every,
                              histogram_freq=histogram_freq, shared_scale=shared_scale, max_images=max_images,
                              epoch_images=epoch_images, batch_size=batch_size, log_dir=log_dir, verbose=verbose)
        self.out_dir = Path(out_dir)
        self.images = np.asarray(test_images)[spread_indices(len(test_images), max_images)]
        self.epoch_sample = self.images[spread_indices(len(self.images), epoch_images)]
        self.every, self.histogram_freq, self.shared_scale = max(1, int(every)), int(histogram_freq), shared_scale
        self.batch_size, self.verbose = batch_size, verbose
        self.log_dir = Path(log_dir) if log_dir else self.out_dir / "tensorboard" / "visualization"
        self.writer = None
        self.last_epoch = None
        self.history = []  # [{epoch, layer: {mean, variance}}] of the activation statistics
        self.stats = self.hidden_stats = None  # the latest statistics (after training: of the final model)

    def __deepcopy__(self, memo):
        """A fresh, unstarted callback with the same settings (no writer, model or probes)."""
        return type(self)(**copy.deepcopy(self._settings, memo))

    # ---------------------------------------------------------------- start

    def on_train_begin(self, logs=None):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writer = tf.summary.create_file_writer(str(self.log_dir))
        self.conv = first_conv_kernel(self.model)
        self.act_probe = ActivationProbe(self.model)
        self.weight_summaries = WeightSummaries(self.model)
        self.hidden_probe = HiddenStateProbe(self.model) if models.recurrent_layers(self.model) else None
        self.filters_dir = self.out_dir / "filters"
        self.snapshots = self._load_snapshots()
        self.history = self._load_history()
        if self.conv is not None and not self.snapshots:
            self._save_filters(0)

    # ---------------------------------------------------------------- per epoch

    def on_epoch_end(self, epoch, logs=None):
        step = self.last_epoch = epoch + 1
        last = step >= self.params.get("epochs", step)
        if self.conv is not None and (step % self.every == 0 or last):
            self._save_filters(step)
        histograms = self.histogram_freq > 0 and (step % self.histogram_freq == 0 or last)
        with self.writer.as_default():
            self.weight_summaries.write(step, histograms)
            self._activation_summaries(step, histograms)
        self.writer.flush()

    def _activation_summaries(self, step, histograms):
        sample, hidden_sample = {}, {}
        if self.act_probe.extractor is not None:
            stats = activation_statistics(self.model, self.epoch_sample, self.batch_size, probe=self.act_probe,
                                          first_batch=sample if histograms else None)
            entry = {"epoch": step, **{k: {"mean": v["mean"], "variance": v["variance"]} for k, v in stats.items()}}
            self.history = [h for h in self.history if h["epoch"] < step] + [entry]
            write_activation_stats(self.out_dir / "activation_stats.json", stats, len(self.epoch_sample),
                                   epoch=step, history=self.history)
            for name, s in stats.items():
                for key in STATS:
                    if s[key] is not None and math.isfinite(s[key]):
                        tf.summary.scalar(f"activations/{name}/{key}", s[key], step=step)
        if self.hidden_probe is not None:
            stats = hidden_state_statistics(self.model, self.epoch_sample, self.batch_size, probe=self.hidden_probe,
                                            first_batch=hidden_sample)
            for name, s in stats.items():
                for key in ("mean", "std"):
                    for t in (0, s["steps"] // 2, s["steps"] - 1):
                        if s[key][t] is not None and math.isfinite(s[key][t]):
                            tf.summary.scalar(f"hidden_state/{name}/{key}_step{t + 1:02d}", s[key][t], step=step)
                for key in ("mean", "variance", "std"):
                    value = s["overall"][key]
                    if value is not None and math.isfinite(value):
                        tf.summary.scalar(f"hidden_state/{name}/{key}", value, step=step)
            for layer in self.hidden_probe.layers:
                kernel, _ = recurrent_kernel(layer)
                tf.summary.image(f"recurrent_kernel/{layer.name}", figures.heatmap_rgb(kernel)[None], step=step)
        if histograms:  # of the first batch of test images
            for prefix, arrays in (("activations", sample), ("hidden_state", hidden_sample)):
                for name, values in arrays.items():
                    tf.summary.histogram(f"{prefix}/{name}", histogram_sample(values), step=step)

    # ---------------------------------------------------------------- end

    def on_train_end(self, logs=None):
        """Final figures; the statistics are those of the last epoch end (the weights have not changed since)."""
        epoch = self.last_epoch
        if self.conv is not None:
            if epoch is not None and all(e != epoch for e, _ in self.snapshots):
                self._save_filters(epoch)  # training stopped before the planned last epoch
            self._plot_snapshots()
            name, kernel = first_conv_kernel(self.model)
            figures.plot_filters(kernel, self.out_dir / "filters.png", shared_scale=self.shared_scale,
                             title=f"{name} filters after training")
            figures.plot_filter_evolution(self.snapshots, self.out_dir / "filters_evolution.png", self.shared_scale)
            figures.plot_filter_change(self.snapshots, kernel, name, self.out_dir / "filters_change.png", self.shared_scale)
        if self.act_probe.extractor is not None:  # the final statistics, on every chosen test image
            stats = self.stats = activation_statistics(self.model, self.images, self.batch_size, probe=self.act_probe)
            write_activation_stats(self.out_dir / "activation_stats.json", stats, len(self.images),
                                   epoch=epoch, history=self.history)
            if self.verbose:
                print(f"activation statistics on {len(self.images)} test images:", flush=True)
                for name, s in stats.items():
                    print(stats_line(name, s), flush=True)
        if self.hidden_probe is not None:
            stats = self.hidden_stats = hidden_state_statistics(self.model, self.images, self.batch_size,
                                                                probe=self.hidden_probe)
            write_hidden_state_outputs(self.out_dir, self.model, stats, len(self.images))
            if self.verbose:
                print(f"hidden-state statistics on {len(self.images)} test images:", flush=True)
                for name, s in stats.items():
                    print(stats_line(name, s["overall"]), flush=True)
        if self.writer is not None:
            self.writer.close()

    # ---------------------------------------------------------------- filters

    def _save_filters(self, step):
        name, kernel = first_conv_kernel(self.model)
        self.snapshots = [s for s in self.snapshots if s[0] != step] + [(step, kernel)]
        self.snapshots.sort(key=lambda s: s[0])
        self.filters_dir.mkdir(parents=True, exist_ok=True)
        _save_npz(self.filters_dir / "history.npz", {f"epoch_{e:03d}": k for e, k in self.snapshots})
        with self.writer.as_default():
            grid = figures.tile_grid(figures.filter_tiles(kernel, self.shared_scale), background=1.0)
            tf.summary.image(f"filters/{name}", _upscaled(grid, 4)[None], step=step)

    def _plot_snapshots(self):
        """filters_epoch_NNN.png of every snapshot without one, drawn once at the end of training (a
        PNG per epoch during training cost more than the statistics)."""
        name = self.conv[0]
        for step, kernel in self.snapshots:
            path = self.filters_dir / f"filters_epoch_{step:03d}.png"
            if not path.is_file():
                figures.plot_filters(kernel, path, shared_scale=self.shared_scale, title=f"{name} filters, epoch {step}")

    def _load_history(self):
        """The per-epoch statistics of earlier epochs (a resumed run), from activation_stats.json."""
        path = self.out_dir / "activation_stats.json"
        if not path.is_file():
            return []
        try:
            return list(runs.read_json(path).get("history", []))
        except UsageError:  # unreadable: only the earlier epochs' summary is lost
            return []

    def _load_snapshots(self):
        path = self.out_dir / "filters" / "history.npz"
        if not path.is_file():
            return []
        with np.load(path) as saved:
            return sorted((int(key.split("_")[1]), saved[key]) for key in saved.files)


# --------------------------------------------------------------------------- files


def _finite_or_none(value):
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_activation_stats(path, stats, n_images, epoch=None, history=None):
    """activation_stats.json: the final statistics per layer, and the means/variances per epoch."""
    runs.write_json(path, _finite_or_none({
        "split": "test",
        "n_images": int(n_images),
        "epoch": epoch,
        "statistics": list(STATS),
        "layers": stats,
        "history": history or [],
    }))


def write_hidden_state_outputs(out_dir, model, stats, n_images):
    """hidden_state_stats.json, hidden_states.png and recurrent_kernel.png of an RNN."""
    out_dir = Path(out_dir)
    runs.write_json(out_dir / "hidden_state_stats.json",
                    _finite_or_none({"split": "test", "n_images": int(n_images), "layers": stats}))
    figures.plot_hidden_states(stats, out_dir / "hidden_states.png")
    figures.plot_recurrent_kernels({layer.name: recurrent_kernel(layer) for layer in models.recurrent_layers(model)},
                               out_dir / "recurrent_kernel.png")


def _save_npz(path, arrays):
    """np.savez through a temp file + rename (a kill mid-write leaves the old file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def for_run(config, run_dir, test_images):
    """The visualisation callbacks of a training run: [Visualization] unless ``--no-visualize``."""
    return [Visualization(run_dir, test_images, verbose=not config.quiet)] if config.visualize else []
