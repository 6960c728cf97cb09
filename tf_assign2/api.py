"""The Python API: what a notebook calls, and what every command calls (the commands only parse flags).

    import tf_assign2 as ta

    config = ta.settings("mnist", cell="gru", epochs=3)      # the task's defaults < a --config file < values
    run = ta.train(config)                                    # a Run bound to its new folder
    run.test_accuracy, run.curves(), run.evaluate(), run.visualize(methods="all"), run.export("onnx")
    run = ta.open_run("runs/mnist-gru128-adam-lr0.002-...")  # the same Run for any run folder
    ta.resume(run.path)                                       # continue an interrupted run
    results = ta.sweep("configs/sweeps/cifar_optimizers.yaml")
    search = ta.tune("cifar", max_trials=8, epochs=5)
    ta.report(["runs/sweeps/cifar_optimizers"], out="reports/optimizers")
    ta.register_model("mlp", build_mlp, settings=("fc_units",))  # then settings(..., model="mlp") anywhere
    ta.register_optimizer("lion", keras.optimizers.Lion)

Every call leaves the process's global state as it found it (``global_state.preserved``): Keras'
dtype policy, op determinism, TensorFlow's and absl's logging, the environment, and Python's and
NumPy's random generators. A training call seeds TensorFlow, Python and NumPy with the run's
``seed`` while it trains; afterwards only TensorFlow's global seed keeps that value. Signal
handlers are the commands' business alone. In Jupyter a Run, a sweep's results and a search's
results show as a table with their curves.
"""

import base64
import dataclasses
import html
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tf_assign2 import config as schema
from tf_assign2 import models, runs
from tf_assign2.errors import UsageError
from tf_assign2.global_state import preserved
from tf_assign2.optimizers import register_optimizer

PathLike = str | os.PathLike  # a file or folder, as text or a Path

__all__ = ["settings", "train", "resume", "open_run", "Run", "evaluate", "sweep", "tune", "search_space", "report",
           "register_model", "register_optimizer"]


# --------------------------------------------------------------------------- settings


def register_model(name: str, builder: Callable, *, family: str = "other", settings: tuple = (),
                   title: Callable | None = None, label: Callable | None = None, bfloat16_on_cpu: bool = False,
                   adam_lr: float | None = None, replace: bool = False) -> models.ModelSpec:
    """Make ``builder`` trainable as ``--model NAME`` / ``settings(..., model=NAME)`` in this process.

    ``builder(config, input_shape, num_classes)`` returns a Keras model from images (H, W, C) in
    [0, 1] to logits; it may read the model settings named in ``settings`` (e.g. ``("fc_units",)``:
    the others are blank in tables), each checked here against the settings schema. ``family`` "cnn"
    or "recurrent" opts into those figures and report sections. A second registration of a name is
    refused, unless ``replace=True`` replaces your own (a notebook cell run again).
    """
    model_settings = sorted(n for n, s in schema.SETTINGS.items() if s.group == "model" and n != "model")
    unknown = [s for s in settings if s not in model_settings]
    if unknown:
        raise UsageError(f"register_model {name!r}: settings {unknown[0]!r} is not a model setting "
                         f"(expected some of {', '.join(model_settings)})")
    return models.register_model(name, builder, family=family, settings=settings, title=title, label=label,
                                 bfloat16_on_cpu=bfloat16_on_cpu, adam_lr=adam_lr, replace=replace)


def settings(task: str = "cifar", config: PathLike | None = None, **values: Any) -> schema.Config:
    """The settings of a run of ``task`` ("cifar" or "mnist"), validated: the task's defaults, then the
    YAML file ``config`` (as ``--config``), then ``values`` (setting names, as the flags without ``--``).

    ``settings("mnist", cell="gru", epochs=3)`` is ``python -m tf_assign2.mnist --cell gru --epochs 3``.
    A bad name or value raises ``UsageError`` saying what was expected.
    """
    if task not in schema.TASKS:
        raise UsageError(f"settings({task!r}): expected a task, one of {', '.join(schema.TASKS)}")
    from_file = schema.file_values(schema.read_yaml(config), f"--config {config}") if config else {}
    return schema.build(task, from_file, schema.python_values(values, "settings"))


def _settings_of(config, values):
    """``train``'s first argument: settings, or a task name with ``values``; ``values`` override settings."""
    if isinstance(config, str):
        return settings(config, **values)
    if not isinstance(config, schema.Config):
        raise UsageError(f"expected settings (tf_assign2.settings(...)) or a task name, got {type(config).__name__}")
    if not values:
        return schema.validate(config)
    return schema.build(config.task, schema.to_dict(config), schema.python_values(values, "train"))


# --------------------------------------------------------------------------- one run


def train(config: schema.Config | str, **values: Any) -> "Run":
    """Train one run into a new folder under ``config.runs_dir``; returns its ``Run``.

    ``config`` comes from ``settings(...)`` (or is a task name, with ``values`` as for ``settings``).
    This is exactly ``python -m tf_assign2.cifar`` / ``mnist``: the same data, plan, Trainer, callbacks
    and files. A run that diverges or is interrupted (Ctrl-C, the notebook's stop button) still
    returns its Run, with ``status`` saying so; ``resume(run.path)`` continues an interrupted one.
    """
    config = _settings_of(config, values)
    with preserved():
        arrays, info = _data_then_tensorflow(config)
        from tf_assign2.training.trainer import Trainer

        trainer = Trainer(config, arrays, info)
        first_made = runs.first_missing(config.runs_dir)
        run_dir = trainer.new_run_dir()
        try:
            return _run(trainer, run_dir, resume=False)
        except BaseException:  # out of memory in the first step, say: a folder with nothing to resume goes
            if not runs.backup_epochs(run_dir / "backup") and not (run_dir / "summary.json").exists():
                runs.remove_tree(run_dir)
                runs.remove_if_empty(first_made)
            raise


def resume(run_dir: PathLike) -> "Run":
    """Continue an interrupted run from its last intact epoch (or finish its export); returns its ``Run``.

    The run keeps the settings and the plan it recorded, so it continues exactly as it started.
    """
    run = open_run(run_dir)
    if run.status == "completed":
        raise UsageError(f"--resume {run_dir}: this run already completed")
    config = schema.from_dict(run.recorded, f"--resume {run_dir}/config.json")
    backup = run.path / "backup"  # an edited config.json is refused before its data are read
    epoch = runs.latest_intact(backup)
    runs.check_settings_unchanged(backup, epoch, json.loads(json.dumps(schema.to_dict(config))),
                                  run.path / "config.json")
    if not epoch and (run.history or (run.path / "model.keras").exists()):  # results, but nothing to go on from
        raise UsageError(f"--resume {run_dir}: no intact backup to continue from, yet the folder holds results "
                         "(history.csv, model.keras); they would be overwritten: start a new run")
    with preserved():
        arrays, info = _data_then_tensorflow(config)
        from tf_assign2.training.trainer import Trainer, recorded_plan

        trainer = Trainer(config, arrays, info, plan=recorded_plan(run.path))
        return _run(trainer, run.path, resume=True)


def _data_then_tensorflow(config):
    """The run's data (local files read before TensorFlow starts, so their errors come at once), then
    TensorFlow started and seeded for the run, before anything else imports it."""
    arrays, info = load_data(config)
    from tf_assign2.training.startup import start_tensorflow

    start_tensorflow(config.seed, config.deterministic, config.devices)
    return arrays, info


def _run(trainer, run_dir, resume):
    """The run's first lines (its data, the plan, the folder), then the whole run with its visualisation."""
    from tf_assign2.analysis import training_visuals as visualization

    config = trainer.config
    if not config.quiet:
        print(describe_data(trainer.info), flush=True)
        print(f"plan: {trainer.plan.describe()}", flush=True)
    print(f"run directory: {run_dir}", flush=True)
    figures = visualization.for_run(config, run_dir, trainer.arrays.test_x)
    trainer.run(run_dir, resume=resume, extra_callbacks=figures)
    return Run(run_dir, model=trainer.model)


def load_data(config: schema.Config) -> tuple:
    """The run's arrays and what they are. Local files (PNG, idx) are read before TensorFlow starts, so
    every data error - a missing folder, a bad file, bad labels - comes within a second;
    tensorflow-datasets needs TensorFlow, so it is started first for that source."""
    from tf_assign2 import data

    source, _ = data.resolve_location(config.dataset, config.data_dir, config.source)
    if source == "tfds":
        from tf_assign2.training.startup import start_tensorflow

        start_tensorflow(config.seed, config.deterministic, config.devices)
    return data.load_arrays(config)


def describe_data(info):
    """The first line of a run: which data it read, from where, and how much of it."""
    shape = "x".join(map(str, info.image_shape))
    line = (f"data: {info.dataset} from {info.source} {info.location}: {info.n_train:,} train / {info.n_val:,} "
            f"validation / {info.n_test:,} test images of {shape}, {info.num_classes} classes")
    if info.source == "tfds":
        line += " (tensorflow-datasets, not the assignment's 1000/100 per class; --subset assignment gives those)"
    return line


# --------------------------------------------------------------------------- a run folder


class Run:
    """A run folder and what can be done with it: its settings, results, history, model and figures.

    ``train`` and ``resume`` return one; ``open_run(path)`` opens any run folder. The files are read
    when asked for, so a Run of a folder that another process is writing shows its latest state.
    """

    def __init__(self, path, model=None):
        self.path = Path(path)
        if not runs.is_run_dir(self.path):
            raise UsageError(f"{self.path}: not a run directory (no config.json)")
        self._model = model

    # ----------------------------------------------------------------------- what it recorded

    @property
    def recorded(self):
        """config.json as written: the settings, the plan, the data it read, versions and device."""
        return runs.read_json(self.path / "config.json")

    @property
    def config(self):
        """The run's settings (a validated ``Config``)."""
        return schema.from_dict(self.recorded, f"{self.path}/config.json")

    @property
    def summary(self):
        """summary.json ({} while the run has not ended)."""
        path = self.path / "summary.json"
        return runs.read_json(path) if path.is_file() else {}

    @property
    def status(self):
        """completed, diverged, interrupted, or unfinished (no summary.json: running, or killed)."""
        return self.summary.get("status", "unfinished")

    @property
    def test_accuracy(self):
        return self.summary.get("test_accuracy")

    @property
    def history(self):
        """history.csv as {column: [one value per epoch]}."""
        return runs.read_history(self.path / "history.csv")

    @property
    def model(self):
        """The trained Keras model (logits out): the one in memory if this process trained it, else
        model.keras, loaded in Keras' safe mode."""
        if self._model is None:
            self._model = load_model(self.path)
        return self._model

    # ----------------------------------------------------------------------- figures

    def curves(self):
        """The assignment's plots (loss, train/validation/test accuracy per epoch) as a matplotlib Figure."""
        from tf_assign2 import figures

        return figures.plot_curves(self.history, title=self.path.name)

    def filters(self, layer=None):
        """The first conv layer's filters (or ``layer``'s) as a matplotlib Figure."""
        from tf_assign2 import figures
        from tf_assign2.analysis.training_visuals import first_conv_kernel

        model = self.model
        try:
            found = (layer, model.get_layer(layer).kernel.numpy()) if layer else first_conv_kernel(model)
        except (ValueError, AttributeError):
            found = None
        if found is None:
            raise UsageError(f"{self.path}: the model has no conv layer {layer or ''}; there are no filters to draw")
        name, kernel = found
        return figures.plot_filters(kernel, title=f"{self.path.name}: {name} filters")

    def activation_statistics(self):
        """The conv layers' activation statistics on the test images after the last epoch (from
        activation_stats.json; the hidden state's per step for a recurrent model), as a table."""
        stats_path = self.path / "activation_stats.json"
        if stats_path.is_file():
            layers = runs.read_json(stats_path).get("layers", {})
            columns = ["layer", "mean", "std", "min", "max", "zero fraction"]
            rows = [[name, *(_number(s.get(k)) for k in ("mean", "std", "min", "max", "zero_fraction"))]
                    for name, s in layers.items()]
            return Table(columns, rows)
        hidden_path = self.path / "hidden_state_stats.json"
        if hidden_path.is_file():
            layers = runs.read_json(hidden_path).get("layers", {})
            columns = ["layer", "mean", "std", "min", "max"]
            rows = [[name, *(_number((s.get("overall") or s).get(k)) for k in ("mean", "std", "min", "max"))]
                    for name, s in layers.items()]
            return Table(columns, rows)
        raise UsageError(f"{self.path}: no activation statistics (the run was made with visualize off)")

    # ----------------------------------------------------------------------- what can be done with it

    def evaluate(self, tta=None, out=None, **data):
        """``python -m tf_assign2.evaluate RUN``: score the run's SavedModel on its test split (or on the data
        ``data`` names: dataset, data_dir, ntest ...); returns eval.json's record."""
        return evaluate(self.path, tta=tta, out=out, **data)

    def visualize(self, methods="none", out=None, **options):
        """``python -m tf_assign2.visualize RUN``: the Zeiler & Fergus figures and, with ``methods``
        (e.g. "all"), attribution maps and their scores; returns ``Figures`` ({file: what it is}, ``out``)."""
        return visualize(self.path, methods=methods, out=out, **options)

    def export(self, formats="onnx,litert"):
        """``python -m tf_assign2.export RUN --formats ...``: ONNX and/or LiteRT files beside the SavedModel;
        returns their records (file, bytes, converter, the check against the Keras model)."""
        return export(self.path, formats)

    def resume(self):
        """Continue this run if it was interrupted; returns the resumed Run."""
        return resume(self.path)

    # ----------------------------------------------------------------------- display

    def __repr__(self):
        return f"Run({str(self.path)!r}, status={self.status!r}, test_accuracy={self.test_accuracy!r})"

    def _repr_html_(self):
        summary, config = self.summary, self.recorded
        rows = [("status", summary.get("status", "unfinished")),
                ("model", config.get("model")), ("optimizer", f"{config.get('optimizer')} {config.get('lr'):g}"),
                ("epochs", f"{summary.get('epochs_completed', '')} of {summary.get('epochs_planned', config.get('epochs'))}"),
                ("test accuracy", _number(summary.get("test_accuracy"))),
                ("best validation accuracy", _number(summary.get("best_val_accuracy"))),
                ("training", f"{_number(summary.get('train_seconds'), 1)} s, "
                             f"{_number(summary.get('images_per_sec'), 0)} images/s")]
        table = html_table(["", ""], rows, with_header=False)
        return (f"<div><b>{html.escape(self.path.name)}</b> <code>{html.escape(str(self.path))}</code>{table}"
                f"{png_html(self.path / 'curves.png')}</div>")


def open_run(path: PathLike) -> "Run":
    """The ``Run`` of an existing run folder (``UsageError`` if ``path`` is not one)."""
    return Run(path)


def load_model(run_dir):
    """A run's model.keras (logits out), in Keras' safe mode; a clear error if it has none or is damaged."""
    import zipfile

    from tf_assign2 import files
    from tf_assign2.training.startup import start_tensorflow

    path = Path(run_dir) / "model.keras"
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"{run_dir}: no model.keras (did the run diverge or get interrupted?)")
    files.check_regular(path, "")
    if not zipfile.is_zipfile(path):  # Keras would call a truncated file "not found"
        raise UsageError(f"{path}: not a .keras file (a .keras file is a zip archive; this one is damaged or "
                         "truncated)")
    start_tensorflow()
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # a damaged archive inside: Keras raises many types
        raise UsageError(f"{path}: cannot load ({(str(e).splitlines() or [type(e).__name__])[0][:200]})") from None


# --------------------------------------------------------------------------- evaluate, visualize, export


def evaluate(path: PathLike, tta: str | None = None, out: PathLike | None = None, **data: Any) -> "Evaluation":
    """``python -m tf_assign2.evaluate PATH``: test accuracy, loss and confusion matrix of an export (a run
    folder's SavedModel, a SavedModel folder, or a model.onnx / model.tflite file) on a test split.

    A run's own data settings are used unless ``data`` overrides them (dataset, data_dir, source,
    ntest ...); a bare export defaults to the assignment's CIFAR10. Writes eval.json and
    confusion_matrix.png into ``out`` (default: a new eval-<timestamp>/ beside the model) and
    returns eval.json's record with ``out`` added.
    """
    from tf_assign2.analysis import evaluation as ev

    model_dir, fmt = ev.model_path(path)
    run_dir = model_dir.parent if runs.is_run_dir(model_dir.parent) else None
    given = schema.python_values({**data, "tta": tta}, "evaluate")
    cfg = _data_settings(run_dir, given)
    with preserved():
        from tf_assign2 import data as datasets
        from tf_assign2 import figures
        from tf_assign2.training.startup import start_tensorflow

        datasets.resolve_location(cfg.dataset, cfg.data_dir, cfg.source)  # before TensorFlow starts
        start_tensorflow()
        serve, input_shape, num_classes = ev.load_model(model_dir, fmt)
        test_x, test_y, info = datasets.load_test_split(cfg)
        ev.check_compatible(model_dir, input_shape, num_classes, info)
        result = ev.evaluate(serve, test_x, test_y, num_classes, tta=cfg.tta, where=str(model_dir))
        _compare_test_data(run_dir, test_x, test_y, info, result)
        out = Path(out) if out else runs.timestamped_subdir(run_dir or model_dir.parent, "eval")
        out.mkdir(parents=True, exist_ok=True)
        result.update({"model": str(model_dir), "format": fmt, "dataset": info.dataset, "data_location": info.location})
        if fmt == "saved_model":
            result["saved_model"] = str(model_dir)
        if run_dir is not None and (run_dir / "summary.json").is_file():
            run_tta = runs.read_json(run_dir / "config.json").get("tta", "none")  # the figures the run recorded
            result.update(ev.run_accuracy(ev.run_figures(runs.read_json(run_dir / "summary.json"), run_tta, cfg.tta),
                                          fmt))
        runs.write_json(out / "eval.json", result)
        figures.plot_confusion_matrix(result["confusion_matrix"], info.class_names, out / "confusion_matrix.png",
                                      title=f"{model_dir} on {info.dataset} test ({result['accuracy']:.4f})")
    return Evaluation({**result, "tta": cfg.tta, "out": str(out)})


def _data_settings(run_dir, given):
    """The settings evaluate and visualize read - which data, and test-time augmentation: the run's
    recorded ones (none for a bare export) with ``given`` over them. Only these are read from the
    record, so a run of a model registered in another process is evaluated all the same. Unless told
    where else to look, a run's test data are read where the run read them (its fingerprint's absolute
    folder), from whatever folder this is called in."""
    keep = {name for name, s in schema.SETTINGS.items() if s.group == "data"} | {"tta"}
    recorded = runs.read_json(Path(run_dir) / "config.json") if run_dir is not None else {"task": "cifar"}
    where = f"{run_dir}/config.json" if run_dir is not None else "evaluate"
    values = {k: v for k, v in recorded.items() if k in keep and k != "task" and v is not None}
    fingerprint = recorded.get("test_data") or {}
    elsewhere = any(name in ("dataset", "source", "data_dir", "tfds_data_dir", "native", "subset") for name in given)
    if not elsewhere and fingerprint.get("source") in ("png", "idx") and Path(fingerprint["location"]).is_dir():
        values.update(data_dir=fingerprint["location"], source=fingerprint["source"])
    return schema.build(recorded.get("task", "cifar"), schema.file_values(values, where), given)


def _compare_test_data(run_dir, test_x, test_y, info, result):
    """Say in one line (and in eval.json) when the test split evaluated is not the one the run was scored on."""
    from tf_assign2 import data

    found = data.test_fingerprint(test_x, test_y, info)
    result["test_data"] = found
    recorded = runs.read_json(Path(run_dir) / "config.json").get("test_data") if run_dir is not None else None
    if not recorded:
        return
    difference = data.fingerprint_difference(recorded, found)
    result["test_data_differs_from_run"] = bool(difference)
    if difference:
        result["run_test_data"] = recorded
        print(f"note: these test data differ from the ones the run was scored on ({difference}); its recorded "
              "test accuracy is not comparable with this one", flush=True)


def visualize(run_dir: PathLike, methods: str = "none", out: PathLike | None = None, layer: str | None = None,
              maps: int = 16, images: str | None = None, occluder: int = 7, stride: int = 1, shared_scale: bool = False,
              gradcam_layers: str | None = None, score_images: int = 100, figure_images: int = 6, baseline: float = 0.0,
              **data: Any) -> "Figures":
    """``python -m tf_assign2.visualize RUN``: the Zeiler & Fergus figures of a finished run (top-9 patches,
    deconvnet, occlusion, activation statistics, filters) and, with ``methods`` ("all", or a comma list of
    saliency, smoothgrad, ig, gradcam, occlusion), attribution maps and their deletion/insertion scores.
    Returns ``Figures``: {file name: what it is}, with ``out``, the folder (default: a new
    visualize-<timestamp>/ in the run); in Jupyter the figures show inline."""
    from tf_assign2.analysis import attribution

    run = open_run(run_dir)
    if not (run.path / "model.keras").is_file():
        raise UsageError(f"{run.path}: no model.keras (did the run diverge or get interrupted?)")
    attribution.resolve_methods(methods, None)  # unknown names: before TensorFlow starts
    cfg = _data_settings(run.path, schema.python_values(data, "visualize"))
    with preserved():
        from tf_assign2 import data as datasets
        from tf_assign2.analysis.zeiler_fergus import visualize as zeiler_fergus

        datasets.resolve_location(cfg.dataset, cfg.data_dir, cfg.source)
        model = run.model
        test_x, test_y, info = datasets.load_test_split(cfg)
        if tuple(model.input.shape[1:]) != tuple(test_x.shape[1:]):
            raise UsageError(f"{run.path}: model expects images of shape {tuple(model.input.shape[1:])}, "
                             f"the data has {tuple(test_x.shape[1:])}")
        layers = [name.strip() for name in gradcam_layers.split(",") if name.strip()] if gradcam_layers else None
        chosen = attribution.resolve_methods(methods, model, layers)  # bad input fails before any file
        if chosen and not attribution.conv_layers(model):  # "all" on a model without conv layers
            print("Grad-CAM: not applicable, the model has no conv layer")
        out = Path(out) if out else runs.timestamped_subdir(run.path, "visualize")
        written = zeiler_fergus(model, test_x, test_y, info.class_names, out, run_dir=run.path, layer=layer,
                                maps=maps, images=images, occluder=occluder, stride=stride, shared_scale=shared_scale)
        if chosen:
            more, record = attribution.write_report(
                model, test_x, test_y, info.class_names, out, chosen, figure_images=images,
                figure_count=figure_images, score_count=score_images, baseline=baseline,
                occluder=occluder, stride=stride)
            written.update(more)
            listing = runs.read_json(out / "visualize.json")
            listing["files"].update(more)
            runs.write_json(out / "visualize.json", {**listing, **record})
    return Figures(written, out)


def export(run_dir: PathLike, formats: str = "onnx,litert") -> dict:
    """``python -m tf_assign2.export RUN``: model.onnx and/or model.tflite of a finished run beside its
    SavedModel, each checked against the Keras model and recorded in exports.json (a line per file);
    returns the records.
    A run computed in 16 bits also gets the float32 test figures these files reproduce."""
    from tf_assign2.training import export as exporting

    if isinstance(formats, (list, tuple)):
        formats = ",".join(formats)
    wanted = exporting.parse_formats(formats)  # unknown names, missing converters: before TensorFlow starts
    run = open_run(run_dir)
    if not (run.path / "model.keras").is_file():
        raise UsageError(f"{run.path}: no model.keras (did the run diverge or get interrupted?)")
    with preserved():
        model = run.model
        with runs.owned(run.path, "run folder"):
            records = exporting.export_formats(model, run.path, wanted)  # the others still written
            if records:
                record_float32_figures(run.path, model)
    for record in records.values():
        check = record.get("check")
        checked = (f"; max |p - Keras| {check['max_abs_diff']:.2e} on {check['images']} images ({check['runtime']})"
                   if check else "; not checked (no runtime installed)")
        print(f"wrote {run.path / record['file']} ({record['bytes']:,} bytes, {record['converter']}){checked}")
    failed = [f for f in wanted if f not in records]
    if failed:
        raise UsageError(f"--formats {','.join(failed)}: the converter failed (see the warning above); "
                         f"{', '.join(records) or 'nothing'} written")
    return records


def record_float32_figures(run_dir, model):
    """Add the float32 test figures to summary.json of a run computed in 16 bits (a run trained without
    the export extra did not compute them): what its ONNX/LiteRT files reproduce, and evaluate compares."""
    from tf_assign2.training.trainer import Trainer, recorded_plan

    run = open_run(run_dir)
    plan = recorded_plan(run.path)
    summary = run.summary
    if not summary or plan is None or plan.precision == "float32" or summary.get("test_accuracy_float32") is not None:
        return
    config = run.config
    arrays, info = load_data(config)
    summary.update(Trainer(config, arrays, info, plan=plan).float32_test_metrics(model))
    runs.write_json(run.path / "summary.json", summary)
    print(f"run computed in {plan.precision}: test accuracy {summary['test_accuracy']:.4f}; its weights in float32, "
          f"as the files compute: {summary['test_accuracy_float32']:.4f} (added to summary.json)")


# --------------------------------------------------------------------------- experiments


@dataclasses.dataclass
class SweepResults:
    """What ``sweep`` returns: the sweep folder and one row per entry (its settings and outcome)."""

    path: Path
    name: str
    task: str
    rows: list
    interrupted: bool = False
    entries: list = ()  # (name, the entry's own settings) in the sweep's order

    def __repr__(self):
        return f"SweepResults({str(self.path)!r}, {_counts(self.rows)}{', interrupted' if self.interrupted else ''})"

    @property
    def runs(self):
        """The Run of each entry that has one, in the sweep's order."""
        return [Run(row["path"]) for row in self.rows if row.get("path")]

    def table(self):
        """results.md's table: the settings that vary and each entry's outcome."""
        from tf_assign2.experiments.sweep import results_table

        return Table(*results_table(self.rows))

    def _repr_html_(self):
        title = f"<b>sweep {html.escape(self.name)}</b> ({self.task}) <code>{html.escape(str(self.path))}</code>"
        return f"<div>{title}{self.table()._repr_html_()}{png_html(self.path / 'overlay.png')}</div>"


def sweep(spec: PathLike | dict, out: PathLike | None = None, dry_run: bool = False, max_entries: int | None = None,
          chief: str | None = None, worker: str | None = None, **overrides: Any) -> "SweepResults":
    """``python -m tf_assign2.sweep FILE``: every entry of a sweep as a normal training run (``train``),
    resumably: the same call again continues it. ``spec`` is a sweep YAML file or the same as a dict;
    ``overrides`` are settings applied to every entry (as the sweep command's training flags).
    ``chief``/``worker`` spread one sweep over several machines. Returns ``SweepResults``.
    """
    from tf_assign2.experiments import sweep as sweeps

    loaded = sweeps.load_sweep(spec, max_entries or sweeps.MAX_ENTRIES)
    out = Path(out) if out else sweeps.default_out(loaded)
    overrides = schema.python_values(overrides, "sweep")
    for name in sweeps.NOT_IN_SWEEPS:
        if name in overrides:
            raise UsageError(f"{schema.flag_name(name)}: not allowed with a sweep (each entry's run goes to "
                             "runs/<entry>/ under --out; re-run the sweep to resume it)")
    from tf_assign2.experiments.tune import distribution

    role, env = distribution(chief, worker)
    if dry_run:
        planned = sweeps.plan(loaded, out, overrides)
        sweeps.check_out(out, loaded, planned)
        return SweepResults(out, loaded["name"], loaded["task"], sweeps.result_rows(out, planned),
                            entries=loaded["entries"])
    with preserved():
        from tf_assign2.training.startup import start_tensorflow

        start_tensorflow()  # import it quietly now; each run seeds it again
        if role == "standalone":
            rows, interrupted = sweeps.run_sweep(loaded, out, train, resume, overrides)
        else:
            from tf_assign2.experiments import sweep_cluster

            os.environ.update(env)  # keras-tuner reads its KERASTUNER_* variables
            if role == "chief":
                rows, interrupted = sweep_cluster.run_chief(loaded, out, overrides)
            else:
                rows, interrupted = sweep_cluster.run_worker(loaded, out, train, resume, overrides)
    return SweepResults(out, loaded["name"], loaded["task"], rows, interrupted, loaded["entries"])


@dataclasses.dataclass
class SearchResults:
    """What ``tune`` returns: the project folder, one row per trial, the best trial and its retrained run.

    ``outcome``: completed; failed (every trial failed); diverged (the best retrain diverged);
    interrupted; or worker (this process was a worker: the chief holds the results).
    """

    path: Path
    rows: list
    best: dict = None
    run: Run = None
    outcome: str = "completed"

    def __repr__(self):
        best = f", best trial {self.best['trial_id']}" if self.best else ""
        return f"SearchResults({str(self.path)!r}, {self.outcome}, {_counts(self.rows)}{best})"

    def _repr_html_(self):
        columns = [c for c in (self.rows[0] if self.rows else {}) if c != "note"]
        cells = [[_number(r.get(c)) if isinstance(r.get(c), float) else str(r.get(c) or "") for c in columns]
                 for r in self.rows]
        best = ""
        if self.best:
            best = (f"<p>best trial {html.escape(str(self.best.get('trial_id')))}, chosen on validation accuracy "
                    f"{_number(self.best.get('val_accuracy'))}; retrained: test accuracy "
                    f"{_number(self.best.get('test_accuracy'))}</p>")
        return (f"<div><b>search</b> <code>{html.escape(str(self.path))}</code> ({self.outcome}){best}"
                f"{html_table(columns, cells)}{png_html(self.path / 'search.png')}</div>")


def tune(task: str, tuner: str = "random", max_trials: int | None = None, epochs: int | None = None,
         max_epochs: int | None = None, factor: int | None = None, initial_points: int | None = None,
         space: PathLike | dict | None = None, directory: PathLike = "runs/tune", project_name: str | None = None,
         overwrite: bool = False, chief: str | None = None, worker: str | None = None,
         config: PathLike | None = None, **values: Any) -> "SearchResults":
    """``python -m tf_assign2.tune TASK``: a keras-tuner search scored on the validation split, then the best
    hyperparameters retrained as a normal run (``train``) and tested. Re-running it continues the search.

    ``space`` is a search-space YAML file or a dict of the same (hyperparameter -> list of choices,
    {min, max, step, sampling} range, or one value); default: the task's built-in space. ``values``
    (and the YAML file ``config``) are the fixed training settings of every trial. Returns
    ``SearchResults``.
    """
    from tf_assign2.experiments import tune as tuning

    search = tuning.make_search(task, tuner, max_trials, epochs, max_epochs, factor, initial_points, directory,
                                project_name, overwrite, chief, worker)
    checked_space = tuning.space_from(space, task)
    if epochs is not None or max_epochs is not None:
        values["epochs"] = epochs or max_epochs
    base = settings(task, config=config, **values)
    if base.val_split <= 0:
        raise UsageError("--val-split 0: the search is scored on a validation split; give a fraction in (0, 1)")
    from tf_assign2 import data

    data.resolve_location(base.dataset, base.data_dir, base.source)  # before TensorFlow starts
    with preserved():
        from tf_assign2.training.startup import start_tensorflow

        os.environ.update(search.environment)
        start_tensorflow(base.seed, base.deterministic)
        outcome, rows, best, run_dir = tuning.run_search(search, base, checked_space, train, resume)
    return SearchResults(search.project_dir, rows, best, Run(run_dir) if run_dir else None, outcome)


def search_space(task: str) -> dict:
    """``python -m tf_assign2.tune TASK --print-space``: the task's built-in search space as a dict (hyperparameter
    -> list of choices or {min, max, step, sampling} range), read from the settings schema; edit it and pass it
    to ``tune(task, space=...)``. ``search_space(task)["units"] = [64, 128]`` narrows one hyperparameter."""
    from tf_assign2.experiments import tune as tuning

    if task not in schema.TASKS:
        raise UsageError(f"search_space({task!r}): expected a task, one of {', '.join(schema.TASKS)}")
    return tuning.default_space(task)


def report(paths: list, out: PathLike | None = None, command: str | None = None) -> Path:
    """``python -m tf_assign2.report PATH...``: REPORT.md and its figures from finished runs and sweeps;
    returns the path of REPORT.md (default folder: a new reports/report-<timestamp>/)."""
    from tf_assign2.experiments.report import build_report

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    with preserved():
        from tf_assign2.training.startup import start_tensorflow

        start_tensorflow()  # reading histories imports it; keep its start-up chatter quiet
        command = command or "tf_assign2.report(" + ", ".join(repr(str(p)) for p in paths) + ")"
        return Path(build_report([str(p) for p in paths], out, command))


# --------------------------------------------------------------------------- display


@dataclasses.dataclass
class Table:
    """Rows of formatted cells under column names: an HTML table in Jupyter, Markdown as text."""

    columns: list
    rows: list

    def _repr_html_(self):
        return html_table(self.columns, self.rows)

    def __str__(self):
        lines = ["| " + " | ".join(map(str, self.columns)) + " |", "|" + "---|" * len(self.columns)]
        return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in self.rows])


class Figures(dict):
    """What ``visualize`` wrote: {file name: what it is}, in the folder ``out``; in Jupyter every
    figure shows inline under its description."""

    def __init__(self, written, out):
        super().__init__(written)
        self.out = Path(out)

    def _repr_html_(self):
        parts = [f"<p><code>{html.escape(str(self.out))}</code>: {len(self)} files</p>"]
        for name, what in self.items():
            if name.endswith(".png"):
                parts.append(f"<p><b>{html.escape(name)}</b>: {html.escape(str(what))}</p>{png_html(self.out / name)}")
        return "<div>" + "".join(parts) + "</div>"


class Evaluation(dict):
    """eval.json's record (accuracy, loss, confusion matrix ...) with ``out``; in Jupyter the score and
    the confusion matrix."""

    def _repr_html_(self):
        line = f"test accuracy {self['accuracy']:.4f} on {self['n_test']} images ({html.escape(self['format'])})"
        if self.get("tta", "none") != "none":
            line += f", test-time augmentation {html.escape(self['tta'])} (without: {self['accuracy_no_tta']:.4f})"
        return f"<div><p>{line}</p>{png_html(Path(self['out']) / 'confusion_matrix.png', 480)}</div>"




def _counts(rows):
    """'3 entries: 2 completed, 1 diverged'."""
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return f"{len(rows)} rows: " + ", ".join(f"{n} {status}" for status, n in counts.items())


def _number(value, digits=4):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def html_table(header, rows, with_header=True):
    """A small HTML table of formatted cells (escaped here)."""
    head = ("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>") if with_header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def png_html(path, width=720):
    """An inline <img> of a PNG file ('' if there is none), so the display needs no file server."""
    path = Path(path)
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" style="max-width:{width}px"/>'


def in_notebook():
    """True inside a Jupyter (IPython) kernel: progress is drawn there as on a terminal."""
    return "ipykernel" in sys.modules
