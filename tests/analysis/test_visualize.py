"""Visualisation: statistics, filter grids, the deconvnet, occlusion, the callback and the CLI."""

import copy
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import copy_run

from tf_assign2 import figures as viz
from tf_assign2 import models
from tf_assign2.analysis import training_visuals as callbacks
from tf_assign2.analysis import zeiler_fergus as vis


@pytest.fixture
def tiny_run(cifar_run):
    """LeNet5 trained 2 epochs on 10 CIFAR images per class through the CLI, callback included
    (``cifar_run``, shared: read only); its run folder, the trained model and the arrays."""
    assert json.loads((cifar_run.run_dir / "summary.json").read_text())["status"] == "completed"
    return cifar_run.run_dir, cifar_run.model, cifar_run.arrays


def _model(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return models.lenet5(**kwargs)


def _images(n=37, shape=(28, 28, 1), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


# --------------------------------------------------------------------------- statistics


def test_running_stats_equal_numpy_over_uneven_batches():
    values = np.random.default_rng(1).normal(0.3, 2.0, 10_001)
    values[::7] = 0.0
    running = callbacks.RunningStats()
    for chunk in np.split(values, [1, 50, 51, 4000, 9999]):
        running.update(chunk)
    s = running.result()
    assert s["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert s["variance"] == pytest.approx(values.var(), rel=1e-12)
    assert s["std"] == pytest.approx(values.std(), rel=1e-12)
    assert (s["min"], s["max"]) == (values.min(), values.max())
    assert s["zero_fraction"] == np.mean(values == 0)


def test_activation_statistics_equal_numpy_on_the_same_activations():
    model = _model(conv_filters=(8, 16), fc_units=32)
    images = _images()
    stats = callbacks.activation_statistics(model, images, batch_size=10)  # 4 uneven batches
    assert list(stats) == ["conv1", "pool1", "conv2", "pool2", "conv1/net_input", "conv2/net_input"]

    x = images.astype(np.float32) / 255.0
    names = ["conv1", "pool1", "conv2", "pool2"]
    outputs = keras.Model(model.input, [model.get_layer(n).output for n in names]).predict(x, verbose=0)
    expected = dict(zip(names, outputs))
    for name in ("conv1", "conv2"):  # the net input: the same conv with no activation
        layer = model.get_layer(name)
        linear = keras.layers.Conv2D.from_config({**layer.get_config(), "activation": "linear"})
        linear.build(layer.input.shape)
        linear.set_weights(layer.get_weights())
        inputs = keras.Model(model.input, layer.input).predict(x, verbose=0)
        expected[f"{name}/net_input"] = np.asarray(linear(inputs))
    for name, acts in expected.items():
        acts = np.asarray(acts, dtype=np.float64)
        s = stats[name]
        assert s["mean"] == pytest.approx(acts.mean(), rel=1e-5, abs=1e-7), name
        assert s["variance"] == pytest.approx(acts.var(), rel=1e-5, abs=1e-7), name
        assert s["std"] == pytest.approx(acts.std(), rel=1e-5, abs=1e-7), name
        assert s["min"] == pytest.approx(acts.min(), abs=1e-6) and s["max"] == pytest.approx(acts.max(), abs=1e-6)
        assert s["zero_fraction"] == pytest.approx(np.mean(acts == 0), abs=1e-4), name
        assert s["shape"] == list(acts.shape[1:])
    assert stats["conv1"]["stage"] == "after ReLU" and stats["pool1"]["stage"] == "after pooling"
    assert stats["conv1"]["min"] == 0 and stats["conv1/net_input"]["min"] < 0
    line = callbacks.stats_line("conv1", stats["conv1"])
    assert line.startswith(f"conv1: mean {stats['conv1']['mean']:.4f} variance {stats['conv1']['variance']:.4f}")


def test_hidden_state_statistics_follow_the_real_layer():
    keras.utils.set_random_seed(0)
    model = models.rnn_classifier("lstm", units=8, num_layers=2)
    images = _images(12)
    stats = callbacks.hidden_state_statistics(model, images, batch_size=5)
    assert list(stats) == ["lstm1", "lstm2"] and stats["lstm2"]["steps"] == 28
    x = images.astype(np.float32) / 255.0
    # lstm1 returns every step: the statistics are of exactly those values.
    seq = keras.Model(model.input, model.get_layer("lstm1").output).predict(x, verbose=0).astype(np.float64)
    assert stats["lstm1"]["overall"]["mean"] == pytest.approx(seq.mean(), rel=1e-5)
    assert stats["lstm1"]["overall"]["variance"] == pytest.approx(seq.var(), rel=1e-5)
    np.testing.assert_allclose(stats["lstm1"]["mean"], seq.mean(axis=(0, 2)), rtol=1e-5, atol=1e-7)
    # lstm2 returns only its last step: the re-run twin's last step must equal it.
    probe = callbacks.HiddenStateProbe(model)
    last = keras.Model(model.input, model.get_layer("lstm2").output).predict(x, verbose=0)
    np.testing.assert_allclose(probe(x)["lstm2"][:, -1], last, atol=1e-6)
    kernel, gates = callbacks.recurrent_kernel(model.get_layer("lstm1"))
    assert kernel.shape == (8, 32) and gates == ["input", "forget", "cell", "output"]


# --------------------------------------------------------------------------- filter figures


def test_filter_grid_has_one_tile_per_filter(tmp_path):
    kernel = np.random.default_rng(0).normal(size=(5, 5, 1, 32))
    tiles = viz.filter_tiles(kernel)
    assert tiles.shape == (32, 5, 5, 1)
    for i in range(32):  # per-filter normalisation: each tile spans 0..1, same pattern as the filter
        assert tiles[i].min() == 0 and tiles[i].max() == 1
        np.testing.assert_allclose(np.corrcoef(tiles[i].ravel(), kernel[..., 0, i].ravel())[0, 1], 1)
    rows, cols = viz.grid_shape(32)
    assert (rows, cols) == (4, 8)
    grid = viz.tile_grid(tiles, pad=1, background=-1)
    assert grid.shape == (rows * 6 + 1, cols * 6 + 1, 1)
    for i in range(32):
        r, c = divmod(i, cols)
        np.testing.assert_array_equal(grid[1 + 6 * r : 6 + 6 * r, 1 + 6 * c : 6 + 6 * c], tiles[i])
    assert (grid == -1).sum() == grid.size - 32 * 25  # nothing but the 32 tiles and the separators
    figure = viz.plot_filters(kernel, tmp_path / "filters.png")  # the figure, also written as a PNG
    assert figure.axes[0].images[0].get_array().shape[:2] == (rows * 6 + 1, cols * 6 + 1)  # 4 x 8 tiles
    assert (tmp_path / "filters.png").stat().st_size > 0

    shared = viz.filter_tiles(kernel, shared_scale=True)
    np.testing.assert_allclose(shared - 0.5, kernel.transpose(3, 0, 1, 2) / (2 * np.abs(kernel).max()))
    rgb = viz.filter_tiles(np.ones((5, 5, 3, 7)))
    assert rgb.shape == (7, 5, 5, 3) and np.all(rgb == 0.5)  # a constant filter is mid-grey
    assert viz.grid_shape(7) == (3, 3) and viz.filter_tiles(np.full((3, 3, 1, 2), np.nan)).shape == (2, 3, 3, 1)


# --------------------------------------------------------------------------- deconvnet


def _transposed_conv_numpy(activation, kernel):
    """The adjoint of a stride-1 'same' convolution, written out: every output unit spreads its filter back."""
    n, h, w, _ = activation.shape
    kh, kw, cin, _ = kernel.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    out = np.zeros((n, h + kh - 1, w + kw - 1, cin))
    for di in range(kh):
        for dj in range(kw):
            out[:, di : di + h, dj : dj + w] += activation @ kernel[di, dj].T
    return out[:, ph : ph + h, pw : pw + w]


def test_deconvnet_through_conv1_is_the_transposed_convolution():
    model = _model(conv_filters=(6, 4), fc_units=8)
    images = callbacks.as_float_images(_images(3))
    chain = vis.conv_chain(model, "conv1")
    inputs, activation = vis.forward(chain, images)
    projection = vis.project_down(chain, inputs, activation)
    kernel = model.get_layer("conv1").kernel.numpy().astype(np.float64)
    expected = _transposed_conv_numpy(np.asarray(activation, dtype=np.float64), kernel)
    assert projection.shape == images.shape
    np.testing.assert_allclose(projection, expected, atol=1e-5)


def test_unpooling_uses_the_switches():
    pool = keras.layers.MaxPooling2D(2)
    x = np.random.default_rng(0).normal(size=(2, 4, 6, 3)).astype(np.float32)
    signal = np.random.default_rng(1).normal(size=(2, 2, 3, 3)).astype(np.float32)
    out = np.asarray(vis.unpool(signal, x, pool))
    expected = np.zeros_like(x)
    for b in range(2):
        for i in range(2):
            for j in range(3):
                for c in range(3):
                    block = x[b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c]
                    r, k = np.unravel_index(block.argmax(), block.shape)
                    expected[b, 2 * i + r, 2 * j + k, c] = signal[b, i, j, c]
    np.testing.assert_array_equal(out, expected)


def test_conv2_projection_stays_inside_its_receptive_field():
    model = _model(conv_filters=(4, 5), fc_units=8)
    chain = vis.conv_chain(model, "conv2")
    fields = vis.receptive_field(chain, (28, 28))
    assert fields == [(14, 2, -6), (14, 2, -6)]
    images = callbacks.as_float_images(_images(2))
    values, indices, positions = vis.strongest_activations(chain, images, k=2)
    assert values.shape == indices.shape == (5, 2) and positions.shape == (5, 2, 2)
    assert np.all(values[:, 0] >= values[:, 1])
    projections = vis.deconv_projections(chain, images, [0, 1], indices[:2], positions[:2])
    assert projections.shape == (2, 2, 28, 28, 1)
    for f in range(2):
        for k in range(2):
            (r, c), proj = positions[f, k], projections[f, k, ..., 0]
            top, left = -6 + 2 * r, -6 + 2 * c
            outside = proj.copy()
            outside[max(top, 0) : top + 14, max(left, 0) : left + 14] = 0
            assert np.all(outside == 0)
            if values[f, k] > 0:
                assert np.abs(proj).max() > 0
    patch = vis.patch(images[0], (0, 0), fields)
    assert patch.shape == (14, 14, 1) and np.all(patch[:6] == 0) and np.all(patch[6:, 6:] == images[0, :8, :8])
    with pytest.raises(Exception, match="no such layer"):
        vis.conv_chain(model, "conv9")
    with pytest.raises(Exception, match="only conv and max-pool"):
        vis.conv_chain(model, "fc1")


# --------------------------------------------------------------------------- occlusion


def test_occluding_a_constant_image_changes_nothing():
    model = _model(fc_units=16)
    predict = vis.probability_function(model)
    image = np.full((28, 28, 1), 0.5, np.float32)
    prob_map, class_map = vis.occlusion_maps(predict, image, label=3, size=7, stride=2, value=0.5)
    base = predict(image[None])[0]
    assert prob_map.shape == class_map.shape == (14, 14)
    np.testing.assert_allclose(prob_map, base[3], rtol=1e-6)
    assert np.all(class_map == base.argmax())


def test_occlusion_map_marks_where_the_evidence_is():
    def predict(batch):  # "class 1" is the brightness of the top-left 4x4 corner
        p1 = batch[:, :4, :4, 0].mean(axis=(1, 2))
        return np.stack([1 - p1, p1], axis=1)

    image = np.zeros((12, 12, 1), np.float32)
    image[:4, :4] = 1.0
    prob_map, class_map = vis.occlusion_maps(predict, image, label=1, size=3, stride=1, value=0.0)
    assert prob_map.shape == (12, 12)
    assert prob_map[1, 1] == pytest.approx(1 - 9 / 16) and prob_map[8, 8] == 1.0
    assert class_map[8, 8] == 1


# --------------------------------------------------------------------------- the callback


def test_callback_survives_deepcopy_and_trains(tmp_path):
    cb = callbacks.Visualization(tmp_path / "a", _images(20), every=2, max_images=10, verbose=False)
    twin = copy.deepcopy(cb)
    assert twin is not cb and twin.writer is None and twin.out_dir == tmp_path / "a"
    assert twin.images.shape == (10, 28, 28, 1) and twin.every == 2

    model = _model(conv_filters=(4, 8), fc_units=8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = callbacks.as_float_images(_images(20))
    y = np.arange(20) % 10
    model.fit(x, y, epochs=3, batch_size=10, verbose=0, callbacks=[twin])
    assert {p.name for p in (tmp_path / "a" / "filters").iterdir()} == {
        "filters_epoch_000.png", "filters_epoch_002.png", "filters_epoch_003.png", "history.npz"}
    for name in ("filters.png", "filters_evolution.png", "filters_change.png"):
        assert (tmp_path / "a" / name).is_file(), name
    stats = json.loads((tmp_path / "a" / "activation_stats.json").read_text())
    assert stats["n_images"] == 10 and stats["epoch"] == 3 and [h["epoch"] for h in stats["history"]] == [1, 2, 3]

    again = copy.deepcopy(twin)  # after training too: a fresh callback, no writer or model carried over
    assert again.writer is None and again.history == [] and getattr(again, "model", None) is None


def test_tiny_run_writes_the_callback_outputs(tiny_run):
    run_dir, model, arrays = tiny_run
    for name in ("filters.png", "filters_evolution.png", "filters_change.png", "activation_stats.json",
                 "filters/filters_epoch_000.png",
                 "filters/filters_epoch_001.png", "filters/filters_epoch_002.png"):
        assert (run_dir / name).is_file(), name
    saved = json.loads((run_dir / "activation_stats.json").read_text())
    expected = callbacks.activation_statistics(model, arrays.test_x)
    for name in ("conv1", "pool1", "conv2", "pool2", "conv1/net_input", "conv2/net_input"):
        assert saved["layers"][name]["mean"] == pytest.approx(expected[name]["mean"], rel=1e-6)
        assert saved["layers"][name]["variance"] == pytest.approx(expected[name]["variance"], rel=1e-6)
    events = list((run_dir / "tensorboard" / "visualization").glob("events.out.tfevents.*"))
    assert events
    kinds = set()
    for event in tf.compat.v1.train.summary_iterator(str(events[0])):
        for value in event.summary.value:
            kinds.add((value.tag.split("/")[0], value.metadata.plugin_data.plugin_name))
    assert {("weights", "histograms"), ("weights", "scalars"), ("activations", "histograms"),
            ("activations", "scalars"), ("filters", "images")} <= kinds


def test_no_visualize_writes_none_of_it(small_config, tmp_path, cli):
    images = _images(4)
    assert callbacks.for_run(small_config(visualize=False), tmp_path, images) == []
    (callback,) = callbacks.for_run(small_config(), tmp_path, images)
    assert isinstance(callback, callbacks.Visualization) and callback.out_dir == tmp_path

    done = cli("tf_assign2.cifar", "--ntrain", "10", "--ntest", "2", "--epochs", "1", "--no-visualize", "--no-export",
               "--runs-dir", tmp_path / "runs")
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not (run_dir / "filters.png").exists() and not (run_dir / "activation_stats.json").exists()
    assert not (run_dir / "tensorboard" / "visualization").exists()


# --------------------------------------------------------------------------- the command line


def test_visualize_cli_writes_every_file(tiny_run, tmp_path, cli):
    run_dir = copy_run(tiny_run[0], tmp_path / "runs")  # without --out it writes into the run
    done = cli("tf_assign2.visualize", run_dir, "--out", tmp_path / "v", "--maps", "4",
               "--stride", "4", "--images", "0", "7")
    assert done.returncode == 0, done.stderr
    assert "conv1: mean" in done.stdout
    written = {p.name for p in (tmp_path / "v").iterdir()}
    assert written == {"activation_stats.json", "filters.png", "filters_evolution.png", "filters_change.png",
                       "top9_conv2.png",
                       "deconv_conv2.png", "occlusion.png", "visualize.json"}
    info = json.loads((tmp_path / "v" / "visualize.json").read_text())
    assert info["maps"] and len(info["maps"]) == 4 and [o["image"] for o in info["occlusion"]] == [0, 7]
    assert info["receptive_field"] == 14

    default = cli("tf_assign2.visualize", run_dir, "--layer", "conv1", "--stride", "7")
    assert default.returncode == 0, default.stderr
    (out,) = run_dir.glob("visualize-*")
    assert (out / "top9_conv1.png").is_file() and (out / "deconv_conv1.png").is_file()


@pytest.mark.parametrize("args, message", [
    (("--layer", "fc1"), "only conv and max-pool layers"),
    (("--layer", "nope"), "no such layer"),
    (("--images", "5000"), "the test split has 50 images"),
    (("--maps", "0"), "expected an integer >= 1"),
])
def test_visualize_bad_input(tiny_run, tmp_path, cli, args, message):
    run_dir, _, _ = tiny_run
    done = cli("tf_assign2.visualize", run_dir, "--out", tmp_path / "v", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "v").exists()


def test_visualize_needs_a_finished_run(tmp_path, cli):
    done = cli("tf_assign2.visualize", tmp_path)
    assert done.returncode == 2 and "not a run directory" in done.stderr
    (tmp_path / "config.json").write_text("{}")
    done = cli("tf_assign2.visualize", tmp_path)
    assert done.returncode == 2 and "no model.keras" in done.stderr


def test_callback_continues_its_history_on_resume(tmp_path):
    """A resumed run (fit from initial_epoch) keeps the earlier filter snapshots and statistics."""
    model = _model(conv_filters=(4, 8), fc_units=8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = callbacks.as_float_images(_images(20)), np.arange(20) % 10
    make = lambda: callbacks.Visualization(tmp_path, _images(10), verbose=False)  # noqa: E731
    model.fit(x, y, epochs=2, batch_size=10, verbose=0, callbacks=[make()])
    first = json.loads((tmp_path / "activation_stats.json").read_text())
    model.fit(x, y, initial_epoch=2, epochs=4, batch_size=10, verbose=0, callbacks=[make()])
    stats = json.loads((tmp_path / "activation_stats.json").read_text())
    assert [h["epoch"] for h in stats["history"]] == [1, 2, 3, 4] and stats["epoch"] == 4
    assert stats["history"][:2] == first["history"]
    with np.load(tmp_path / "filters" / "history.npz") as saved:
        assert sorted(saved.files) == ["epoch_000", "epoch_001", "epoch_002", "epoch_003", "epoch_004"]


def test_callback_saves_the_last_filters_when_training_stops_early(tmp_path):
    model = _model(conv_filters=(4, 8), fc_units=8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = callbacks.as_float_images(_images(20)), np.arange(20) % 10
    stop = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: setattr(model, "stop_training", e == 1))
    cb = callbacks.Visualization(tmp_path, _images(10), every=4, verbose=False)
    model.fit(x, y, epochs=5, batch_size=10, verbose=0, callbacks=[stop, cb])
    with np.load(tmp_path / "filters" / "history.npz") as saved:
        assert sorted(saved.files) == ["epoch_000", "epoch_002"]
    np.testing.assert_array_equal(np.load(tmp_path / "filters" / "history.npz")["epoch_002"],
                                  model.get_layer("conv1").kernel.numpy())
    assert json.loads((tmp_path / "activation_stats.json").read_text())["epoch"] == 2


def test_compiled_summaries_equal_numpy_over_the_finite_values():
    """The weights' scalars and the activation moments are reduced in TensorFlow; they equal NumPy's."""
    values = np.random.default_rng(2).normal(0.1, 3.0, (300, 41)).astype(np.float32)
    values[::11, 3] = np.nan
    values[5, ::7] = np.inf
    finite = values[np.isfinite(values)].astype(np.float64)
    count, mean, std, low, high = np.asarray(callbacks.finite_summary(tf.constant(values)))
    assert count == finite.size and (low, high) == (finite.min(), finite.max())
    assert mean == pytest.approx(finite.mean(), rel=1e-12) and std == pytest.approx(finite.std(), rel=1e-12)

    bf16 = tf.cast(tf.constant(values[np.isfinite(values).all(axis=1)]), tf.bfloat16)
    exact = np.asarray(tf.cast(bf16, tf.float64))
    running = callbacks.RunningStats().merge(*np.asarray(callbacks.batch_moments(bf16)))
    expected = callbacks.RunningStats().update(exact).result()
    for key, value in running.result().items():  # float32 sums within each row: ~1e-7
        assert value == pytest.approx(expected[key], rel=1e-6), key
    assert running.result()["min"] == exact.min() and running.result()["max"] == exact.max()
