"""SavedModel and .keras export of a trained model; ONNX and LiteRT files beside them.

Keras is imported where a model is handled, so checking ``--formats`` needs no TensorFlow.

The SavedModel serves class **probabilities**: float32 images [None, H, W, C] in [0, 1]
-> float32 [None, classes], under the endpoints ``serve`` and ``serving_default``.
It is exported from a portable twin of the model: layers with cuDNN kernels rebuilt with
``use_cudnn=False`` and the trained weights copied in, so a model trained on the cuDNN
path still loads and runs on a CPU-only machine (cuDNN ops in a graph do not).

``model.onnx`` and ``model.tflite`` (the same probabilities, in float32) are written by
``export_formats``: by a training run when the ``export`` extra (converter and runtime) is
installed, and by ``python -m tf_assign2.export RUN --formats onnx,litert`` on a finished run.
"""

import errno
import functools
import importlib.metadata
import importlib.util
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

from tf_assign2 import models, runs
from tf_assign2.errors import UsageError


def probability_model(model):
    """``model`` (logits) with a named softmax on top: what users and evaluate consume."""
    import keras

    probs = keras.layers.Softmax(name="probabilities", dtype="float32")(model.output)
    return keras.Model(model.input, probs, name=f"{model.name}_probabilities")


def portable_twin(model, config, info):
    """The same network with cuDNN-free layers and the same weights (the model itself if it has none)."""
    if not models.spec(config).cudnn(config):
        return model
    return _rebuilt(model, config, info, use_cudnn=False)


def _rebuilt(model, config, info, use_cudnn):
    """``config``'s network built again in stock layers (one chain), holding ``model``'s weights."""
    twin = models.build(config, info.image_shape, info.num_classes, use_cudnn=use_cudnn)
    twin.set_weights(model.get_weights())
    return twin


def stock_layers(model, config, info):
    """The same network and weights in stock Keras layers (the model itself if it has only those).

    The plan's two-chain recurrent layers (``models.recurrent.TwoChains``) only change how a batch
    is trained; the files a run leaves should load in plain Keras, without this package.
    """
    from tf_assign2.models.recurrent import TwoChains

    if not any(isinstance(layer, TwoChains) for layer in model.layers):
        return model
    return _rebuilt(model, config, info, use_cudnn=config.use_cudnn)


def save_all(model, config, info, run_dir):
    """Write ``model.keras`` (the logits model, for further training) and ``saved_model/``.

    Each is written under a temporary name and renamed into place, so an interrupted export never
    leaves a truncated model under the final name (``--resume`` then simply exports again).
    """
    run_dir = Path(run_dir)
    model = stock_layers(model, config, info)
    tmp_keras = run_dir / ".model.tmp.keras"  # Keras wants the .keras suffix
    model.save(tmp_keras)
    os.replace(tmp_keras, run_dir / "model.keras")
    served = probability_model(portable_twin(model, config, info))
    tmp_saved = run_dir / ".saved_model.tmp"
    shutil.rmtree(tmp_saved, ignore_errors=True)
    served.export(str(tmp_saved), format="tf_saved_model", verbose=False)
    shutil.rmtree(run_dir / "saved_model", ignore_errors=True)
    os.replace(tmp_saved, run_dir / "saved_model")
    formats = installed_formats()
    if formats:  # pip install -e .[export]: the deployable files too; a converter failure is only a warning
        export_formats(model, run_dir, formats)


# --------------------------------------------------------------------------- ONNX and LiteRT

FORMATS = {"onnx": "model.onnx", "litert": "model.tflite"}
# Modules each format needs to be written and to be run (the ``export`` extra: pip install -e .[export]).
# LiteRT files are written by TensorFlow's own converter (tf.lite.TFLiteConverter, through Keras'
# ``model.export(format="litert")``); they run on ai-edge-litert or, failing that, tf.lite.Interpreter.
CONVERTERS = {"onnx": ("tf2onnx", "onnx"), "litert": ()}
RUNTIMES = {"onnx": ("onnxruntime",), "litert": ("ai_edge_litert",)}
CHECK_IMAGES = 16  # random images on which every written file is compared with the Keras model
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)  # not a converter's fault


def missing_modules(names):
    return [name for name in names if importlib.util.find_spec(name) is None]


def installed_formats():
    """The formats a training run writes beside the SavedModel: those whose converter and runtime
    are both installed (the ``export`` extra). Without it a run writes what it always wrote."""
    return [f for f in FORMATS if not missing_modules(CONVERTERS[f] + RUNTIMES[f])]


def parse_formats(text):
    """``--formats onnx,litert`` -> a list; unknown names and missing converters are refused."""
    wanted = list(dict.fromkeys(w.strip().lower() for w in str(text).split(",") if w.strip()))
    bad = [w for w in wanted if w not in FORMATS]
    if bad or not wanted:
        raise UsageError(f"--formats {text}: choose from {', '.join(FORMATS)} (comma-separated)")
    for f in wanted:
        missing = missing_modules(CONVERTERS[f])
        if missing:
            raise UsageError(f"--formats {f}: needs {' and '.join(missing)} (pip install -e .[export])")
    return wanted


def float32_model(model):
    """The model computing in float32 with cuDNN-free recurrent layers, and the same weights.

    A run trained under a bfloat16 or mixed policy keeps float32 weights but computes in 16 bits;
    ONNX Runtime and LiteRT have no bfloat16 kernels for these ops on CPUs, and gradients there
    are too coarse for attribution. Returns ``model`` itself when it is float32 and cuDNN-free already.
    """

    def plain(layer):
        return layer.dtype_policy.name == "float32" and getattr(layer, "use_cudnn", False) is False

    if all(plain(layer) for layer in model.layers):
        return model
    import keras

    config = model.get_config()
    for layer in config["layers"]:
        layer["config"]["dtype"] = "float32"
    twin = keras.Model.from_config(config)
    for layer in twin.layers:
        if hasattr(layer, "use_cudnn"):  # not in the layer's config; read when the layer is called
            layer.use_cudnn = False
    twin.set_weights(model.get_weights())
    return twin


def deployable_model(model):
    """What ONNX and LiteRT files hold: the float32, cuDNN-free model with the probabilities softmax,
    called once (Keras' ONNX export wants a model that has been called)."""
    served = probability_model(float32_model(model))
    served(np.zeros((1, *served.input.shape[1:]), np.float32), training=False)
    return served


def write_format(served, fmt, path):
    """One file through ``model.export``, under a temporary name renamed into place.

    LiteRT: built-in ops only (a file needing the Flex delegate would not run on plain LiteRT).
    The recurrent models get a static batch of 1 there: the converter cannot lower Keras' RNN
    loop (a TensorList) with a dynamic batch dimension.
    """
    import tensorflow as tf

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # LiteRT wants the .tflite suffix
    try:
        if fmt == "onnx":
            served.export(str(tmp), format="onnx", verbose=False)
        else:
            signature = None
            if models.recurrent_layers(served):
                signature = [tf.TensorSpec((1, *served.input.shape[1:]), tf.float32, name="images")]
            served.export(str(tmp), format="litert", verbose=False, input_signature=signature,
                          target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _version(module):
    try:
        return importlib.metadata.version(module.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return None


def export_formats(model, run_dir, formats):
    """Write ``formats`` (``onnx``, ``litert``) of ``model`` (logits) into ``run_dir`` and check each
    against the Keras model on ``CHECK_IMAGES`` random images when its runtime is installed.

    Records what was written in ``exports.json``. A converter that fails costs a warning line on
    stderr and that file only (a training run keeps its SavedModel; the caller sees which format
    is missing from the result). Returns {format: record}.
    """
    run_dir = Path(run_dir)
    served = deployable_model(model)
    probe = np.random.default_rng(0).random((CHECK_IMAGES, *served.input.shape[1:]), dtype=np.float32)
    expected = np.asarray(served(probe, training=False))
    records, failed = {}, []
    for fmt in formats:
        path = run_dir / FORMATS[fmt]
        try:
            write_format(served, fmt, path)
        except OSError as e:
            if e.errno in DISK_ERRORS:  # the disk, not the converter: say so (one line, exit 2)
                raise
            failed.append(f"{fmt}: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}")
            print(f"warning: {FORMATS[fmt]} not written ({failed[-1]})", file=sys.stderr)
            continue
        except Exception as e:  # a converter's own error types vary (ConverterError, ValueError, onnx's)
            failed.append(f"{fmt}: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}")
            print(f"warning: {FORMATS[fmt]} not written ({failed[-1]})", file=sys.stderr)
            continue
        converter = "tf2onnx " + str(_version("tf2onnx")) if fmt == "onnx" else "tensorflow " + tf_version()
        record = {"file": FORMATS[fmt], "bytes": path.stat().st_size, "converter": converter, "precision": "float32",
                  "batch": 1 if fmt == "litert" and models.recurrent_layers(served) else "any", "output": "probabilities"}
        if not missing_modules(RUNTIMES[fmt]) or fmt == "litert":
            runner = load_runner(path)
            got = runner(probe)
            record["check"] = {"images": CHECK_IMAGES, "runtime": runner.runtime,
                               "max_abs_diff": float(np.abs(got - expected).max())}
        records[fmt] = record
    if records:
        listing_path = run_dir / "exports.json"
        listing = runs.read_json(listing_path) if listing_path.is_file() else {}
        runs.write_json(listing_path, {**listing, **records})
    return records


def tf_version():
    import tensorflow as tf

    return tf.__version__


# --------------------------------------------------------------------------- running the files


ONNX_MEMORY = 2 << 30  # bytes an ONNX file may allocate while it runs (a LeNet5 on 500 images needs ~100 MB)


@functools.cache
def _bounded_onnx_memory():
    """ONNX Runtime's sessions of this process allocate from one arena of at most ``ONNX_MEMORY``: a file
    declaring a tensor of gigabytes fails with an error instead of exhausting the machine's memory."""
    import onnxruntime

    info = onnxruntime.OrtMemoryInfo("Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                     onnxruntime.OrtMemType.DEFAULT)
    onnxruntime.create_and_register_allocator(info, onnxruntime.OrtArenaCfg(ONNX_MEMORY, -1, -1, -1))


class OnnxRunner:
    """A model.onnx on ONNX Runtime (CPU): float images (n, H, W, C) -> probabilities (n, classes)."""

    def __init__(self, path):
        import onnxruntime

        _bounded_onnx_memory()
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.use_env_allocators", "1")
        options.log_severity_level = 4  # its own error lines: the failure is reported once, by us
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        (inp,), out = self.session.get_inputs(), self.session.get_outputs()[0]
        self.input_name = inp.name
        self.input_shape = tuple(int(d) for d in inp.shape[1:])
        self.num_classes = int(out.shape[-1])
        self.runtime = f"onnxruntime {onnxruntime.__version__}"

    def __call__(self, images):
        return self.session.run(None, {self.input_name: np.asarray(images, np.float32)})[0]


class LiteRTRunner:
    """A model.tflite on LiteRT (ai-edge-litert, else tf.lite): float images -> probabilities.

    A file with a static batch (the recurrent models') is run in chunks of that size, the last padded.
    """

    def __init__(self, path):
        try:
            from ai_edge_litert.interpreter import Interpreter

            self.runtime = f"ai-edge-litert {_version('ai_edge_litert')}"
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter  # deprecated since TF 2.20, kept as the fallback
            self.runtime = f"tf.lite {tf.__version__} (deprecated; pip install ai-edge-litert)"
        with warnings.catch_warnings():  # tf.lite's deprecation notice: said once, in ``runtime``
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
            self.interpreter = Interpreter(model_path=str(path))
        self.interpreter.allocate_tensors()
        inp, out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        self.input_index, self.output_index = inp["index"], out["index"]
        self.input_shape = tuple(int(d) for d in inp["shape"][1:])
        self.num_classes = int(out["shape"][-1])
        signature = inp.get("shape_signature", inp["shape"])
        self.batch = None if int(signature[0]) == -1 else int(signature[0])
        self._allocated = int(inp["shape"][0])

    def _run(self, batch):
        if self.batch is None and len(batch) != self._allocated:
            self.interpreter.resize_tensor_input(self.input_index, [len(batch), *self.input_shape])
            self.interpreter.allocate_tensors()
            self._allocated = len(batch)
        self.interpreter.set_tensor(self.input_index, batch)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self.output_index))

    def __call__(self, images):
        images = np.ascontiguousarray(np.asarray(images, np.float32))
        if self.batch is None:
            return self._run(images)
        outputs = []
        for start in range(0, len(images), self.batch):
            part = images[start : start + self.batch]
            padded = np.concatenate([part, np.zeros((self.batch - len(part), *part.shape[1:]), np.float32)])
            outputs.append(self._run(padded)[: len(part)])
        return np.concatenate(outputs) if outputs else np.zeros((0, self.num_classes), np.float32)


def load_runner(path):
    """model.onnx or model.tflite -> a runner (callable; input_shape, num_classes, runtime)."""
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxRunner(path)
    if path.suffix == ".tflite":
        return LiteRTRunner(path)
    raise ValueError(f"{path}: not a .onnx or .tflite file")
