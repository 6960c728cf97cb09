"""The two model families: layer names, shapes and parameter counts as the starters specify."""

import keras
import numpy as np
import pytest

from tf_assign2 import models


def test_lenet5_layers_and_parameter_count():
    model = models.lenet5()
    names = [layer.name for layer in model.layers]
    assert names == ["images", "conv1", "pool1", "conv2", "pool2", "flatten", "fc1", "dropout", "logits"]
    assert model.count_params() == 3_274_634
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["pool1"] == (14, 14, 32) and shapes["pool2"] == (7, 7, 64)
    assert shapes["fc1"] == (1024,) and shapes["logits"] == (10,)
    assert model.get_layer("dropout").rate == 0.5


def test_lenet5_starter_initialisers():
    keras.utils.set_random_seed(0)
    kernel, bias = models.lenet5().get_layer("fc1").get_weights()
    assert np.all(bias == np.float32(0.1))
    assert np.abs(kernel).max() <= 0.2 + 1e-6  # truncated normal: within 2 stddev
    assert 0.08 < kernel.std() < 0.1


@pytest.mark.parametrize("cell, layer_type", [("rnn", "SimpleRNN"), ("lstm", "LSTM"), ("gru", "GRU")])
def test_rnn_classifier_cells(cell, layer_type):
    model = models.rnn_classifier(cell, units=16)
    layer = model.get_layer(f"{cell}1")
    assert type(layer).__name__ == layer_type
    assert model.get_layer("rows").output.shape[1:] == (28, 28)  # nSteps x nInput
    out = model(np.zeros((2, 28, 28, 1), np.float32))
    assert out.shape == (2, 10)
    if cell == "lstm":
        assert layer.cell.unit_forget_bias  # BasicLSTMCell(forget_bias=1.0)


def test_stacked_rnn_layers():
    model = models.rnn_classifier("gru", units=8, num_layers=3)
    grus = [layer for layer in model.layers if layer.name.startswith("gru")]
    assert [g.name for g in grus] == ["gru1", "gru2", "gru3"]
    assert [g.return_sequences for g in grus] == [True, True, False]


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="cell must be one of"):
        models.rnn_classifier("transformer")
    with pytest.raises(ValueError, match="units"):
        models.rnn_classifier("lstm", units=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_two_chains_train_the_same_network(cell):
    """Two chains change how a batch is computed, not what: with the same weights the training-mode
    outputs and the weight gradients equal one chain's, for even, odd and single-image batches, known
    when traced or not, and outside training the batch runs whole. The weights move between the two
    builds unchanged."""
    import tensorflow as tf

    from tf_assign2.models.recurrent import TwoChains

    keras.utils.set_random_seed(0)
    plain = models.rnn_classifier(cell, units=16, num_layers=2, use_cudnn=False)
    chained = models.rnn_classifier(cell, units=16, num_layers=2, use_cudnn=False, chains=2)
    assert [type(layer).__name__ for layer in chained.layers if isinstance(layer, TwoChains)] == \
        [f"TwoChain{type(plain.get_layer(f'{cell}{i}')).__name__}" for i in (1, 2)]
    assert [layer.unroll for layer in chained.layers if isinstance(layer, TwoChains)] == [True, True]
    assert not any(getattr(layer, "unroll", False) for layer in plain.layers)
    chained.set_weights(plain.get_weights())
    rng = np.random.default_rng(0)
    for batch in (8, 7, 1):
        images = tf.constant(rng.random((batch, 28, 28, 1), dtype=np.float32))
        grads = []
        for model in (plain, chained):
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                loss = tf.reduce_sum(logits ** 2)
            grads.append((logits, tape.gradient(loss, model.trainable_variables)))
        (plain_logits, plain_grads), (chained_logits, chained_grads) = grads
        np.testing.assert_allclose(chained_logits, plain_logits, rtol=1e-5, atol=1e-5)
        for ours, theirs in zip(chained_grads, plain_grads, strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(chained(images), plain(images))
        unknown_batch = tf.function(lambda x: chained(x, training=True),
                                    input_signature=[tf.TensorSpec((None, 28, 28, 1), tf.float32)])
        np.testing.assert_allclose(unknown_batch(images), plain_logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="chains must be 1 or 2"):
        models.rnn_classifier(cell, chains=3)


def test_the_chained_gru_trains_from_rows_projected_before_its_steps(monkeypatch):
    """In training the chained GRU runs its own loop (all rows' input projection first, split gates),
    not Keras' cell loop; in evaluation it runs Keras' loop. Keras' loop is made to fail here, so each
    path is seen taken; the arithmetic is compared with the plain layer in the test above."""
    from keras import layers

    def keras_loop(*args, **kwargs):
        raise AssertionError("Keras' GRU loop ran")

    keras.utils.set_random_seed(0)
    chained = models.rnn_classifier("gru", units=8, num_layers=2, use_cudnn=False, chains=2)
    images = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    monkeypatch.setattr(layers.GRU, "inner_loop", keras_loop)
    assert chained(images, training=True).shape == (4, 10)
    with pytest.raises(AssertionError, match="Keras' GRU loop ran"):
        chained(images, training=False)
