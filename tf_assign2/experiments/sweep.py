"""Sweeps: run a list of configurations as ordinary runs, resumably, and tabulate them.

    python -m tf_assign2.sweep configs/sweeps/cifar_optimizers.yaml        # -> runs/sweeps/cifar_optimizers/
    python -m tf_assign2.sweep configs/sweeps/mnist_cells.yaml --epochs 5  # training flags apply to every entry
    python -m tf_assign2.sweep SWEEP.yaml --out DIR --dry-run              # list the entries, run nothing

A sweep file names a task (the CLI: ``cifar`` or ``mnist``), optionally a ``base`` config file
(a ``--config`` YAML, relative to the sweep file) and ``settings`` shared by every entry, then
the entries: a ``grid`` (every combination of the listed values) and/or a list of ``runs``
(each a mapping of settings, with an optional ``name``). Optional: ``name`` (default: the
file's stem), a one-line ``description`` (the report's title), and a ``target`` test accuracy
(the results then say at which epoch, after how many training seconds, each entry first
reached it). Settings are the training CLI's long flags with ``_`` for ``-``. Precedence: task defaults < base < settings < entry < flags given
to the sweep command. Every entry is checked before anything runs, so a typo in the last entry
fails in seconds, not after hours.

Each entry is an ordinary training run, made by the same call as ``tf_assign2.train`` (the
function of ``python -m tf_assign2.<task>``), so it writes everything a run writes. The sweep
folder (``--out``, default ``runs/sweeps/<name>``):

    sweep.json              the sweep file, the overrides, and per entry its settings, run dir, status
    configs/<entry>.yaml    the merged settings of the entry (re-run one entry by hand with --config)
    runs/<entry>/<run>/     the entry's run directory
    results.csv, results.md one row per entry: settings, status, test accuracy, time
    overlay.png             train loss and test accuracy per epoch of every entry, on one figure

Resuming is re-running the same command. An entry whose run completed or diverged is not run
again (a diverged run is a result: Adam at 1e-2 is expected to diverge); an entry whose run was
interrupted (Ctrl-C, or killed) continues that run from its last completed epoch
(``--resume``); the others start. Which entry made which run is the folder ``runs/<entry>/``
itself, so this holds even after a SIGKILL. A folder holding a sweep with other settings is
never reused: the command stops and asks for another ``--out``.

On one machine a sweep is a loop over entries with the run folders as the state: an
interrupted entry continues from its run's backup, a diverged entry is a result, and a sweep
may mix models. Over several machines (``--chief``/``--worker``) the same entries are handed
out by keras-tuner's distributed oracle (``sweep_cluster``), each trained by this module's code.
"""

import csv
import io
import itertools
import json
import math
import re
import sys
import time
from pathlib import Path

from tf_assign2 import config as schema
from tf_assign2 import runs
from tf_assign2.config import TASKS, to_dict, with_new_defaults
from tf_assign2.errors import UsageError
from tf_assign2.experiments import markdown

SWEEP_KEYS = ("name", "description", "task", "base", "settings", "grid", "runs", "target")
NOT_IN_SWEEPS = ("runs_dir",)  # set by the sweep: runs/<entry>/ under --out
FINISHED = ("completed", "diverged")
MAX_ENTRIES = 1000  # a sweep larger than this is refused unless --max-entries allows it
RESULT_COLUMNS = ("status", "test_accuracy", "test_loss", "best_val_accuracy", "final_train_loss",
                  "epochs_completed", "train_seconds", "images_per_sec", "parameters", "divergence", "run_dir")
SETTING_COLUMNS = schema.COLUMNS  # every setting the schema marks as a table column


# --------------------------------------------------------------------------- the sweep file


def load_sweep(spec, max_entries=MAX_ENTRIES):
    """Read and check a sweep: a YAML file, or the same as a mapping (from Python, without a file);
    returns {name, task, base, settings, entries: [(name, settings)], file, description, target}."""
    if isinstance(spec, dict):
        path, values = None, dict(spec)
        where = "sweep"
        if "name" not in values:
            raise UsageError("sweep: a sweep given as a mapping needs a name (the folder runs/sweeps/<name>)")
    else:
        path = Path(spec)
        values = schema.read_yaml(path, "sweep file")
        where = f"sweep file {path}"
    unknown = [k for k in values if k not in SWEEP_KEYS]
    if unknown:
        raise UsageError(f"{where}: unknown key '{unknown[0]}' (expected {', '.join(SWEEP_KEYS)})")
    task = values.get("task")
    if task not in TASKS:
        raise UsageError(f"{where}: task: expected one of {', '.join(TASKS)}, got {task!r}")
    name = values.get("name", path.stem if path else None)
    if not isinstance(name, str) or not _SAFE.fullmatch(name):
        raise UsageError(f"{where}: name: expected letters, digits, '.', '_' or '-', got {name!r}")
    settings = _mapping(values.get("settings", {}), f"{where}: settings")
    base = values.get("base")
    if base is not None:
        if not isinstance(base, str):
            raise UsageError(f"{where}: base: expected a path to a --config file, got {base!r}")
        base = ((path.parent if path else Path.cwd()) / base).resolve()
        if not base.is_file():
            raise UsageError(f"{where}: base: {base} not found")
    entries = expand_entries(values.get("grid"), values.get("runs"), where, max_entries)
    for key in NOT_IN_SWEEPS:
        if key in settings or any(key in e for _, e in entries):
            raise UsageError(f"{where}: {key} is set by the sweep (runs/<entry>/ under --out); remove it")
    target = values.get("target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1):
        raise UsageError(f"{where}: target: expected a test accuracy in (0, 1], got {target!r}")
    description = values.get("description")
    if description is not None and not isinstance(description, str):
        raise UsageError(f"{where}: description: expected one line of text, got {description!r}")
    return {"name": name, "task": task, "base": str(base) if base else None, "settings": settings,
            "entries": entries, "file": str(path) if path else None, "description": description, "target": target}


_SAFE = re.compile(r"[A-Za-z0-9._-]+")


def _mapping(value, where):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a mapping of settings, got {value!r}")
    return {str(k).replace("-", "_"): v for k, v in value.items()}


def entry_name(settings):
    """A readable, file-safe name from an entry's values: {optimizer: adam, lr: 0.01} -> adam-0.01."""
    parts = ["none" if v is None else str(v) for v in settings.values()]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)) or "default"


def expand_entries(grid, explicit, where, max_entries=MAX_ENTRIES):
    """The grid's combinations (in the order written, last key fastest), then the listed runs.

    The combinations are counted before any is made, so a grid of 10^9 entries is refused at once.
    """
    entries = []
    if grid is not None:
        grid = _mapping(grid, f"{where}: grid")
        for key, choices in grid.items():
            if not isinstance(choices, list) or not choices:
                raise UsageError(f"{where}: grid: {key}: expected a non-empty list of values, got {choices!r}")
        count = math.prod(len(choices) for choices in grid.values()) + len(explicit or ())
        if count > max_entries:
            raise UsageError(f"{where}: {count:,} entries, more than the {max_entries:,} allowed; "
                             "pass --max-entries N to run a sweep this large")
        for combo in itertools.product(*grid.values()):
            settings = dict(zip(grid, combo))
            entries.append((entry_name(settings), settings))
    if explicit is not None:
        if not isinstance(explicit, list):
            raise UsageError(f"{where}: runs: expected a list of mappings, got {explicit!r}")
        for i, item in enumerate(explicit, 1):
            settings = _mapping(item, f"{where}: runs: entry {i}")
            name = settings.pop("name", None) or entry_name(settings)
            entries.append((str(name), settings))
    if not entries:
        raise UsageError(f"{where}: no entries: give a grid and/or a list of runs")
    seen = set()
    for name, _ in entries:
        if not _SAFE.fullmatch(name):
            raise UsageError(f"{where}: entry name {name!r}: expected letters, digits, '.', '_' or '-'")
        if name in seen:
            raise UsageError(f"{where}: two entries are named {name!r}; give them distinct names")
        seen.add(name)
    return entries


def plan(sweep, out, overrides=None):
    """Merge and check every entry against the settings schema, as the training CLI's --config does.

    ``overrides`` are the settings given as flags to the sweep command (they win over every entry).
    Returns [{name, values (the merged YAML settings), config (the resolved settings)}].
    Raises UsageError naming the sweep file and the entry for the first bad one.
    """
    base = schema.read_yaml(sweep["base"], "--config") if sweep["base"] else {}
    base = {str(k).replace("-", "_"): v for k, v in base.items()}
    planned = []
    for name, entry in sweep["entries"]:
        values = {**base, **sweep["settings"], **entry, "runs_dir": str(Path(out) / "runs" / name)}
        where = f"{_origin(sweep)}: entry '{name}'"
        try:
            config = schema.build(sweep["task"], schema.file_values(values, where), overrides or {})
        except UsageError as e:
            message = str(e) if str(e).startswith(where) else f"{where}: {e}"
            raise UsageError(message) from None
        planned.append({"name": name, "values": values, "config": _plain(to_dict(config)), "settings": config})
    return planned


def _origin(sweep):
    return f"sweep file {sweep['file']}" if sweep["file"] else "sweep"


def _plain(value):
    """JSON round trip (tuples -> lists), so settings compare equal to what sweep.json holds."""
    return json.loads(json.dumps(value))


# --------------------------------------------------------------------------- state


def default_out(sweep):
    return Path("runs") / "sweeps" / sweep["name"]


def check_out(out, sweep, planned):
    """An existing sweep folder may only be resumed with the same settings; returns its state (or a new one)."""
    out = Path(out)
    state_path = out / "sweep.json"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if not state_path.is_file():
        if out.is_dir() and any(p.name != runs.LOCK_FILE for p in out.iterdir()):
            raise UsageError(f"--out {out}: folder is not empty and holds no sweep.json; choose another --out")
        return {"name": sweep["name"], "task": sweep["task"], "entries": {}}
    state = runs.read_json(state_path)
    if state.get("name") != sweep["name"] or state.get("task") != sweep["task"]:
        raise UsageError(f"--out {out}: holds sweep '{state.get('name')}' ({state.get('task')}); "
                         f"choose another --out for '{sweep['name']}'")
    for entry in planned:
        old = state["entries"].get(entry["name"])
        if not old:
            continue
        before = with_new_defaults(old["config"])  # a folder from before a setting existed ran with its default
        changed = sorted(k for k in set(before) | set(entry["config"]) if before.get(k) != entry["config"].get(k))
        if changed:
            detail = ", ".join(f"{k}: {before.get(k)!r} -> {entry['config'].get(k)!r}" for k in changed[:3])
            raise UsageError(f"--out {out}: entry '{entry['name']}' was run with other settings ({detail}); "
                             "re-run with the same settings to resume, or choose another --out")
    return state


def entry_runs(out, name):
    """The run directories an entry has made, oldest first."""
    root = Path(out) / "runs" / name
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if runs.is_run_dir(p)), key=lambda p: p.stat().st_mtime)


def run_status(run_dir):
    """completed / diverged / interrupted from summary.json; 'unfinished' when there is none (killed)."""
    summary = Path(run_dir) / "summary.json"
    if not summary.is_file():
        return "unfinished"
    return runs.read_json(summary).get("status", "unfinished")


def write_state(out, sweep, planned, state, overrides):
    state.update({"name": sweep["name"], "task": sweep["task"], "description": sweep["description"],
                  "target": sweep.get("target"), "sweep_file": sweep["file"], "overrides": _plain(overrides or {}),
                  "order": [e["name"] for e in planned]})
    for entry in planned:
        record = state["entries"].setdefault(entry["name"], {})
        made = entry_runs(out, entry["name"])
        record.update({"config": entry["config"], "config_file": f"configs/{entry['name']}.yaml",
                       "run_dir": str(made[-1].relative_to(out)) if made else None,
                       "status": run_status(made[-1]) if made else "pending"})
    runs.write_json(Path(out) / "sweep.json", state)


# --------------------------------------------------------------------------- running


def run_sweep(sweep, out, train, resume, overrides=None):
    """Run every entry not yet finished; returns (the results' rows, whether it was interrupted).

    ``train(config)`` and ``resume(run_dir)`` are ``tf_assign2.train`` and ``tf_assign2.resume``, so
    each entry is exactly the run ``python -m tf_assign2.<task> --config <entry>.yaml`` makes;
    ``overrides`` are settings applied to every entry (the sweep command's training flags).
    """
    out = Path(out)
    planned = plan(sweep, out, overrides)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    with runs.made_or_left_alone(out), runs.owned(out, "sweep folder"):  # one sweep command per folder at a time
        return _run_entries(sweep, out, train, resume, overrides, planned)


def prepare_out(sweep, out, planned, overrides):
    """Check that ``out`` may hold this sweep, write configs/<entry>.yaml and sweep.json; returns the state."""
    import yaml

    state = check_out(out, sweep, planned)
    (out / "configs").mkdir(parents=True, exist_ok=True)
    for entry in planned:
        runs.write_atomic(out / "configs" / f"{entry['name']}.yaml",
                          f"# sweep {sweep['name']} ({sweep['file'] or 'a Python call'}), entry {entry['name']}\n"
                          + yaml.safe_dump(entry["values"], sort_keys=False))
    write_state(out, sweep, planned, state, overrides)
    return state


def next_step(out, name):
    """What an entry needs now: ``(latest run, its status, step)``, step being None when the latest run
    finished (completed or diverged: it is not run again), "resume" when it was interrupted or killed,
    else "start". The run folders are the state, so this holds after a SIGKILL and on any machine."""
    made = entry_runs(out, name)
    status = run_status(made[-1]) if made else None
    if status in FINISHED:
        return made[-1], status, None
    if made:
        return made[-1], status, "resume"
    return None, None, "start"


def entry_line(head, task, out, name, run, status, step):
    """The line printed before an entry: skipped, resumed, or the command that would start it alone."""
    if step is None:
        return f"{head}: {status} earlier ({run}), skipped"
    if step == "resume":
        return f"{head}: resuming {run}"
    return f"{head}: python -m tf_assign2.{task} --config {Path(out) / 'configs' / f'{name}.yaml'}"


def train_entry(entry, train, resume, run, step):
    """Run one entry's step: ``train`` its settings, or ``resume`` its interrupted run; returns the Run."""
    return resume(run) if step == "resume" else train(entry["settings"])


def _run_entries(sweep, out, train, resume, overrides, planned):
    state = prepare_out(sweep, out, planned, overrides)
    interrupted, clock = False, Progress(sum(1 for e in planned if not _finished(out, e["name"])))
    try:
        for i, entry in enumerate(planned, 1):
            name = entry["name"]
            run, status, step = next_step(out, name)
            head = f"[{i}/{len(planned)}] {name}"
            print(entry_line(head, sweep["task"], out, name, run, status, step), flush=True)
            if step is None:
                continue
            started = time.perf_counter()
            result = train_entry(entry, train, resume, run, step)
            _release_memory()
            write_state(out, sweep, planned, state, overrides)
            rows = write_results(out, sweep, planned)
            print(f"{head}: {_outcome(rows[i - 1])} in {clock.done(time.perf_counter() - started)}", flush=True)
            if result.status == "interrupted":
                interrupted = True
                break
    except KeyboardInterrupt:
        interrupted = True
    rows = finish(out, sweep, planned, state, overrides)
    if interrupted:
        again = f"python -m tf_assign2.sweep {sweep['file']} --out {out}" if sweep["file"] else "the same sweep call"
        print(f"interrupted: re-run the same command to continue ({again})", file=sys.stderr)
    return rows, interrupted


def finish(out, sweep, planned, state, overrides):
    """sweep.json, results.csv, results.md, overlay.png as they stand, and the one-line count; returns the rows."""
    write_state(out, sweep, planned, state, overrides)
    rows = write_results(out, sweep, planned)
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    print(f"sweep {sweep['name']}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; results in {out}/results.md",
          flush=True)
    return rows


def _finished(out, name):
    made = entry_runs(out, name)
    return bool(made) and run_status(made[-1]) in FINISHED


def _outcome(row):
    if row["status"] == "completed":
        return f"completed, test accuracy {fmt(row['test_accuracy'])}"
    return row["status"] + (f" ({row['divergence']})" if row.get("divergence") else "")


class Progress:
    """Time left for a list of runs, from the mean duration of the ones run so far."""

    def __init__(self, total):
        self.total, self.count, self.seconds = total, 0, 0.0

    def done(self, seconds):
        """'52 s; about 6 min left' after one more run that took ``seconds``."""
        self.count, self.seconds = self.count + 1, self.seconds + seconds
        left = max(self.total - self.count, 0) * self.seconds / self.count
        return f"{_duration(seconds)}; " + (f"about {_duration(left)} left" if left else "the last one")


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _release_memory():
    """Free the finished run's graphs and models before the next entry (one process runs them all)."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


# --------------------------------------------------------------------------- results


def result_rows(out, planned):
    """One row per entry: its resolved settings and the outcome of its latest run."""
    rows = []
    for entry in planned:
        made = entry_runs(out, entry["name"])
        row = run_row(entry["name"], entry["config"], made[-1] if made else None)
        if made:
            row["run_dir"] = str(made[-1].relative_to(out))
        rows.append(row)
    return rows


SUMMARY_NUMBERS = ("test_accuracy", "test_loss", "best_val_accuracy", "final_train_loss", "epochs_completed",
                   "train_seconds", "images_per_sec", "parameters")
SUMMARY_TEXTS = ("divergence", "run_dir")
STATUSES = ("completed", "diverged", "interrupted")


def read_summary(run_dir):
    """A run's summary.json with each figure a table shows checked for its type: a string where a number
    belongs (an edited or foreign file) is one error naming the file, not a crash of the report."""
    path = Path(run_dir) / "summary.json"
    summary = runs.read_json(path)
    for key in SUMMARY_NUMBERS:
        value = summary.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UsageError(f"{path}: {key} is {_short(value)}; expected a number")
    for key in SUMMARY_TEXTS:
        if summary.get(key) is not None and not isinstance(summary[key], str):
            raise UsageError(f"{path}: {key} is {_short(summary[key])}; expected text")
    if summary.get("status", "completed") not in STATUSES:
        raise UsageError(f"{path}: status is {_short(summary.get('status'))}; expected one of {', '.join(STATUSES)}")
    return summary


def checked_settings(config, where):
    """The settings of a run's config.json that tables show, each of its setting's type (the values
    themselves are not checked against today's choices: a model registered elsewhere is shown as named)."""
    kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,), tuple: (list, tuple), object: (str, bool)}
    if not isinstance(config, dict):
        raise UsageError(f"{where}: expected a JSON object of settings, found {type(config).__name__}")
    for name in (*SETTING_COLUMNS, "task", "dataset"):
        value, kind = config.get(name), schema.SETTINGS[name].kind
        if value is not None and (not isinstance(value, kinds[kind]) or (kind is not bool and isinstance(value, bool)
                                                                          and bool not in kinds[kind])):
            raise UsageError(f"{where}: {name} is {_short(value)}; expected {_KIND_WORDS[kind]}")
    return config


_KIND_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a name", tuple: "a list",
               object: "auto, true or false"}


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def run_row(label, config, run_dir=None):
    """A table row for one run: the settings that matter (blank where the model ignores them) and,
    from the run's files, status, test accuracy, time and the per-epoch history. No run: pending."""
    config = checked_settings(config, f"{run_dir}/config.json" if run_dir else f"entry {label}")
    row = {"entry": label, **{k: config.get(k) for k in SETTING_COLUMNS}}
    for name in SETTING_COLUMNS:  # settings the model or the optimizer does not read are left blank
        if schema.ignored(row["model"], row["optimizer"], name):
            row[name] = None
        elif row[name] is None and schema.SETTINGS[name].none_shows:  # a setting, not a blank ("off")
            row[name] = schema.SETTINGS[name].none_shows
    row.update({k: None for k in RESULT_COLUMNS})
    row.update(status="pending", history={}, path=None)
    if run_dir is not None:
        run_dir = Path(run_dir)
        summary = read_summary(run_dir) if runs.is_run_dir(run_dir) and (run_dir / "summary.json").exists() else {}
        row.update({k: summary.get(k) for k in RESULT_COLUMNS if k in summary})
        row.update(status=run_status(run_dir), run_dir=str(run_dir), path=run_dir,
                   history=runs.read_history(run_dir / "history.csv"))
    return row


def time_to_target(history, target):
    """(epoch, training seconds) at which test accuracy first reached ``target``, or (None, None).

    Seconds are the sum of history.csv's ``epoch_seconds`` (training steps only, not evaluation)
    up to that epoch, so a resumed run counts each epoch once.
    """
    accuracy, seconds = history.get("test_accuracy", []), history.get("epoch_seconds", [])
    for epoch, value in enumerate(accuracy):
        if value >= target:
            return epoch + 1, (round(sum(seconds[:epoch + 1]), 1) if len(seconds) > epoch else None)
    return None, None


def varying(rows, keys=SETTING_COLUMNS):
    """The setting columns whose values differ between rows (what the sweep varies); blanks do not count."""
    return [k for k in keys if len({json.dumps(r.get(k)) for r in rows if r.get(k) is not None}) > 1]


def table_keys(rows):
    """The settings a results table shows: what varies, and always the optimizer and learning rate."""
    shown = set(varying(rows)) | {"optimizer", "lr"}
    return [k for k in SETTING_COLUMNS if k in shown]


def fmt(value, digits=4):
    """A table cell: '' for None, ``digits`` decimals for floats (``%g`` below 0.01)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}f}" if abs(value) >= 1e-2 or value == 0 else f"{value:g}"
    return str(value)


def write_results(out, sweep, planned):
    """results.csv (every column), results.md (what varies + the outcome) and overlay.png."""
    from tf_assign2 import figures

    out = Path(out)
    rows = result_rows(out, planned)
    columns = ["entry", *SETTING_COLUMNS, *RESULT_COLUMNS]
    if sweep.get("target") is not None:
        for r in rows:
            r["epochs_to_target"], r["seconds_to_target"] = time_to_target(r["history"], sweep["target"])
        columns += ["epochs_to_target", "seconds_to_target"]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in columns} for r in rows)
    runs.write_atomic(out / "results.csv", text.getvalue())
    runs.write_atomic(out / "results.md", results_markdown(sweep, rows))
    series = [(r["entry"], r["history"], r["status"]) for r in rows if r["history"]]
    if series:
        figures.plot_sweep_overlay(series, out / "overlay.png", title=f"sweep {sweep['name']}")
    return rows


CHOSEN_ON = "validation accuracy"  # the words every table and verdict uses; the figure is best_val_accuracy


def chosen(rows):
    """The best of ``rows``, chosen on validation accuracy (the best epoch's, as a search scores a
    trial), never on test accuracy; ties go to the earlier row. None when no completed row has a
    validation figure (runs without a validation split): then nothing is chosen."""
    scored = [(i, r) for i, r in enumerate(rows)
              if r["status"] == "completed" and r.get("best_val_accuracy") is not None]
    return max(scored, key=lambda pair: (pair[1]["best_val_accuracy"], -pair[0]), default=(None, None))[1]


def results_table(rows, target=None, best=None):
    """(header, cells) of a sweep's table: each entry's varying settings and outcome, validation and test
    accuracy side by side; ``best`` (the chosen row) has the validation accuracy it was chosen on in bold."""
    keys = table_keys(rows)
    header = ["entry", *keys, "val accuracy", "test accuracy", "status", "epochs", "train s", "images/s"]
    if target is not None:
        header.append(f"to {target:g} (epoch, train s)")
    table = []
    for r in rows:
        acc = fmt(r["test_accuracy"]) if r["status"] == "completed" else ("NaN" if r["status"] == "diverged" else "")
        val = fmt(r.get("best_val_accuracy")) if r["status"] == "completed" else ""
        if r is best:
            val = f"**{val}**"
        status = markdown.text(r["status"] + (f" ({r['divergence']})" if r.get("divergence") else ""))
        cells = [markdown.text(r["entry"]), *(markdown.text(f"{r[k]:g}" if isinstance(r[k], float) else fmt(r[k]))
                                              for k in keys), val, acc,
                 status, fmt(r["epochs_completed"]), fmt(r["train_seconds"], 1), fmt(r["images_per_sec"], 0)]
        if target is not None:
            reached = r.get("epochs_to_target")
            cells.append("not reached" if reached is None and r["status"] != "pending" else
                         "" if reached is None else f"{reached}, {fmt(r.get('seconds_to_target'), 1)} s")
        table.append(cells)
    return header, table


def results_markdown(sweep, rows):
    keys = table_keys(rows)
    target = sweep.get("target")
    title = f"# Sweep {sweep['name']} ({sweep['task']})" + (f": {markdown.text(sweep['description'])}"
                                                           if sweep["description"] else "")
    origin = markdown.code(sweep["file"]) if sweep["file"] else "a Python call (tf_assign2.sweep)"
    best = chosen(rows)
    header, table = results_table(rows, target, best)
    lines = [title, "", f"From {origin}; one run per entry.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table]
    if "seed" in keys:
        lines += seed_summary(rows, [k for k in keys if k != "seed"], target)
    elif best:
        lines += ["", f"Best: **{markdown.text(best['entry'])}**, chosen on {CHOSEN_ON} "
                      f"{fmt(best['best_val_accuracy'])}; its test accuracy {fmt(best['test_accuracy'])} "
                      f"({markdown.text(best['run_dir'])})."]
    elif any(r["status"] == "completed" for r in rows):
        lines += ["", "No entry is chosen: the runs have no validation split, and test accuracy chooses nothing."]
    lines += ["", "![train loss and test accuracy per epoch](overlay.png)", ""]
    return "\n".join(lines)


def seed_groups(rows, keys):
    """Rows that differ only in their seed, grouped by the other settings (in table order)."""
    groups = {}
    for r in rows:
        groups.setdefault(tuple(json.dumps(r.get(k)) for k in keys), []).append(r)
    return list(groups.values())


def _mean(values):
    return sum(values) / len(values) if values else None


def seed_summary(rows, keys, target=None):
    """Markdown lines: mean validation accuracy, and mean, min and max test accuracy, over the seeds of
    each setting.

    When a sweep repeats settings over seeds, a single best run is mostly luck (on 1k test
    images one image is 0.001), so the verdict is the best mean over completed seeds - of the
    validation accuracy, which chooses; the test accuracy is what the choice then scores.
    """
    header = [*keys, "seeds", "mean val accuracy", "mean test accuracy", "min", "max"]
    if target is not None:
        header.append(f"seeds reaching {target:g}")
    lines = ["", "Over seeds:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best, best_val, best_test = None, -1.0, None
    for group in seed_groups(rows, keys):
        done = [r for r in group if r["status"] == "completed" and r["test_accuracy"] is not None]
        tests = [r["test_accuracy"] for r in done]
        val = _mean([r["best_val_accuracy"] for r in done if r.get("best_val_accuracy") is not None])
        cells = [markdown.text(f"{group[0][k]:g}" if isinstance(group[0][k], float) else fmt(group[0][k]))
                 for k in keys]
        cells += [f"{len(done)}/{len(group)}", fmt(val), fmt(_mean(tests)), fmt(min(tests, default=None)),
                  fmt(max(tests, default=None))]
        if target is not None:
            cells.append(f"{sum(1 for r in group if r.get('epochs_to_target') is not None)}/{len(group)}")
        lines.append("| " + " | ".join(cells) + " |")
        if val is not None and val > best_val:  # ties: the earlier setting
            best, best_val, best_test = cells[:len(keys)], val, _mean(tests)
    if best is not None:
        setting = ", ".join(f"{k} {v}" for k, v in zip(keys, best))
        lines += ["", f"Best mean over seeds, chosen on mean {CHOSEN_ON}: **{setting}**, {fmt(best_val)}; "
                      f"its mean test accuracy {fmt(best_test)}."]
    return lines
