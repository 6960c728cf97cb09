"""SavedModel and .keras export of a trained model.

The SavedModel serves class **probabilities**: float32 images [None, H, W, C] in [0, 1]
-> float32 [None, classes], under the endpoints ``serve`` and ``serving_default``.
It is exported from a portable twin of the model: layers with cuDNN kernels rebuilt with
``use_cudnn=False`` and the trained weights copied in, so a model trained on the cuDNN
path still loads and runs on a CPU-only machine (cuDNN ops in a graph do not).
"""

import os
import shutil
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
    """Write ``model.keras`` (the logits model, for further training) and ``saved_model/``.

    Each is written under a temporary name and renamed into place, so an interrupted export never
    leaves a truncated model under the final name (``--resume`` then simply exports again).
    """
    run_dir = Path(run_dir)
    tmp_keras = run_dir / ".model.tmp.keras"  # Keras wants the .keras suffix
    model.save(tmp_keras)
    os.replace(tmp_keras, run_dir / "model.keras")
    served = probability_model(portable_twin(model, config, info))
    tmp_saved = run_dir / ".saved_model.tmp"
    shutil.rmtree(tmp_saved, ignore_errors=True)
    served.export(str(tmp_saved), format="tf_saved_model", verbose=False)
    shutil.rmtree(run_dir / "saved_model", ignore_errors=True)
    os.replace(tmp_saved, run_dir / "saved_model")
