"""keras-tuner searches over the shared models: `python -m tf_assign2.tune cifar|mnist`.

The assignment asks students to search learning rate, training method and hidden units.
This module turns that into one resumable command:

    search space (the settings schema's ``search`` entries, or a YAML file; ``--print-space``)
        -> a keras-tuner HyperModel that builds the models of ``models.py`` and trains them
           on the train split, scored on the validation split (the test split is never seen)
        -> RandomSearch | BayesianOptimization | Hyperband, objective val_accuracy
        -> trials.csv, best_hyperparameters.json, search.png in the project directory
        -> the best hyperparameters retrained with ``tf_assign2.train``: a normal run directory
           (SavedModel, test accuracy) under ``<project>/best/``.

keras-tuner keeps its state in the project directory, so re-running the same command
continues the search and never reruns a finished trial (``--overwrite`` starts again).
Diverged trials (NaN/Inf loss) report a NaN objective, which keras-tuner 1.4 records as a
FAILED trial; the search goes on. Scale-out uses keras-tuner's own chief/worker mode over
gRPC (``--chief HOST:PORT``, ``--worker ID`` or the ``KERASTUNER_*`` variables).

Nothing here imports TensorFlow at module level, so ``--help`` and input errors answer at once.
"""

import csv
import dataclasses
import difflib
import io
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

from tf_assign2 import config as schema
from tf_assign2.errors import UsageError
from tf_assign2.models import MODELS

TUNERS = ("random", "bayesian", "hyperband")
OBJECTIVE = "val_accuracy"
SAMPLINGS = ("linear", "log")
RANGE_FIELDS = ("min", "max", "step", "sampling")
# keras-tuner stops a search after this many consecutive failed trials (default 3); a search
# here goes on, and fails only when every trial failed.
NEVER = 2**31

# --------------------------------------------------------------------------- search spaces


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one hyperparameter accepts: its type, the tasks it exists for, and valid values (from the schema)."""

    setting: str  # the setting it varies (conv1_filters varies an entry of conv_filters)
    type: type
    tasks: tuple
    ok: object
    expected: str


def _rule(setting):
    """A hyperparameter of ``setting`` (or of one entry of a pair setting), checked by that setting's schema and
    its ``Search``, for the tasks whose default model reads it (every task for a setting that is not a model's)."""
    rule = schema.SETTINGS[setting]
    search = rule.search
    task_models = {task: schema.task_defaults(task)["model"] for task in schema.TASKS}
    if any(setting in spec.settings for spec in MODELS.values()):
        tasks = tuple(task for task, model in task_models.items() if setting in MODELS[model].settings)
    else:
        tasks = schema.TASKS
    if search.parts:
        def ok(v):
            return search.part_low <= v <= search.part_high

        return Rule(setting, int, tasks, ok, f"an integer >= {search.part_low} and <= {search.part_high}")

    def ok(v):
        return schema.problem_with(setting, rule, v) is None and (search.high is None or v <= search.high)

    expected = rule.describe() if search.high is None else f"a learning rate in (0, {search.high:g}]"
    return Rule(setting, rule.kind, tasks, ok, expected)


def _hyperparameters():
    """Every hyperparameter a search may vary, in the schema's order: one per searchable setting, or one per
    entry of a pair setting (conv1_filters, conv2_filters)."""
    rules = {}
    for setting in schema.SEARCHABLE:
        for name in schema.SETTINGS[setting].search.parts or (setting,):
            rules[name] = _rule(setting)
    return rules


HYPERPARAMETERS = _hyperparameters()
# search.png: marker shape by this hyperparameter, colour by optimizer.
MARKER_BY = {"cifar": "fc_units", "mnist": "cell"}


def default_space(task):
    """The built-in space of ``task``: every searchable setting's default entry (``Search.default``) that the
    task's model reads, in their ``Search.order``, in the same checked form a YAML file gives."""
    space = {}
    for setting in sorted(schema.SEARCHABLE, key=lambda name: schema.SETTINGS[name].search.order):
        search = schema.SETTINGS[setting].search
        if search.default is None:
            continue
        entries = zip(search.parts, search.default) if search.parts else [(setting, search.default)]
        space.update({name: entry for name, entry in entries if task in HYPERPARAMETERS[name].tasks})
    return validate_space(space, task, "built-in space")


SPACE_HELP = """\
# The built-in search space of `python -m tf_assign2.tune {task}` (printed by --print-space; copy and edit,
# then pass it with --space FILE). The file is the whole space: a hyperparameter it does not name keeps the
# normal training default.
#
#   name: [a, b, c]                                    a choice
#   name: {{min: .., max: .., sampling: log, step: ..}}  a range (sampling linear or log;
#                                                      step adds for linear, multiplies for log)
#   name: value                                        fixed
#
# {task} names: {names}.
"""


def space_text(task):
    """The built-in space of ``task`` as a commented YAML file (``tune --print-space``)."""
    import yaml

    names = ", ".join(name for name, rule in HYPERPARAMETERS.items() if task in rule.tasks)
    body = yaml.safe_dump(default_space(task), sort_keys=False, default_flow_style=None)
    return SPACE_HELP.format(task=task, names=names) + body


def load_space(path, task):
    """Read and validate a YAML search space; the file is the whole space.

    Each key names a hyperparameter; its value is a list (a choice), a mapping
    ``{min, max, step, sampling}`` (a range, sampling linear or log) or one value (fixed).
    Hyperparameters the file does not name keep the normal training default.
    """
    values = schema.read_yaml(path, "--space")  # the hardened reader: size, depth, no aliases
    if not values:
        raise UsageError(f"--space {path}: expected a mapping of hyperparameter names to choices or ranges")
    return validate_space(values, task, f"--space {path}")


def validate_space(values, task, where):
    """Check every entry of a space (unknown names, bad values, bad ranges); returns a clean copy."""
    allowed = [name for name, rule in HYPERPARAMETERS.items() if task in rule.tasks]
    space = {}
    for key, value in values.items():
        name = str(key)
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"expected one of {', '.join(allowed)}"
            raise UsageError(f"{where}: unknown hyperparameter '{name}' for {task} ({hint})")
        space[name] = _check_entry(name, value, HYPERPARAMETERS[name], f"{where}: {name}")
    return space


def _check_entry(name, value, rule, where):
    if isinstance(value, list):
        if not value:
            raise UsageError(f"{where}: empty list; expected at least one choice")
        choices = [_check_value(v, rule, where) for v in value]
        if len(set(choices)) != len(choices):
            raise UsageError(f"{where}: repeated choices in {value}")
        return choices
    if isinstance(value, dict):
        return _check_range(value, rule, where)
    return _check_value(value, rule, where)


def _check_range(value, rule, where):
    if rule.type is str:
        raise UsageError(f"{where}: a range is not possible here; expected a list of choices or one value")
    unknown = [str(k) for k in value if k not in RANGE_FIELDS]
    if unknown:
        raise UsageError(f"{where}: unknown field '{unknown[0]}'; a range has {', '.join(RANGE_FIELDS)}")
    if "min" not in value or "max" not in value:
        raise UsageError(f"{where}: a range needs both min and max")
    low, high = _check_value(value["min"], rule, f"{where}: min"), _check_value(value["max"], rule, f"{where}: max")
    if not low < high:
        raise UsageError(f"{where}: min {low} must be below max {high}")
    sampling = value.get("sampling", "linear")
    if sampling not in SAMPLINGS:
        raise UsageError(f"{where}: sampling {sampling!r}; expected linear or log")
    if sampling == "log" and low <= 0:
        raise UsageError(f"{where}: log sampling needs min > 0, got {low}")
    checked = {"min": low, "max": high, "sampling": sampling}
    if value.get("step") is not None:
        step = _number(value["step"], rule.type, f"{where}: step")
        # keras-tuner's step is added for linear sampling and multiplies for log sampling.
        if (sampling == "log" and not step > 1) or (sampling == "linear" and not 0 < step <= high - low):
            expected = "a factor > 1 for log sampling" if sampling == "log" else f"a number in (0, {high - low}]"
            raise UsageError(f"{where}: step {step}; expected {expected}")
        checked["step"] = step
    return checked


def _check_value(value, rule, where):
    if rule.type is str:
        if not isinstance(value, str) or not rule.ok(value):
            raise UsageError(f"{where}: {value!r}; expected {rule.expected}")
        return value
    number = _number(value, rule.type, where)
    if not rule.ok(number):
        raise UsageError(f"{where}: {value!r}; expected {rule.expected}")
    return number


def _number(value, kind, where):
    """YAML numbers (or numeric text: PyYAML reads ``1e-4`` without a dot as a string)."""
    if isinstance(value, bool):
        value = None
    try:
        if kind is int:
            number = int(value) if isinstance(value, (int, str)) else None
        else:
            number = float(value) if isinstance(value, (int, float, str)) else None
    except ValueError:
        number = None
    if number is None or (kind is float and not math.isfinite(number)):
        raise UsageError(f"{where}: {value!r}; expected {'an integer' if kind is int else 'a number'}")
    return number


def declare(hp, name, spec):
    """Declare one space entry on a keras_tuner.HyperParameters and return this trial's value."""
    if isinstance(spec, list):
        return hp.Choice(name, spec) if len(spec) > 1 else hp.Fixed(name, spec[0])
    if isinstance(spec, dict):
        make = hp.Int if HYPERPARAMETERS[name].type is int else hp.Float
        return make(name, spec["min"], spec["max"], step=spec.get("step"), sampling=spec["sampling"])
    return hp.Fixed(name, spec)


def trial_config(base, values):
    """The run config of one trial: the base settings with the trial's hyperparameter values.

    ``values`` may hold keras-tuner's own ``tuner/...`` entries (Hyperband); they are ignored. The
    entries of a pair setting (conv1_filters, conv2_filters) replace their places in its tuple.
    """
    changes = {}
    for name, value in values.items():
        rule = HYPERPARAMETERS.get(name)
        if rule is None:
            continue
        parts = schema.SETTINGS[rule.setting].search.parts
        if parts:
            entries = list(changes.get(rule.setting, getattr(base, rule.setting)))
            entries[parts.index(name)] = value
            changes[rule.setting] = tuple(entries)
        else:
            changes[name] = value
    return dataclasses.replace(base, **changes)


# --------------------------------------------------------------------------- the hypermodel


def custom_gradient_names():
    """Names in TensorFlow's global gradient registry (empty if its private layout changed)."""
    from tensorflow.python.framework import ops

    return set(getattr(getattr(ops, "_gradient_registry", None), "_registry", None) or ())


def forget_custom_gradients(keep):
    """Drop the ``CustomGradient-N`` entries TensorFlow registered since ``keep`` was taken.

    Why: ``keras.backend.clear_session()`` is not enough with TF 2.21. Every traced train step
    registers a graph-mode custom gradient (Keras' optimizer all-reduces gradients through
    ``tf.custom_gradient``) in a global registry that is never cleaned, and the entry pins
    that trial's FuncGraph and, through its captures, the model's and optimizer's variables:
    about 50 MB more per LeNet5/Adam trial (tensorflow/tensorflow#97697, keras-team/tf-keras#286).
    Call it only between trials, when the functions that used those entries are gone.
    """
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if isinstance(registry, dict):
        for name in [n for n in registry if n.startswith("CustomGradient-") and n not in keep]:
            del registry[name]


def make_hypermodel(base, space, arrays, info, worker=None):
    """The keras-tuner HyperModel of a search (``experiments.hypermodel``, imported here so that this module
    loads without TensorFlow)."""
    from tf_assign2.experiments.hypermodel import SearchHyperModel

    return SearchHyperModel(base, space, arrays, info, worker)


def make_tuner(kind, hypermodel, project_dir, epochs, seed, max_trials=None, initial_points=None, factor=3):
    import keras_tuner

    common = {
        "hypermodel": hypermodel,
        "objective": keras_tuner.Objective(OBJECTIVE, direction="max"),
        # keras-tuner reads seed 0 as "pick one at random"; shift so every seed is kept.
        "seed": seed % 2**31 + 1,
        "directory": str(project_dir.parent),
        "project_name": project_dir.name,
        "overwrite": False,  # --overwrite is handled by prepare_project (keeps search.json)
        "max_retries_per_trial": 0,
        "max_consecutive_failed_trials": NEVER,
    }
    if kind == "random":
        return keras_tuner.RandomSearch(max_trials=max_trials, **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(max_trials=max_trials, num_initial_points=initial_points, **common)
    return keras_tuner.Hyperband(max_epochs=epochs, factor=factor, **common)


# --------------------------------------------------------------------------- distributed mode

TUNER_ID, ORACLE_IP, ORACLE_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"


def distribution(chief=None, worker=None, environ=None):
    """Settle this process's role from --chief/--worker or the KERASTUNER_* variables.

    Returns ``(role, env)``: role is "standalone", "chief" or "worker"; env holds the
    variables keras-tuner must see (flags win over the environment). keras-tuner treats any
    tuner ID containing "chief" as the chief, so worker IDs may not contain it.
    """
    environ = dict(os.environ if environ is None else environ)
    env = {}
    if chief is not None:
        host, sep, port = chief.rpartition(":")
        if not sep or not host:
            raise UsageError(f"--chief {chief}: expected HOST:PORT, e.g. 127.0.0.1:8000")
        env = {ORACLE_IP: host.strip("[]"), ORACLE_PORT: port, TUNER_ID: worker or "chief"}
    elif worker is not None:
        if ORACLE_IP not in environ or ORACLE_PORT not in environ:
            raise UsageError(f"--worker {worker}: also give --chief HOST:PORT (or set {ORACLE_IP} and {ORACLE_PORT})")
        env = {TUNER_ID: worker}
    elif ORACLE_IP in environ:
        missing = [name for name in (ORACLE_PORT, TUNER_ID) if not environ.get(name)]
        if missing:
            raise UsageError(f"{ORACLE_IP} is set but {' and '.join(missing)} is not: set both, or use --chief/--worker")
    else:
        return "standalone", {}
    merged = {**environ, **env}
    port = merged[ORACLE_PORT]
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"oracle port {port!r} (--chief or {ORACLE_PORT}): expected a port number 1..65535")
    tuner_id = merged[TUNER_ID]
    if worker is not None and ("chief" in worker or not re.fullmatch(r"[A-Za-z0-9_.-]+", worker)):
        raise UsageError(f"--worker {worker}: expected an ID of letters, digits, _ . - without 'chief' (e.g. tuner0)")
    role = "chief" if "chief" in tuner_id else "worker"
    if role == "chief" and not is_loopback(merged[ORACLE_IP]):
        raise UsageError(f"--chief {merged[ORACLE_IP]}:{port}: the chief's port has no authentication, so it listens "
                         "on this machine only: give 127.0.0.1:PORT, and let workers elsewhere reach it through an "
                         "SSH tunnel (ssh -N -L PORT:127.0.0.1:PORT chief-host; see docs/experiments.md)")
    return role, env


def is_loopback(host):
    """True for an address only this machine can reach: 127.0.0.0/8, ::1 or localhost."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- project directory


def settings_record(search, base, space, info):
    """The settings a project is bound to; resuming with other settings would mix two searches."""
    ignored = {"runs_dir", "visualize", "test_curve", "export", "data_dir", "source", "tfds_data_dir"}
    return {
        "task": search.task,
        "tuner": search.tuner,
        "space": space,
        "factor": search.factor if search.tuner == "hyperband" else None,
        "config": {k: v for k, v in schema.to_dict(base).items() if k not in ignored},
        "data": {"dataset": info.dataset, "n_train": info.n_train, "n_val": info.n_val,
                 "image_shape": list(info.image_shape), "num_classes": info.num_classes},
    }


def prepare_project(project_dir, record, overwrite):
    """Start, continue (same settings) or, with --overwrite, restart a project directory."""
    from tf_assign2 import runs

    marker = project_dir / "search.json"
    if overwrite and project_dir.exists():
        contents = [p for p in project_dir.iterdir() if p.name != runs.LOCK_FILE]  # the lock stays held
        if contents and not (marker.is_file() or (project_dir / "oracle.json").is_file()):
            raise UsageError(f"--overwrite: {project_dir} is not a tuning project (no search.json); not deleting it")
        for path in contents:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    try:
        project_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--directory: cannot create {project_dir} ({e.strerror or e})") from None
    if marker.is_file():
        changed = _differences(runs.read_json(marker), json.loads(json.dumps(record)))
        if changed:
            raise UsageError(
                f"{project_dir} holds a search with other settings ({', '.join(changed)} differ): "
                "repeat its command to continue it, add --overwrite to start again, or choose another --project-name"
            )
        return True
    if (project_dir / "oracle.json").is_file():
        raise UsageError(f"{project_dir}: a keras-tuner project without search.json; add --overwrite or choose another --project-name")
    runs.write_json(marker, record)
    return False


def _differences(saved, fresh):
    """Names of the settings that differ ("config.epochs", "space", ...).

    A config setting added by a later version is missing from an older project's record; the
    search ran with its default, so only a non-default value counts as a change.
    """
    changed = []
    for key, value in fresh.items():
        old = saved.get(key)
        if key == "config" and isinstance(old, dict):
            old = schema.with_new_defaults(old)
        if key != "space" and isinstance(value, dict) and isinstance(old, dict):
            changed += [f"{key}.{k}" for k in value if old.get(k) != value[k]]
        elif old != value:
            changed.append(key)
    return changed


# --------------------------------------------------------------------------- outputs


def trial_rows(trials, space_names):
    """One dict per trial for trials.csv: id, status, hyperparameters, score, epochs, seconds, memory."""
    rows = []
    for trial in sorted(trials, key=lambda t: int(t.trial_id)):
        metrics = {name: trial.metrics.get_last_value(name)
                   for name in (OBJECTIVE, "epochs", "seconds", "rss_mb", "diverged") if trial.metrics.exists(name)}
        values = trial.hyperparameters.values
        row = {"trial_id": trial.trial_id, "status": str(trial.status).lower()}
        row.update({name: values.get(name) for name in space_names})
        row.update({name: value for name, value in values.items() if name.startswith("tuner/")})
        score = trial.score if trial.status == "COMPLETED" else None
        epochs = metrics.get("epochs")
        row.update({
            OBJECTIVE: score,
            "epochs": int(epochs) if epochs is not None and math.isfinite(epochs) else None,
            "seconds": metrics.get("seconds"),
            "rss_mb": metrics.get("rss_mb"),
            "note": _note(trial, metrics),
        })
        rows.append(row)
    return rows


def _note(trial, metrics):
    if metrics.get("diverged"):
        return f"diverged (NaN/Inf loss) in epoch {int(metrics['epochs'])}"
    if trial.status in ("FAILED", "INVALID"):
        lines = [line for line in (trial.message or "").splitlines() if line.strip()]
        return (lines[-1].strip()[:200] if lines else "failed (no message reached the chief)")
    if trial.status == "RUNNING":
        return "interrupted; re-run the command to continue"
    return ""


def write_trials_csv(rows, path):
    from tf_assign2 import runs

    columns = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    if "note" in columns:  # keep the free text last
        columns.remove("note")
        columns.append("note")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns or ["trial_id"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    runs.write_atomic(path, text.getvalue())


def plot_points(rows, base):
    """search.png's points: each trial's effective lr/optimizer/units/cell (searched or default)."""
    points = []
    for row in rows:
        values = {k: v for k, v in row.items() if k in HYPERPARAMETERS and v not in (None, "")}
        cfg = trial_config(base, values)
        points.append({
            "trial_id": row["trial_id"], "status": row["status"], OBJECTIVE: row[OBJECTIVE], "lr": cfg.lr,
            "optimizer": cfg.optimizer, "fc_units": cfg.fc_units, "cell": cfg.cell, "units": cfg.units,
        })
    return points


def write_outputs(tuner, space, base, project_dir, task):
    """trials.csv and search.png from the oracle's trials; returns the rows."""
    from tf_assign2 import figures

    rows = trial_rows(tuner.oracle.trials.values(), list(space))
    write_trials_csv(rows, project_dir / "trials.csv")
    done = [r for r in rows if r["status"] in ("completed", "failed", "invalid")]
    if done:
        failed = sum(r[OBJECTIVE] is None for r in done)
        figures.plot_search(
            plot_points(done, base), project_dir / "search.png", marker_by=MARKER_BY[task], color_by="optimizer",
            title=f"{project_dir.name}: {len(done)} trials ({failed} failed), objective {OBJECTIVE}",
        )
    return rows


def describe_values(values):
    shown = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


def retrain_best(best, base, project_dir, previous, train, resume, keep=()):
    """Train the best hyperparameters as a normal run in ``<project>/best/`` through ``train`` (``tf_assign2.train``,
    the call of every run); returns its Run.

    Resumable like the search: a finished retrain of the same trial is reused, an interrupted one
    continues from its backup (``resume``).
    """
    import keras

    from tf_assign2 import runs

    old_dir = Path(previous.get("run_dir") or "-")
    keras.backend.clear_session()
    forget_custom_gradients(keep)
    if previous.get("trial_id") == best.trial_id and runs.is_run_dir(old_dir):
        summary_path = old_dir / "summary.json"
        if summary_path.is_file() and runs.read_json(summary_path).get("status") == "completed":
            print(f"best model already retrained in {old_dir}")
            return old_dir
        print(f"continuing the interrupted retrain in {old_dir}")
        return resume(old_dir).path
    cfg = dataclasses.replace(trial_config(base, best.hyperparameters.values), runs_dir=str(project_dir / "best"))
    print(f"retraining the best hyperparameters for {cfg.epochs} epochs", flush=True)
    return train(cfg).path


@dataclasses.dataclass(frozen=True)
class Search:
    """What the tune command asked for, beyond the training settings (checked by ``make_search``)."""

    task: str
    tuner: str
    project_dir: Path
    role: str = "standalone"  # standalone, chief or worker (see ``distribution``)
    max_trials: int = 10
    initial_points: int = None
    factor: int = 3
    overwrite: bool = False
    environment: dict = dataclasses.field(default_factory=dict)  # keras-tuner's KERASTUNER_* variables


ONLY_FOR = {"max_trials": ("random", "bayesian"), "epochs": ("random", "bayesian"), "max_epochs": ("hyperband",),
            "factor": ("hyperband",), "initial_points": ("bayesian",)}


def make_search(task, tuner="random", max_trials=None, epochs=None, max_epochs=None, factor=None,
                initial_points=None, directory="runs/tune", project_name=None, overwrite=False, chief=None,
                worker=None):
    """The search asked for, checked: options one tuner reads are refused with the others rather than
    silently ignored, the project name is a plain folder name, the distributed role is settled."""
    if task not in schema.TASKS:
        raise UsageError(f"tune {task!r}: expected a task, one of {', '.join(schema.TASKS)}")
    if tuner not in TUNERS:
        raise UsageError(f"--tuner {tuner}: expected one of {', '.join(TUNERS)}")
    given = {"max_trials": max_trials, "epochs": epochs, "max_epochs": max_epochs, "factor": factor,
             "initial_points": initial_points}
    for name, tuners in ONLY_FOR.items():
        if given[name] is not None and tuner not in tuners:
            hint = " (use --max-epochs)" if name == "epochs" else ""
            raise UsageError(f"--{name.replace('_', '-')} is for --tuner {' or '.join(tuners)}, not {tuner}{hint}")
    for name, value in given.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1
                                  or (name == "factor" and value < 2)):
            raise UsageError(f"--{name.replace('_', '-')} {value}: expected an integer >= {2 if name == 'factor' else 1}")
    role, environment = distribution(chief, worker)
    if role == "worker" and overwrite:
        raise UsageError("--overwrite is for the chief; a worker continues the chief's project")
    project_dir = Path(directory) / (project_name or f"{task}-{tuner}")
    if not re.fullmatch(r"[A-Za-z0-9_.=+-]+", project_dir.name) or project_dir.name in (".", ".."):
        raise UsageError(f"--project-name {project_dir.name}: expected a plain folder name")
    return Search(task=task, tuner=tuner, project_dir=project_dir, role=role, max_trials=max_trials or 10,
                  initial_points=initial_points, factor=factor or 3, overwrite=overwrite, environment=environment)


def space_from(space, task):
    """The checked search space: the task's built-in one (None), a YAML file, or a mapping of the same."""
    if space is None:
        return default_space(task)
    if isinstance(space, dict):
        if not space:
            raise UsageError("space: expected a mapping of hyperparameter names to choices or ranges")
        return validate_space(space, task, "space")
    return load_space(space, task)


def run_search(search, base, space, train, resume):
    """Search, write trials.csv/search.png, retrain the best through ``train``/``resume`` (TensorFlow started).

    Returns (outcome, trial rows, best_hyperparameters.json's record, the retrained run's folder):
    outcome is completed, failed (every trial failed), diverged (the best retrain diverged),
    interrupted, or worker (this process was a worker; the chief has the results).
    The chief (or a standalone search) owns the project folder while it runs: the same command
    started twice is refused in one line. Workers share the chief's project and take no lock.
    """
    from tf_assign2 import runs

    if search.role == "worker":
        return _search(search, base, space, train, resume)
    if search.role == "chief":  # a port taken is refused before the project folder is made
        from tf_assign2.experiments.oracle_service import listen_check

        listen_check(os.environ[ORACLE_IP], os.environ[ORACLE_PORT])
    with runs.made_or_left_alone(search.project_dir, "--directory "), runs.owned(search.project_dir, "tuning project"):
        return _search(search, base, space, train, resume)


def _search(search, base, space, train, resume):
    import keras
    import tensorflow as tf

    from tf_assign2 import data, runs

    tf.get_logger().setLevel("ERROR")  # every trial traces new functions; TF's retracing warning is expected

    arrays, info = data.load_arrays(base)
    if info.n_val == 0:
        raise UsageError(f"--val-split {base.val_split}: leaves no validation images from {info.n_train} training "
                         "images; the search is scored on them: raise --val-split or --ntrain")
    worker = os.environ[TUNER_ID] if search.role == "worker" else None
    if search.role == "worker":
        search.project_dir.mkdir(parents=True, exist_ok=True)
        print(f"worker {worker}: waiting for the chief at {os.environ[ORACLE_IP]}:{os.environ[ORACLE_PORT]}", flush=True)
    elif prepare_project(search.project_dir, settings_record(search, base, space, info), search.overwrite):
        print(f"continuing the search in {search.project_dir} (finished trials are kept; --overwrite starts again)")
    if search.role == "chief":  # keras-tuner's own chief: serve its oracle through the guarded service
        from tf_assign2.experiments.oracle_service import announce_when_listening, serve_guarded_in_keras_tuner

        serve_guarded_in_keras_tuner()
        host, port = os.environ[ORACLE_IP], os.environ[ORACLE_PORT]
        announce_when_listening(host, port, f"chief: serving the oracle on {host}:{port}")
    hypermodel = make_hypermodel(base, space, arrays, info, worker)
    tuner = make_tuner(search.tuner, hypermodel, search.project_dir, base.epochs, base.seed,
                       search.max_trials, search.initial_points, search.factor)
    if search.tuner != "hyperband":  # Hyperband's number of trials follows from its brackets
        hypermodel.total = search.max_trials
    if search.role != "worker":  # a worker's oracle is keras-tuner's gRPC OracleClient, which has no trial list
        hypermodel.done_before = sum(t.status in ("COMPLETED", "FAILED", "INVALID")
                                     for t in tuner.oracle.trials.values())
    started = time.perf_counter()
    # Only the train and validation splits go to the search: the test split is never seen.
    fit_data = (arrays.train_x, arrays.train_y, arrays.val_x, arrays.val_y)
    try:
        with warnings.catch_warnings():
            # A diverged trial's NaN objective makes keras-tuner's nanmax warn; trials.csv says it.
            warnings.filterwarnings("ignore", "All-NaN", RuntimeWarning)
            # keras-tuner gives each trial its own TensorBoard folder with the trial's hyperparameters
            # (HParams dashboard): tensorboard --logdir <project>/tensorboard
            board = keras.callbacks.TensorBoard(str(search.project_dir / "tensorboard"), histogram_freq=0)
            tuner.search(*fit_data, epochs=base.epochs, verbose=2, callbacks=[board])
    except KeyboardInterrupt:
        rows = []
        if search.role != "worker":
            rows = write_outputs(tuner, space, base, search.project_dir, search.task)
        print("interrupted: run the same command again to continue the search", file=sys.stderr)
        return "interrupted", rows, None, None
    if search.role == "worker":
        print(f"worker {worker}: search finished; {hypermodel.trials_run} trials ran here")
        return "worker", [], None, None

    rows = write_outputs(tuner, space, base, search.project_dir, search.task)
    completed = [r for r in rows if r["status"] == "completed"]
    print(f"search: {len(rows)} trials ({len(completed)} completed) in {time.perf_counter() - started:.0f} s; "
          f"{search.project_dir}/trials.csv, search.png")
    if not completed:
        notes = sorted({r["note"] for r in rows if r["note"]})
        print(f"error: every trial failed ({len(rows)} of {len(rows)}): {notes[0] if notes else 'no trials ran'}; "
              f"see {search.project_dir}/trials.csv", file=sys.stderr)
        return "failed", rows, None, None
    # The highest score; ties go to the earliest trial (keras-tuner's own order varies after a reload).
    best_row = max(completed, key=lambda r: (r[OBJECTIVE], -int(r["trial_id"])))
    best = tuner.oracle.trials[best_row["trial_id"]]
    best_path = search.project_dir / "best_hyperparameters.json"
    previous = runs.read_json(best_path) if best_path.is_file() else {}
    record = {
        "task": search.task, "tuner": search.tuner, "trial_id": best.trial_id, OBJECTIVE: best.score,
        "hyperparameters": {k: v for k, v in best.hyperparameters.values.items() if not k.startswith("tuner/")},
        "trials": len(rows), "completed_trials": len(completed),
    }
    print(f"best trial {best.trial_id}: {OBJECTIVE} {best.score:.4f} ({describe_values(record['hyperparameters'])})")
    runs.write_json(best_path, {**record, "run_dir": None} if previous.get("trial_id") != best.trial_id
                    else {**previous, **record})
    run_dir = retrain_best(best, base, search.project_dir, previous, train, resume, hypermodel.gradients_before)
    summary = runs.read_json(Path(run_dir) / "summary.json")
    record.update({"run_dir": summary["run_dir"], "status": summary["status"],
                   "test_accuracy": summary.get("test_accuracy"),
                   "best_val_accuracy_retrained": summary.get("best_val_accuracy")})
    runs.write_json(best_path, record)
    if summary["status"] == "completed":
        print(f"best model: test accuracy {summary['test_accuracy']:.4f}; run directory {summary['run_dir']}")
        print(f"evaluate it with: python -m tf_assign2.evaluate {summary['run_dir']}")
        return "completed", rows, record, run_dir
    if summary["status"] == "diverged":
        print(f"error: the best hyperparameters diverged when retrained ({summary.get('divergence')}); "
              f"see {summary['run_dir']}/summary.json", file=sys.stderr)
        return "diverged", rows, record, run_dir
    print("interrupted: run the same command again to continue the retrain", file=sys.stderr)
    return "interrupted", rows, record, run_dir
