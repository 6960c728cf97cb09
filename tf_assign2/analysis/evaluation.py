"""Evaluate an exported model on a test split, with no project model code (``api.evaluate``).

    python -m tf_assign2.evaluate runs/<run>            # the run's own data settings
    python -m tf_assign2.evaluate path/to/saved_model --dataset mnist --data-dir DIR
    python -m tf_assign2.evaluate runs/<run>/model.onnx  # or model.tflite
    python -m tf_assign2.evaluate runs/<run> --tta flip  # test-time augmentation (default: the run's own)

A SavedModel is loaded with ``tf.saved_model.load`` only, ``model.onnx`` with ONNX Runtime and
``model.tflite`` with LiteRT, so this is exactly what a user holding just that file can do.
Writes ``eval.json`` and ``confusion_matrix.png`` into a new ``eval-<timestamp>/`` folder of the run.
"""

from pathlib import Path

import numpy as np

from tf_assign2.errors import UsageError
from tf_assign2.training.tta import average, probability_metrics, view_probabilities


def saved_model_path(path):
    """A run directory or a SavedModel directory -> the SavedModel directory (of regular files only)."""
    from tf_assign2 import files

    path = Path(path)
    for folder in (path, path / "saved_model"):
        if (folder / "saved_model.pb").exists():
            files.check_tree(folder, "")
            return folder
    if (path / "config.json").is_file():
        raise UsageError(f"{path}: this run has no saved_model/ (did it diverge or get interrupted?)")
    raise UsageError(f"{path}: not a run directory or a SavedModel (no saved_model.pb)")


EXPORT_SUFFIXES = {".onnx": "onnx", ".tflite": "litert"}


def model_path(path):
    """A run directory, a SavedModel directory, or a ``.onnx`` / ``.tflite`` file -> (path, format)."""
    path = Path(path)
    if path.suffix in EXPORT_SUFFIXES and not path.is_dir():
        from tf_assign2 import files

        files.check_regular(path, "")  # missing, a named pipe, a link that loops: one line
        return path, EXPORT_SUFFIXES[path.suffix]
    return saved_model_path(path), "saved_model"


def load_model(path, fmt):
    """(serving function: float batch -> probabilities, input shape, num classes) of any export."""
    if fmt == "saved_model":
        serve, input_shape, num_classes, loaded = load_serving_function(path)

        def call(batch, _keep=loaded):  # the loaded object owns the variables: keep it alive with the function
            return serve(batch)

        return call, input_shape, num_classes
    from tf_assign2.training import export

    runtime = export.RUNTIMES[fmt] if fmt == "onnx" else ()  # LiteRT falls back to tf.lite
    missing = export.missing_modules(runtime)
    if missing:
        raise UsageError(f"{path}: running it needs {' and '.join(missing)} (pip install -e .[export])")
    try:
        runner = export.load_runner(path)
    except Exception as e:  # a damaged or foreign file: each runtime has its own error types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UsageError(f"{path}: cannot load {fmt} model ({first})") from None
    return runner, runner.input_shape, runner.num_classes


def load_serving_function(path):
    """Load the SavedModel's ``serve`` endpoint; returns (function, input shape, num classes)."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:  # missing, damaged (a truncated variables file: IndexError) or foreign files
        raise UsageError(f"{path}: cannot load SavedModel ({_first_line(e)})") from None
    serve = getattr(loaded, "serve", None)
    if serve is None:
        raise UsageError(f"{path}: SavedModel has no 'serve' endpoint (not exported by tf_assign2?)")
    spec = serve.input_signature[0]
    signature = loaded.signatures["serving_default"]
    (output_spec,) = signature.structured_outputs.values()
    return serve, tuple(spec.shape[1:]), int(output_spec.shape[-1]), loaded


def _first_line(error):
    """A runtime's error in one line of at most about 240 characters: its start and its end (where
    ONNX Runtime, for one, says what it could not do)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 240 else f"{text[:110]} ... {text[-120:]}"


def predict(serve, images, batch_size=500, where="the exported model"):
    """Class probabilities for uint8 images, batch by batch, scaled like training (/ 255)."""
    import tensorflow as tf

    outputs = []
    for start in range(0, len(images), batch_size):
        batch = tf.constant(images[start : start + batch_size], dtype=tf.float32) / 255.0
        try:
            outputs.append(np.asarray(serve(batch)))
        except Exception as e:  # variables that load but cannot be read, a runtime's failure, memory refused
            raise UsageError(f"{where}: cannot run ({_first_line(e)})") from None
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def check_compatible(path, input_shape, num_classes, info):
    if tuple(input_shape) != tuple(info.image_shape):
        raise UsageError(
            f"{path}: model expects images of shape {tuple(input_shape)}, the data has {tuple(info.image_shape)}"
        )
    if num_classes != info.num_classes:
        raise UsageError(f"{path}: model has {num_classes} classes, the data has {info.num_classes}")


def confusion_matrix(labels, predictions, num_classes):
    """Counts of (true class, predicted class), every class a row and a column even when it never occurs."""
    from sklearn.metrics import confusion_matrix as counts

    return counts(labels, predictions, labels=np.arange(num_classes)).astype(np.int64)


def evaluate(serve, test_x, test_y, num_classes, tta="none", where="the exported model"):
    """Accuracy, loss and confusion matrix of a serving function on a test split, under test-time
    augmentation ``tta``; with one, also the accuracy and loss of the plain images (``*_no_tta``)."""
    views = view_probabilities(lambda images: predict(serve, images, where=where), test_x, tta)
    probs = average(views)
    loss, accuracy = probability_metrics(probs, test_y)
    result = {
        "accuracy": accuracy,
        "loss": loss,
        "n_test": int(len(test_y)),
        "confusion_matrix": confusion_matrix(test_y, probs.argmax(axis=1), num_classes).tolist(),
        "tta": tta,
    }
    if tta != "none":  # the first view is the images themselves
        result["loss_no_tta"], result["accuracy_no_tta"] = probability_metrics(views[0][1], test_y)
    return result


def run_figures(summary, run_tta, tta):
    """The run's recorded test figures that were computed under ``tta``, in summary.json's keys.

    A run records ``test_accuracy`` under its own ``--tta`` and, when that was not none, the plain
    figure as ``test_accuracy_no_tta``; evaluating under another augmentation has nothing to compare.
    """
    if tta == run_tta:
        return summary
    if tta == "none" and summary.get("test_accuracy_no_tta") is not None:
        return {"test_accuracy": summary["test_accuracy_no_tta"]}
    return {"test_accuracy": None}


def run_accuracy(summary, fmt):
    """The run's own test accuracy to compare with, in eval.json.

    A run trained in bfloat16 or float16 serves its SavedModel at that precision, while model.onnx
    and model.tflite compute in float32 (their CPU runtimes have no 16-bit kernels for these ops):
    for those the run also recorded the float32 accuracy of the same weights, which they reproduce.
    """
    found = {"run_test_accuracy": summary.get("test_accuracy")}
    if fmt != "saved_model" and summary.get("test_accuracy_float32") is not None:
        found["run_test_accuracy_float32"] = summary["test_accuracy_float32"]
    return found
