"""One command from finished runs to an assignment report: REPORT.md with its figures.

    python -m tf_assign2.report runs/sweeps/cifar_optimizers runs/sweeps/mnist_cells --out docs/example-report
    python -m tf_assign2.report runs                  # every run under runs/, grouped by task

Each argument is a sweep folder (``sweep.json``, from ``python -m tf_assign2.sweep``), a
folder holding run directories (searched recursively), or one run directory. The report has,
like a student's write-up:

* per experiment (a sweep, or the runs of one task): a table (settings that vary, optimizer,
  learning rate, test accuracy, status), train loss and test accuracy per epoch of every run on
  one figure, the best configuration and its own curves, and why runs diverged;
* for the best LeNet5 run on CIFAR10: its first-layer filters, the activation statistics from
  ``activation_stats.json``, and the Zeiler & Fergus figures of its latest ``visualize-*/``
  folder (``python -m tf_assign2.visualize``), each only when present;
* for MNIST: the RNN cell x units table, the CNN vs RNN table, and the best recurrent run's
  hidden-state figure.

Every number comes from the runs' files (summary.json, history.csv, config.json, the statistics
JSON files); nothing is typed in. Figures go to ``figures/`` next to REPORT.md: the overlays are
drawn from the histories, the others are the runs' own PNGs, copied. Without ``--out`` the report
goes to a new ``reports/report-<timestamp>/``; with ``--out`` that folder's REPORT.md and
figures are replaced (it is derived data).
"""

import datetime
import os
import re
import shutil
import tempfile
from pathlib import Path

from tf_assign2 import runs
from tf_assign2.errors import UsageError
from tf_assign2.experiments import markdown, sweep
from tf_assign2.models import CELL_TITLES, MODELS

STAT_LAYERS = ("conv1", "pool1", "conv2", "pool2", "conv1/net_input", "conv2/net_input")
CELL_NAMES = CELL_TITLES


# --------------------------------------------------------------------------- finding the runs


def find_run_dirs(folder):
    """Run directories under ``folder`` (any depth), oldest first; never looks inside a run. Each folder
    is visited once, however symbolic links lead back to it (a link to a parent ended no walk)."""
    found, stack, seen = [], [Path(folder)], set()
    while stack:
        here = stack.pop()
        try:
            identity = (here.stat().st_dev, here.stat().st_ino)
        except OSError:  # a link that leads nowhere
            continue
        if identity in seen:
            continue
        seen.add(identity)
        if runs.is_run_dir(here):
            found.append(here)
            continue
        stack.extend(p for p in here.iterdir() if p.is_dir() and not p.name.startswith("."))
    return sorted(found, key=lambda p: (p.stat().st_mtime, str(p)))


def _config(run_dir):
    return runs.read_json(Path(run_dir) / "config.json")


def collect(paths):
    """Experiments from the arguments: [{title, task, source, rows, sweep_file}], rows as ``sweep.run_row``."""
    experiments, seen = [], set()
    for arg in paths:
        path = Path(arg)
        if not path.is_dir():
            raise UsageError(f"{path}: not found; expected a sweep folder, a folder of runs or a run directory")
        if (path / "sweep.json").is_file():
            state = runs.read_json(path / "sweep.json")
            rows = []
            for name in state.get("order", list(state.get("entries", {}))):
                made = sweep.entry_runs(path, name)
                config = _config(made[-1]) if made else state["entries"][name].get("config", {})
                rows.append(sweep.run_row(name, config, made[-1] if made else None))
            seen.update(str(r["path"].resolve()) for r in rows if r["path"])
            title = state.get("description") or f"Sweep {state.get('name', path.name)}"
            experiments.append({"title": title, "task": state.get("task"), "slug": slug(state.get("name", path.name)),
                                "source": str(path), "sweep_file": state.get("sweep_file"), "rows": rows})
            continue
        run_dirs = [d for d in find_run_dirs(path) if str(d.resolve()) not in seen]
        if not run_dirs:
            raise UsageError(f"{path}: no runs found (expected run directories holding config.json, "
                             "or a sweep folder holding sweep.json)")
        by_task = {}
        for run_dir in run_dirs:
            config = _config(run_dir)
            by_task.setdefault(config.get("task", "?"), []).append(sweep.run_row(run_dir.name, config, run_dir))
            seen.add(str(run_dir.resolve()))
        for task, rows in by_task.items():
            experiments.append({"title": f"{task.upper() if task == 'mnist' else 'CIFAR'} runs in {path}",
                                "task": task, "slug": slug(f"{path.name}-{task}"), "source": str(path),
                                "sweep_file": None, "rows": rows})
    taken = set()
    for exp in experiments:  # figure names must not collide (two folders named runs/, ...)
        base, i = exp["slug"], 1
        while exp["slug"] in taken:
            i += 1
            exp["slug"] = f"{base}-{i}"
        taken.add(exp["slug"])
    return experiments


# --------------------------------------------------------------------------- formatting


def fmt_acc(row):
    if row["status"] == "completed" and row["test_accuracy"] is not None:
        return f"{row['test_accuracy']:.4f}"
    return "NaN" if row["status"] == "diverged" else "—"


def fmt_num(value, spec=",.0f"):
    return "" if value is None else format(value, spec)


def fmt_setting(value):
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def table(header, rows):
    """A Markdown table of cells already made safe (``markdown.text`` where they come from run files)."""
    return markdown.table(header, rows, escape=False)


def best_row(rows):
    """The best run of ``rows``, chosen on validation accuracy (``sweep.chosen``), never on test accuracy."""
    return sweep.chosen(rows)


def family(row):
    """"cnn" or "recurrent", from the model registry ("" for a model this version does not know)."""
    return MODELS[row["model"]].family if row.get("model") in MODELS else ""


def describe_model(row):
    if family(row) != "recurrent":
        return MODELS[row["model"]].title(None) if family(row) else str(row.get("model"))
    return f"{CELL_NAMES.get(row['cell'], row['cell'])} {row['units']}" + (f" x{row['layers']}" if row["layers"] and row["layers"] > 1 else "")


def slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-").lower() or "x"


def figure_path(out, name):
    """Where a report figure goes: ``out/figures/name``."""
    folder = Path(out) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def copy_figure(out, source, name, caption):
    """Copy a run's PNG into the report (atomically); returns its Markdown image line, or None if absent."""
    source = Path(source)
    if not source.is_file():
        return None
    target = figure_path(out, name)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return f"![{markdown.text(caption)}](figures/{name})"


# --------------------------------------------------------------------------- sections


def setup_line(rows):
    """The settings every run of an experiment shares, and the data it used (from config.json)."""
    configs = [_config(r["path"]) for r in rows if r["path"]]
    if not configs:
        return "No run has started yet."
    first = configs[0]
    info = first.get("data_info", {})
    shared = {k: first.get(k) for k in ("batch_size", "epochs", "seed", "init", "val_split")
              if all(c.get(k) == first.get(k) for c in configs)}
    counts = ", ".join(f"{info[k]:,} {k.replace('n_', '')}" for k in ("n_train", "n_val", "n_test") if k in info)
    parts = [f"data: {info.get('dataset', first.get('dataset'))} ({counts})" if counts else None]
    parts += [f"{k.replace('_', ' ')} {fmt_setting(v)}" for k, v in shared.items() if v is not None]
    env = first.get("environment", {})
    if env:
        parts.append(f"TensorFlow {env.get('tensorflow')}, Keras {env.get('keras')} on {env.get('device')}"
                     + (f" ({env.get('processor')}, {env.get('cpu_count')} cores)" if env.get("device") == "CPU" else ""))
    return "; ".join(p for p in parts if p) + "."


def experiment_section(number, exp, out):
    rows = exp["rows"]
    keys = sweep.table_keys(rows)
    lines = [f"## {number}. {markdown.text(exp['title'])}", ""]
    source = f"Runs in {markdown.code(exp['source'])}" + (f", from the sweep file {markdown.code(exp['sweep_file'])}"
                                                          if exp["sweep_file"] else "")
    lines += [source + ". " + setup_line(rows), ""]
    best = best_row(rows)
    header = ["run", *[k.replace("_", " ") for k in keys], "val accuracy", "test accuracy", "status", "epochs",
              "train s", "images/s"]
    body = []
    for r in rows:
        val = fmt_num(r.get("best_val_accuracy"), ".4f") if r["status"] == "completed" else ""
        body.append([markdown.text(r["entry"]), *(markdown.text(fmt_setting(r[k])) for k in keys),
                     f"**{val}**" if r is best else val, fmt_acc(r),
                     r["status"], fmt_num(r["epochs_completed"], "d"), fmt_num(r["train_seconds"], ".1f"),
                     fmt_num(r["images_per_sec"])])
    lines += table(header, body) + [""]
    series = [(r["entry"], r["history"], r["status"]) for r in rows if r["history"]]
    if series:
        from tf_assign2 import figures

        name = f"{exp['slug']}-overlay.png"
        figures.plot_sweep_overlay(series, figure_path(out, name), title=exp["title"])
        lines += [f"![train loss and test accuracy per epoch, every run](figures/{name})", ""]
    if best:
        settings = ", ".join(f"{k.replace('_', ' ')} {markdown.text(fmt_setting(best[k]))}" for k in keys
                             if best[k] is not None)
        lines += [f"**Best configuration, chosen on {sweep.CHOSEN_ON}: {markdown.text(best['entry'])}** ({settings}): "
                  f"validation accuracy {fmt_num(best['best_val_accuracy'], '.4f')}; its test accuracy "
                  f"{best['test_accuracy']:.4f}, test loss {best['test_loss']:.4f} ({markdown.code(best['run_dir'])}).",
                  ""]
        link = copy_figure(out, best["path"] / "curves.png", f"{exp['slug']}-best-curves.png",
                           f"curves of {best['entry']}")
        if link:
            lines += [link, ""]
    elif any(r["status"] == "completed" for r in rows):
        lines += ["No configuration is chosen: these runs have no validation split, and test accuracy "
                  "chooses nothing.", ""]
    diverged = [r for r in rows if r["status"] == "diverged"]
    if diverged:
        lines += ["Diverged (training stopped, no model exported; the starter's own loss "
                  "`-sum(y log softmax)` became NaN/Inf, which is where the TF1 code printed NaN):", ""]
        lines += [f"- {markdown.text(r['entry'])}: {markdown.text(r['divergence'] or 'loss became NaN/Inf')}"
                  for r in diverged] + [""]
    other = [r for r in rows if r["status"] not in ("completed", "diverged")]
    if other:
        lines += ["Not finished: " + ", ".join(f"{markdown.text(r['entry'])} ({r['status']})" for r in other) + ".",
                  ""]
    return lines


def cnn_section(number, rows, out):
    """Filters, activation statistics and Zeiler & Fergus figures of the best LeNet5 run on CIFAR10."""
    cnn = [r for r in rows if family(r) == "cnn" and r["path"] and _config(r["path"]).get("dataset") == "cifar10"]
    best = best_row(cnn)
    if best is None:
        return []
    run = best["path"]
    lines = [f"## {number}. CIFAR10: what LeNet5 learned", "",
             f"From the best LeNet5 run, chosen on {sweep.CHOSEN_ON}: {markdown.text(best['entry'])} (validation "
             f"accuracy {best['best_val_accuracy']:.4f}, test accuracy {best['test_accuracy']:.4f}, "
             f"{markdown.code(run)}).", ""]
    filters = [copy_figure(out, run / "filters.png", "cifar-filters.png", "first-layer filters"),
               copy_figure(out, run / "filters_change.png", "cifar-filters-change.png",
                            "first-layer filters minus their initialisation")]
    filters = [f for f in filters if f]
    lines += ["### First-layer filters", ""]
    if filters:
        lines += ["conv1's 32 filters after training, and what training changed (final minus initial filters):", "",
                  " ".join(filters), ""]
    else:
        lines += ["No filter figures in this run (trained with `--no-visualize`).", ""]
    lines += ["### Activation statistics", ""]
    stats_path = run / "activation_stats.json"
    if stats_path.is_file():
        stats = runs.read_json(stats_path)
        layers = stats.get("layers", {})
        names = [n for n in STAT_LAYERS if n in layers] + sorted(n for n in layers if n not in STAT_LAYERS)
        body = [[markdown.text(n), markdown.text(layers[n].get("stage", "")), *(fmt_num(layers[n].get(k), ".4f") for k in ("mean", "variance", "std",
                 "min", "max")), fmt_num(100 * layers[n]["zero_fraction"], ".1f") + " %"
                 if layers[n].get("zero_fraction") is not None else ""] for n in names]
        lines += [f"On the {stats.get('n_images', '?')} {stats.get('split', 'test')} images"
                  + (f", after epoch {stats['epoch']}" if stats.get("epoch") else "") + " (`activation_stats.json`):", ""]
        lines += table(["layer", "where", "mean", "variance", "std", "min", "max", "zeros"], body) + [""]
    else:
        lines += ["No `activation_stats.json` in this run.", ""]
    lines += ["### Zeiler & Fergus visualisations", ""]
    vis = sorted(run.glob("visualize-*/"), key=lambda p: p.name)
    shown = []
    if vis:
        folder = vis[-1]
        described = runs.read_json(folder / "visualize.json").get("files", {}) if (folder / "visualize.json").is_file() else {}
        for pattern in ("top9_*.png", "deconv_*.png", "occlusion.png"):
            for png in sorted(folder.glob(pattern)):
                caption = described.get(png.name, png.stem)
                link = copy_figure(out, png, f"cifar-{png.name}", caption)
                shown += [f"{markdown.text(caption[:1].upper() + caption[1:])} ({markdown.code(png.name)}):", "",
                          link, ""]
    if shown:
        lines += [f"From {markdown.code(vis[-1])} (`python -m tf_assign2.visualize`).", ""] + shown
    else:
        lines += [f"None yet: {markdown.code(f'python -m tf_assign2.visualize {run}')} makes them (top-9 patches, deconvnet "
                  "projections, occlusion), and a new report includes them.", ""]
    return lines


def mnist_sections(number, rows, out):
    """The RNN cell x units table and the CNN vs RNN table, over every MNIST run given."""
    rows = [r for r in rows if r["path"] and _config(r["path"]).get("dataset") == "mnist"]
    rnn = [r for r in rows if family(r) == "recurrent"]
    lines = []
    if rnn:
        cells = [c for c in ("rnn", "lstm", "gru") if any(r["cell"] == c for r in rnn)]
        units = sorted({r["units"] for r in rnn})
        lines += [f"## {number}. MNIST: recurrent cell x hidden units", "",
                  "Test accuracy (parameters below); each image read as 28 rows of 28 pixels. "
                  f"Where several runs share a cell and size, the one chosen on {sweep.CHOSEN_ON} is shown, "
                  "and the bold one is chosen among all so.", ""]
        acc_body, par_body = [], []
        overall = best_row(rnn)
        for c in cells:
            accs, pars = [CELL_NAMES[c]], [CELL_NAMES[c]]
            for u in units:
                group = [r for r in rnn if r["cell"] == c and r["units"] == u]
                shown = best_row(group) or (group[-1] if group else None)  # a diverged run shows NaN
                text = fmt_acc(shown) if shown else ""
                accs.append(f"**{text}**" if shown is not None and shown is overall else text)
                pars.append(fmt_num(shown["parameters"]) if shown else "")
            acc_body.append(accs)
            par_body.append(pars)
        lines += table(["cell", *(f"{u} units" for u in units)], acc_body) + [""]
        lines += table(["parameters", *(f"{u} units" for u in units)], par_body) + [""]
        number += 1
    families = {}
    for r in rows:
        families.setdefault(describe_model(r) if family(r) == "cnn" else CELL_NAMES.get(r["cell"], r["cell"]), []).append(r)
    if "LeNet5" in families and len(families) > 1:
        lines += [f"## {number}. MNIST: CNN vs RNN", "",
                  f"The best run of each model on the same MNIST data, chosen on {sweep.CHOSEN_ON}:", ""]
        body = []
        for name in ("BasicRNN", "LSTM", "GRU", "LeNet5"):
            b = best_row(families.get(name, []))
            if b:
                body.append([name, markdown.text(describe_model(b)), f"{b['test_accuracy']:.4f}", fmt_num(b["parameters"]),
                             fmt_num(b["train_seconds"], ".1f"), fmt_num(b["images_per_sec"])])
        lines += table(["model", "configuration", "test accuracy", "parameters", "train s", "images/s"], body) + [""]
        recurrent = best_row(rnn)
        if recurrent:
            link = copy_figure(out, recurrent["path"] / "hidden_states.png", "mnist-hidden-states.png",
                                f"hidden state of {recurrent['entry']} over the 28 steps")
            if link:
                lines += [f"Hidden state of the best recurrent run ({markdown.text(recurrent['entry'])}) over the 28 rows "
                          "(`hidden_states.png`):", "", link, ""]
    return lines


def build_report(paths, out=None, command=None):
    """Write ``out/REPORT.md`` and ``out/figures/``; returns the path of REPORT.md.

    The runs are read first, so bad arguments leave nothing behind; ``out`` None: a new
    ``reports/report-<timestamp>/``.
    """
    experiments = collect(paths)
    if out is None:
        out = runs.timestamped_subdir(Path("reports"), "report")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    every = [r for e in experiments for r in e["rows"]]
    count = sum(1 for r in every if r["path"])
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = ["# ELEC/COMP 576 Assignment 2: LeNet5 on CIFAR10, RNNs on MNIST", "",
             f"Generated on {stamp} by {markdown.code(command or 'python -m tf_assign2.report')} from {count} runs. "
             "Every number below is read from the runs' files (`summary.json`, `history.csv`, `config.json`, "
             "`activation_stats.json`); test accuracy is on the held-out test split, which never steered training.",
             ""]
    number = 1
    for exp in experiments:
        lines += experiment_section(number, exp, out)
        number += 1
    cnn = cnn_section(number, every, out)
    if cnn:
        lines += cnn
        number += 1
    lines += mnist_sections(number, every, out)
    out.mkdir(parents=True, exist_ok=True)
    runs.write_atomic(out / "REPORT.md", "\n".join(lines).rstrip() + "\n")
    return out / "REPORT.md"
