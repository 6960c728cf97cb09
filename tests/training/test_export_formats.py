"""ONNX and LiteRT exports: ``python -m tf_assign2.export``, the training run's export, and ``evaluate`` on
``model.onnx`` / ``model.tflite``. The ONNX round trips need the ``export`` extra (pip install -e .[export])
and are skipped without it; LiteRT files are written by TensorFlow's own converter and run on
ai-edge-litert or, without it, on tf.lite."""

import json
import types
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import copy_run

from tf_assign2 import models
from tf_assign2.analysis import evaluation
from tf_assign2.analysis.evaluation import run_accuracy
from tf_assign2.errors import UsageError
from tf_assign2.training import export


def _float_images(arrays):
    return arrays.test_x.astype(np.float32) / 255.0


# --------------------------------------------------------------------------- without any converter


def test_formats_are_checked_before_anything_runs(monkeypatch):
    assert export.parse_formats("litert") == ["litert"]
    assert export.parse_formats("litert, LITERT") == ["litert"]
    for text in ("tfjs", "", "onnx,coreml"):
        with pytest.raises(UsageError, match="choose from onnx, litert"):
            export.parse_formats(text)
    monkeypatch.setattr(export, "CONVERTERS", {**export.CONVERTERS, "onnx": ("no_such_converter_module",)})
    with pytest.raises(UsageError, match=r"--formats onnx: needs no_such_converter_module \(pip install -e .\[export\]\)"):
        export.parse_formats("onnx,litert")


def test_training_writes_the_formats_only_with_the_export_extra(monkeypatch):
    assert set(export.installed_formats()) <= set(export.FORMATS)
    monkeypatch.setattr(export, "RUNTIMES", {"onnx": ("no_such_runtime",), "litert": ("no_such_runtime",)})
    assert export.installed_formats() == []  # what CI has: a run writes what it always wrote


def test_evaluate_refuses_missing_and_damaged_files(tmp_path, cli):
    done = cli("tf_assign2.evaluate", tmp_path / "model.tflite")
    assert done.returncode == 2 and "model.tflite: cannot read (No such file or directory)" in done.stderr
    (tmp_path / "model.tflite").write_bytes(b"not a flatbuffer at all")
    done = cli("tf_assign2.evaluate", tmp_path / "model.tflite", "--dataset", "mnist")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "cannot load litert model" in lines[0], done.stderr
    assert evaluation.model_path(tmp_path / "model.tflite") == (tmp_path / "model.tflite", "litert")


def test_export_command_refuses_bad_input(tmp_path, cli):
    done = cli("tf_assign2.export", tmp_path, "--formats", "tfjs")
    assert done.returncode == 2 and "--formats tfjs: choose from onnx, litert" in done.stderr
    done = cli("tf_assign2.export", tmp_path, "--formats", "litert")
    assert done.returncode == 2 and "not a run directory" in done.stderr
    (tmp_path / "config.json").write_text("{}")
    done = cli("tf_assign2.export", tmp_path, "--formats", "litert")
    assert done.returncode == 2 and "no model.keras" in done.stderr


def test_float32_twin_has_no_cudnn_and_the_same_outputs():
    keras.utils.set_random_seed(0)
    model = models.rnn_classifier("gru", units=8, use_cudnn="auto")
    twin = export.float32_model(model)
    assert twin is not model and twin.get_layer("gru1").use_cudnn is False
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(twin(x)), np.asarray(model(x)), atol=1e-5)


# --------------------------------------------------------------------------- round trips


@pytest.mark.slow
def test_a_16_bit_run_records_the_float32_accuracy_its_exports_reproduce(small_config, monkeypatch, capsys):
    """A bfloat16 run's SavedModel computes in bfloat16, its ONNX/LiteRT files in float32: the run records
    the float32 test metrics of its weights when it writes those files (the export extra installed),
    ``python -m tf_assign2.export`` adds them to a run that did not, and a float32 run needs none."""
    from tf_assign2 import data
    from tf_assign2.api import record_float32_figures
    from tf_assign2.training import callbacks as loop
    from tf_assign2.training.trainer import Trainer

    monkeypatch.setattr(export, "export_formats", lambda *args, **kwargs: {})  # the files themselves: elsewhere
    summaries = {}
    for precision, extra in (("bfloat16", ["onnx"]), ("bfloat16", []), ("float32", ["onnx"])):
        monkeypatch.setattr(export, "installed_formats", lambda extra=extra: extra)
        cfg = small_config(precision=precision, conv_filters=(4, 8), fc_units=16, visualize=False)
        arrays, info = data.load_arrays(cfg)
        trainer = Trainer(cfg, arrays, info)
        run_dir = trainer.new_run_dir()
        summaries[precision, bool(extra)] = summary = trainer.run(run_dir)
        assert summary["status"] == "completed"
        if precision == "float32" or not extra:
            assert "test_accuracy_float32" not in summary
    def float32_metrics(run_dir):
        model = keras.models.load_model(Path(run_dir) / "model.keras", compile=False)
        return model, loop.logits_metrics(np.asarray(export.float32_model(model).predict(
            _float_images(arrays), verbose=0)), arrays.test_y)

    with_extra = summaries["bfloat16", True]
    # The same weights in float32, predicted in other batch sizes: equal to float32 rounding.
    assert (with_extra["test_loss_float32"], with_extra["test_accuracy_float32"]) == \
        pytest.approx(float32_metrics(with_extra["run_dir"])[1], rel=1e-6)
    assert run_accuracy(with_extra, "onnx")["run_test_accuracy_float32"] == with_extra["test_accuracy_float32"]
    assert "run_test_accuracy_float32" not in run_accuracy(with_extra, "saved_model")

    # The run trained without the extra gets the same figures from the export command's step.
    plain = Path(summaries["bfloat16", False]["run_dir"])
    model, expected = float32_metrics(plain)
    record_float32_figures(plain, model)
    added = json.loads((plain / "summary.json").read_text())
    assert added["test_accuracy"] == summaries["bfloat16", False]["test_accuracy"]
    assert (added["test_loss_float32"], added["test_accuracy_float32"]) == pytest.approx(expected, rel=1e-6)
    assert "added to summary.json" in capsys.readouterr().out
    unchanged = Path(summaries["float32", True]["run_dir"])
    record_float32_figures(unchanged, keras.models.load_model(unchanged / "model.keras", compile=False))
    assert "test_accuracy_float32" not in json.loads((unchanged / "summary.json").read_text())


@pytest.mark.slow
def test_litert_round_trip_through_the_export_command_and_evaluate(cifar_run, tmp_path, cli):
    """LiteRT needs no extra: the converter is TensorFlow's. The file's probabilities equal the float32
    Keras model's, and evaluate reports that model's accuracy."""
    run_dir = copy_run(cifar_run.run_dir, tmp_path / "runs")
    done = cli("tf_assign2.export", run_dir, "--formats", "litert")
    assert done.returncode == 0, done.stderr
    assert (run_dir / "model.tflite").is_file() and "max |p - Keras|" in done.stdout
    record = json.loads((run_dir / "exports.json").read_text())["litert"]
    assert record["check"]["max_abs_diff"] < 1e-5 and record["batch"] == "any"

    keras_probs = np.asarray(export.deployable_model(cifar_run.model)(_float_images(cifar_run.arrays)))
    runner = export.load_runner(run_dir / "model.tflite")
    assert np.abs(runner(_float_images(cifar_run.arrays)) - keras_probs).max() < 1e-5
    done = cli("tf_assign2.evaluate", run_dir / "model.tflite", "--out", tmp_path / "e")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert result["format"] == "litert" and result["n_test"] == len(cifar_run.arrays.test_y)
    assert result["accuracy"] == float((keras_probs.argmax(axis=1) == cifar_run.arrays.test_y).mean())
    # The figure the file reproduces: the run's own, or, for a run that computed in bfloat16 (the default
    # LeNet5 on CPUs with bfloat16 instructions), the float32 accuracy of its weights that the run recorded.
    summary = json.loads((run_dir / "summary.json").read_text())
    assert result["accuracy"] == summary.get("test_accuracy_float32", summary["test_accuracy"])
    assert result.get("run_test_accuracy_float32") == summary.get("test_accuracy_float32")


@pytest.mark.slow
def test_onnx_round_trip_through_the_export_command_and_evaluate(cifar_run, tmp_path, cli):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    run_dir = copy_run(cifar_run.run_dir, tmp_path / "runs")
    done = cli("tf_assign2.export", run_dir, "--formats", "onnx")
    assert done.returncode == 0, done.stderr
    record = json.loads((run_dir / "exports.json").read_text())["onnx"]
    assert record["check"]["max_abs_diff"] < 1e-5 and record["converter"].startswith("tf2onnx")

    keras_probs = np.asarray(export.deployable_model(cifar_run.model)(_float_images(cifar_run.arrays)))
    runner = export.load_runner(run_dir / "model.onnx")
    assert runner.input_shape == (28, 28, 1) and runner.num_classes == 10
    assert np.abs(runner(_float_images(cifar_run.arrays)) - keras_probs).max() < 1e-5
    done = cli("tf_assign2.evaluate", run_dir / "model.onnx", "--out", tmp_path / "e")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert result["format"] == "onnx"
    assert result["accuracy"] == float((keras_probs.argmax(axis=1) == cifar_run.arrays.test_y).mean())


@pytest.mark.slow
def test_recurrent_model_round_trips_with_a_static_litert_batch(tmp_path):
    """Keras' RNN loop needs a static batch in LiteRT: the file takes 1 image, the runner feeds it in chunks."""
    keras.utils.set_random_seed(0)
    model = models.rnn_classifier("lstm", units=8)
    formats = ["litert"] + (["onnx"] if not export.missing_modules(export.CONVERTERS["onnx"] + export.RUNTIMES["onnx"])
                            else [])
    records = export.export_formats(model, tmp_path, formats)
    assert set(records) == set(formats) and records["litert"]["batch"] == 1
    x = np.random.default_rng(1).random((5, 28, 28, 1), dtype=np.float32)
    expected = np.asarray(export.deployable_model(model)(x))
    for fmt in formats:
        got = export.load_runner(tmp_path / export.FORMATS[fmt])(x)
        assert got.shape == (5, 10) and np.abs(got - expected).max() < 1e-5, fmt


@pytest.mark.slow
def test_a_training_run_with_the_extra_writes_the_formats_beside_the_saved_model(small_config, tmp_path, monkeypatch):
    """``save_all`` (the Trainer's export phase) writes the installed formats; a failing converter is a
    warning, never a failed run."""
    cfg = small_config(conv_filters=(4, 8), fc_units=16)
    keras.utils.set_random_seed(0)
    model = models.build(cfg, (28, 28, 1), 10)
    info = types.SimpleNamespace(image_shape=(28, 28, 1), num_classes=10)
    monkeypatch.setattr(export, "installed_formats", lambda: ["litert", "onnx"])

    def broken(served, fmt, path):
        if fmt == "onnx":
            raise ValueError("converter says no")
        return write(served, fmt, path)

    write = export.write_format
    monkeypatch.setattr(export, "write_format", broken)
    export.save_all(model, cfg, info, tmp_path)
    assert (tmp_path / "saved_model" / "saved_model.pb").is_file() and (tmp_path / "model.keras").is_file()
    assert (tmp_path / "model.tflite").is_file() and not (tmp_path / "model.onnx").exists()
    assert set(json.loads((tmp_path / "exports.json").read_text())) == {"litert"}
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind
