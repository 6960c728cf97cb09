"""Attribution: saliency, SmoothGrad, Integrated Gradients, Grad-CAM, occlusion, row attribution for the
RNNs, deletion/insertion scores, and ``python -m tf_assign2.visualize --methods``."""

import json

import keras
import numpy as np
import pytest
from conftest import DATA

from tf_assign2 import models
from tf_assign2.analysis import attribution as att
from tf_assign2.cli.visualize import main as visualize_main
from tf_assign2.errors import UsageError


def _linear_model(weights, shape=(8, 8, 1)):
    """logits = x . weights (no bias): every gradient method has a known answer on it."""
    inputs = keras.Input(shape=shape)
    flat = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(weights.shape[1], use_bias=False)
    model = keras.Model(inputs, dense(flat))
    dense.set_weights([weights.astype(np.float32)])
    return model


def _lenet(seed=0):
    keras.utils.set_random_seed(seed)
    return models.lenet5(conv_filters=(4, 8), fc_units=16)


def _images(n, shape=(28, 28, 1), seed=0):
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


# --------------------------------------------------------------------------- the methods


def test_every_method_is_exact_on_a_linear_model():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(64, 3))
    model = _linear_model(weights)
    x, targets = _images(5, (8, 8, 1)), np.array([0, 1, 2, 0, 1])
    w = weights[:, targets].T.reshape(5, 8, 8)  # d logit_target / d x

    np.testing.assert_allclose(att.saliency(model, x, targets), np.abs(w), rtol=1e-5)
    np.testing.assert_allclose(att.smoothgrad(model, x, targets, samples=3), np.abs(w), rtol=1e-5)  # noise moves nothing
    attr, record = att.integrated_gradients(model, x, targets, baseline=0.25, steps=4, tolerance=None)
    np.testing.assert_allclose(attr[..., 0], (x[..., 0] - 0.25) * w, rtol=1e-4, atol=1e-6)
    assert record["relative_error"].max() < 1e-5 and (record["steps"] == 4).all()
    np.testing.assert_allclose(record["difference"], ((x[..., 0] - 0.25) * w).sum(axis=(1, 2)), rtol=1e-4)


def test_integrated_gradients_refines_until_complete_and_reuses_points():
    model = _lenet()
    x, targets = _images(6), np.arange(6)
    coarse, c_record = att.integrated_gradients(model, x, targets, steps=2, tolerance=None)
    fine, f_record = att.integrated_gradients(model, x, targets, steps=2, tolerance=1e-3, max_steps=4096)
    assert (f_record["relative_error"] < 1e-3).all()
    assert f_record["steps"].max() > 2  # a ReLU network needs more than 2 intervals
    # Refining by halving equals the plain trapezoid rule on that many intervals.
    k = int(np.argmax(f_record["steps"]))
    plain, _ = att.integrated_gradients(model, x[k : k + 1], targets[k : k + 1], steps=int(f_record["steps"][k]),
                                        tolerance=None)
    np.testing.assert_allclose(fine[k], plain[0], rtol=1e-3, atol=1e-6)


def test_ig_completeness_under_1_percent_on_real_test_images(cifar_run):
    """The tiny CLI-trained LeNet5 (bfloat16 on CPUs that have it): completeness of the target logit
    holds to 1 % on its real test images once the model computes in float32."""
    model = att.float32_model(cifar_run.model)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    x = cifar_run.arrays.test_x[::5].astype(np.float32) / 255.0  # 10 test images, one per class
    targets = att.probabilities(model, x).argmax(axis=1)
    # An image whose target logit hardly differs from the black baseline's (0.002 for one of these on
    # an AVX2-only CPU) needs many intervals for a 1 % relative error: refine as far as it takes.
    _, record = att.integrated_gradients(model, x, targets, baseline=0.0, tolerance=0.01, max_steps=16384)
    summary = att.completeness_summary(record)
    assert summary["relative_error"]["max"] < 0.01, summary
    assert summary["relative_error"]["under_1_percent"] == 1.0
    np.testing.assert_allclose(record["sum"], record["difference"], rtol=0.01)


def test_grad_cam_is_non_negative_image_sized_and_follows_its_layer():
    model = _lenet()
    x, targets = _images(4), np.array([1, 2, 3, 4])
    for layer in ("conv2", "conv1"):
        cam = att.grad_cam(model, x, targets, layer)
        assert cam.shape == (4, 28, 28) and cam.dtype == np.float32
        assert (cam >= 0).all() and cam.max() > 0
    # conv1 is 28x28 already: its map is exactly ReLU(sum_k alpha_k A_k) with no resizing.
    import tensorflow as tf

    probe = keras.Model(model.inputs, [model.get_layer("conv1").output, model.outputs[0]])
    with tf.GradientTape() as tape:
        maps, logits = probe(tf.constant(x))
        score = tf.gather(logits, targets, batch_dims=1)
    alpha = tf.reduce_mean(tape.gradient(score, maps), axis=(1, 2), keepdims=True)
    expected = tf.nn.relu(tf.reduce_sum(alpha * maps, axis=-1)).numpy()
    np.testing.assert_allclose(att.grad_cam(model, x, targets, "conv1"), expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(UsageError, match="not a conv layer"):
        att.grad_cam(model, x, targets, "fc1")


def test_occlusion_is_the_drop_of_the_target_probability():
    weights = np.zeros((64, 2))
    weights[:32, 0] = 0.1  # class 0 reads the top half
    model = _linear_model(weights)
    x = np.ones((1, 8, 8, 1), np.float32)
    drop = att.occlusion(model, x, np.array([0]), size=1, value=0.0)
    p = 1 / (1 + np.exp(-3.2))
    assert drop.shape == (1, 8, 8)
    np.testing.assert_allclose(drop[0, :4], p - 1 / (1 + np.exp(-3.1)), rtol=1e-3)  # one top pixel hidden
    np.testing.assert_allclose(drop[0, 4:], 0, atol=1e-7)
    strided = att.occlusion(model, x, np.array([0]), size=2, stride=2, value=0.0)
    assert strided.shape == (1, 8, 8)


def test_recurrent_models_get_one_score_per_row():
    keras.utils.set_random_seed(0)
    model = models.rnn_classifier("lstm", units=8)
    x, targets = _images(3), np.array([0, 1, 2])
    assert models.recurrent_layers(model) and not models.recurrent_layers(_lenet())
    for method in ("saliency", "smoothgrad", "ig", "occlusion"):
        maps, _ = att.attribute(model, x, targets, method, stride=7)
        rows = att.row_scores(maps)
        assert maps.shape == (3, 28, 28) and rows.shape == (3, 28), method
        np.testing.assert_allclose(rows, np.abs(maps).sum(axis=2), rtol=1e-6)
    fractions, deletion, insertion = att.perturbation_curves(model, x, targets, rows, steps=28)
    assert fractions.shape == (29,) and deletion.shape == insertion.shape == (3, 29)
    np.testing.assert_allclose(deletion[:, 0], insertion[:, -1], rtol=1e-5)  # the whole image
    assert att.resolve_methods("all", model) == ["saliency", "smoothgrad", "ig", "occlusion"]
    with pytest.raises(UsageError, match="needs a conv layer"):
        att.resolve_methods("saliency,gradcam", model)


def test_resolve_methods():
    model = _lenet()
    assert att.resolve_methods("all", model) == ["saliency", "smoothgrad", "ig", "gradcam_conv2", "gradcam_conv1",
                                                 "occlusion"]
    assert att.resolve_methods("none", model) == []
    assert att.resolve_methods("gradcam,ig", model, ["conv1"]) == ["gradcam_conv1", "ig"]
    for text in ("lime", "", "saliency,,nope"):
        with pytest.raises(UsageError, match="choose from"):
            att.resolve_methods(text, model)
    with pytest.raises(UsageError, match="--gradcam-layers pool1"):
        att.resolve_methods("gradcam", model, ["pool1"])


def test_float32_model_computes_what_the_bfloat16_model_approximates():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = _lenet()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    twin = att.float32_model(model)
    assert twin is not model and {layer.dtype_policy.name for layer in twin.layers} == {"float32"}
    x = _images(8)
    np.testing.assert_allclose(np.asarray(twin(x)), np.asarray(model(x), np.float32), atol=0.05)
    assert att.float32_model(twin) is twin


# --------------------------------------------------------------------------- faithfulness


def _half_model():
    """P(class 0) = sigmoid(sum of the left half's pixels): the left half is what matters, and nothing else."""
    weights = np.zeros((64, 2))
    weights[np.arange(64) % 8 < 4, 0] = 1.0
    return _linear_model(weights)


def test_deletion_and_insertion_on_a_known_answer():
    model = _half_model()
    x, target = np.ones((1, 8, 8, 1), np.float32), np.array([0])
    right = np.zeros((1, 8, 8))
    right[0, :, :4] = 1.0  # the true answer: the left half
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731

    fractions, deletion, insertion = att.perturbation_curves(model, x, target, right, steps=2)
    np.testing.assert_allclose(fractions, [0, 0.5, 1])
    np.testing.assert_allclose(deletion[0], [sigmoid(32), 0.5, 0.5], rtol=1e-5)  # left half gone: no evidence
    np.testing.assert_allclose(insertion[0], [0.5, sigmoid(32), sigmoid(32)], rtol=1e-5)
    _, deletion, insertion = att.perturbation_curves(model, x, target, 1 - right, steps=2)  # the wrong half first
    np.testing.assert_allclose(deletion[0], [sigmoid(32), sigmoid(32), 0.5], rtol=1e-5)
    np.testing.assert_allclose(insertion[0], [0.5, 0.5, sigmoid(32)], rtol=1e-5)

    # Scored: the right map wins both curves on every image, the wrong one loses to random.
    images = np.random.default_rng(1).random((6, 8, 8, 1), dtype=np.float32) + 0.5
    targets = np.zeros(6, np.int64)
    maps = {"right": np.repeat(right, 6, axis=0), "wrong": np.repeat(1 - right, 6, axis=0),
            "random": np.random.default_rng(2).random((6, 8, 8))}
    curves = {m: att.perturbation_curves(model, images, targets, v, steps=16) for m, v in maps.items()}
    table, verdict = att.faithfulness(curves)
    assert table["right"]["deletion_auc"] < table["random"]["deletion_auc"] < table["wrong"]["deletion_auc"]
    assert table["right"]["insertion_auc"] > table["random"]["insertion_auc"] > table["wrong"]["insertion_auc"]
    assert table["right"]["deletion_wins"] == table["right"]["insertion_wins"] == 6
    assert verdict["most_often_best"] == verdict["best_deletion"] == verdict["best_insertion"] == "right"
    assert table["random"]["reference"] and "deletion_wins" not in table["random"]
    # The gradient methods find the answer too: saliency is the weights, IG the weights times the pixels.
    for method in ("saliency", "ig"):
        found, _ = att.attribute(model, images, targets, method)
        assert (found[:, :, :4] > found[:, :, 4:].max()).all(), method


def test_row_deletion_on_a_known_answer():
    weights = np.zeros((64, 2))
    weights[:8, 0] = 1.0  # only row 0 matters
    model = _linear_model(weights)
    x, target = np.ones((1, 8, 8, 1), np.float32), np.array([0])
    rows = np.zeros((1, 8))
    rows[0, 0] = 1.0
    _, deletion, _ = att.perturbation_curves(model, x, target, rows, steps=8)
    np.testing.assert_allclose(deletion[0], [1 / (1 + np.exp(-8.0))] + [0.5] * 8, rtol=1e-5)


# --------------------------------------------------------------------------- the command line


def _run_visualize(capsys, *args):
    capsys.readouterr()
    code = visualize_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_visualize_methods_writes_the_grid_and_the_scores(cifar_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TF_ASSIGN2_DATA", str(DATA))
    out = tmp_path / "v"
    code, stdout, err = _run_visualize(capsys, cifar_run.run_dir, "--out", out, "--maps", "1", "--stride", "7",
                                       "--methods", "all", "--score-images", "8", "--figure-images", "2")
    assert code == 0, err
    written = {p.name for p in out.iterdir()}
    assert {"attribution.png", "attribution_curves.png", "attribution_scores.json", "occlusion.png",
            "top9_conv2.png", "deconv_conv2.png", "visualize.json"} <= written
    scores = json.loads((out / "attribution_scores.json").read_text())
    methods = ["saliency", "smoothgrad", "ig", "gradcam_conv2", "gradcam_conv1", "occlusion", "random"]
    assert set(scores["methods"]) == set(methods) and scores["n_images"] == 8 and scores["unit"] == "pixel"
    for m in methods:
        assert 0 <= scores["methods"][m]["deletion_auc"] <= 1 and 0 <= scores["methods"][m]["insertion_auc"] <= 1
    assert scores["integrated_gradients_completeness"]["relative_error"]["max"] < 0.01
    assert scores["verdict"]["most_often_best"] in methods
    listing = json.loads((out / "visualize.json").read_text())
    assert "attribution.png" in listing["files"] and listing["attribution"]["score_images"] == 8
    assert "Integrated Gradients" in stdout and "IG completeness" in stdout


@pytest.mark.slow
def test_visualize_methods_on_an_lstm_run(tmp_path, capsys, cli):
    done = cli("tf_assign2.mnist", "--cell", "lstm", "--units", "8", "--ntrain", "10", "--ntest", "2", "--epochs", "1",
               "--no-visualize", "--runs-dir", tmp_path / "runs")
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    out = tmp_path / "v"
    code, stdout, err = _run_visualize(capsys, run_dir, "--out", out, "--stride", "7", "--methods", "all",
                                       "--score-images", "6", "--figure-images", "2")
    assert code == 0, err
    scores = json.loads((out / "attribution_scores.json").read_text())
    assert scores["unit"] == "row" and set(scores["methods"]) == {"saliency", "smoothgrad", "ig", "occlusion", "random"}
    assert (out / "attribution.png").is_file() and (out / "hidden_states.png").is_file()


@pytest.mark.parametrize("args, message", [
    (("--methods", "lime"), "--methods lime: choose from"),
    (("--methods", "gradcam", "--gradcam-layers", "fc1"), "--gradcam-layers fc1: not a conv layer"),
    (("--methods", "ig", "--baseline", "2"), "expected a number in [0, 1]"),
])
def test_visualize_methods_bad_input(cifar_run, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("TF_ASSIGN2_DATA", str(DATA))
    code, _, err = _run_visualize(capsys, cifar_run.run_dir, "--out", tmp_path / "v", *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "v").exists()
