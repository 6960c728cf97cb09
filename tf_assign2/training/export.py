"""SavedModel and .keras export of a trained model.

The SavedModel serves class **probabilities**: float32 images [None, H, W, C] in [0, 1]
-> float32 [None, classes], under the endpoints ``serve`` and ``serving_default``.
It is exported from a portable twin of the model: layers with cuDNN kernels rebuilt with
``use_cudnn=False`` and the trained weights copied in, so a model trained on the cuDNN
path still loads and runs on a CPU-only machine (cuDNN ops in a graph do not).
"""

from pathlib import Path

import keras

from tf_assign2 import models


def probability_model(model):
    """``model`` (logits) with a named softmax on top: what users and evaluate consume."""
    probs = keras.layers.Softmax(name="probabilities", dtype="float32")(model.output)
    return keras.Model(model.input, probs, name=f"{model.name}_probabilities")


def portable_twin(model, config, info):
    """The same network with cuDNN-free layers and the same weights (the model itself if it has none)."""
    if not models.spec(config).cudnn(config):
        return model
    twin = models.build(config, info.image_shape, info.num_classes, use_cudnn=False)
    twin.set_weights(model.get_weights())
    return twin


def save_all(model, config, info, run_dir):
    """Write ``model.keras`` (the logits model, for further training) and ``saved_model/``."""
    run_dir = Path(run_dir)
    model.save(run_dir / "model.keras")
    served = probability_model(portable_twin(model, config, info))
    served.export(str(run_dir / "saved_model"), format="tf_saved_model", verbose=False)
