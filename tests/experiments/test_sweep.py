"""Sweeps: entries expand and are checked up front, run as normal runs, go on past diverged runs,
resume (finished entries are not redone), and never reuse a folder holding other settings."""

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tf_assign2 import runs
from tf_assign2.cli.sweep import training_overrides
from tf_assign2.config import to_dict
from tf_assign2.errors import UsageError
from tf_assign2.experiments import sweep


def write_sweep(folder, text, name="s.yaml"):
    path = Path(folder) / name
    path.write_text(text)
    return path


def flags(task, *given):
    """What the sweep command hands run_sweep for training flags given to it: their settings."""
    return {"overrides": training_overrides(task, list(given))}


def fake_trainer(outcomes, calls, accuracy=None, validation=None):
    """Stands in for tf_assign2.train and tf_assign2.resume: (train, resume) that make a run dir where the
    entry's settings say (or take the one to resume), with the outcome asked for.

    ``outcomes`` maps an entry (its runs/<entry> folder name) to a list of statuses, one per call;
    ``accuracy`` (optional) gives a completed run's test accuracy from its entry name (else 0.5), and
    ``validation`` its best validation accuracy (else the test accuracy).
    ``calls`` records ("start", entry folder) or ("resume", run dir) per call.
    """

    def finish(run_dir):
        entry = run_dir.parent.name
        status = outcomes[entry].pop(0)
        if status == "killed":  # SIGKILL: the run dir exists, no summary
            raise KeyboardInterrupt
        acc = (accuracy(entry) if accuracy else 0.5) if status == "completed" else None
        val = (validation(entry) if validation else acc) if status == "completed" else None
        runs.write_json(run_dir / "summary.json", {"status": status, "test_accuracy": acc, "test_loss": 1.0,
                                                   "best_val_accuracy": val,
                                                   "divergence": "loss became nan" if status == "diverged" else None})
        (run_dir / "history.csv").write_text("epoch,loss,accuracy,test_accuracy,epoch_seconds\n"
                                             "0,2.0,0.2,0.3,1.5\n1,1.5,0.4,0.5,1.0\n")
        return SimpleNamespace(path=run_dir, status=status)

    def train(config):
        calls.append(("start", Path(config.runs_dir).name))
        run_dir = Path(config.runs_dir) / f"run-{len(calls)}"
        run_dir.mkdir(parents=True)
        runs.write_json(run_dir / "config.json", to_dict(config))
        return finish(run_dir)

    def resume(run_dir):
        calls.append(("resume", str(run_dir)))
        return finish(Path(run_dir))

    return train, resume


def test_grid_and_listed_entries_expand_in_order(tmp_path):
    path = write_sweep(tmp_path, "task: mnist\ngrid: {cell: [rnn, gru], units: [8, 16]}\n"
                                 "runs:\n  - {name: cnn, model: lenet5}\n  - {optimizer: sgd, lr: 0.1}\n")
    loaded = sweep.load_sweep(path)
    assert loaded["name"] == "s" and loaded["task"] == "mnist"
    assert [n for n, _ in loaded["entries"]] == ["rnn-8", "rnn-16", "gru-8", "gru-16", "cnn", "sgd-0.1"]
    assert loaded["entries"][4][1] == {"model": "lenet5"}


@pytest.mark.parametrize("text,message", [
    ("task: cifar\nrunz: []\n", "unknown key 'runz'"),
    ("runs: [{lr: 0.1}]\n", "task: expected one of cifar, mnist"),
    ("task: cifar\n", "no entries"),
    ("task: cifar\nruns: [{name: a, lr: 0.1}, {name: a, lr: 0.2}]\n", "two entries are named 'a'"),
    ("task: cifar\nsettings: {runs_dir: x}\nruns: [{lr: 0.1}]\n", "runs_dir is set by the sweep"),
    ("task: cifar\ngrid: {lr: 0.1}\n", "grid: lr: expected a non-empty list"),
    ("task: cifar\nbase: nope.yaml\nruns: [{lr: 0.1}]\n", "nope.yaml not found"),
    ("task: cifar\ntarget: 50\nruns: [{lr: 0.1}]\n", r"target: expected a test accuracy in \(0, 1\], got 50"),
])
def test_bad_sweep_files_are_usage_errors(tmp_path, text, message):
    with pytest.raises(UsageError, match=message):
        sweep.load_sweep(write_sweep(tmp_path, text))


def test_every_entry_is_checked_before_anything_runs(tmp_path, cli):
    path = write_sweep(tmp_path, "task: cifar\nruns:\n  - {optimizer: sgd}\n  - {name: typo, learning_rate: 0.1}\n")
    calls = []
    with pytest.raises(UsageError, match=r"s\.yaml: entry 'typo': unknown key 'learning_rate'"):
        sweep.run_sweep(sweep.load_sweep(path), tmp_path / "out", *fake_trainer({}, calls))
    assert calls == [] and not (tmp_path / "out").exists()
    # The sweep's training flags are checked by the training parser before any entry is planned.
    with pytest.raises(UsageError, match="argument --epochs: expected an integer >= 1"):
        training_overrides("cifar", ["--epochs", "0"])
    with pytest.raises(UsageError, match="--runs-dir: not allowed with a sweep"):
        training_overrides("cifar", ["--runs-dir", "x"])
    ok = write_sweep(tmp_path, "task: cifar\nruns: [{lr: 0.1}]\n", "ok.yaml")
    done = cli("tf_assign2.sweep", ok, "--out", tmp_path / "o", "--epochs", "0")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "error: argument --epochs: expected an integer >= 1" in lines[0]
    assert not (tmp_path / "o").exists()


def test_precedence_base_settings_entry_flags(tmp_path):
    (tmp_path / "base.yaml").write_text("epochs: 7\nbatch_size: 20\nlr: 0.5\noptimizer: sgd\n")
    path = write_sweep(tmp_path, "task: cifar\nbase: base.yaml\nsettings: {batch_size: 30, lr: 0.2}\n"
                                 "runs: [{name: a, lr: 0.3}, {name: b}]\n")
    planned = sweep.plan(sweep.load_sweep(path), tmp_path / "out", training_overrides("cifar", ["--epochs", "2"]))
    a, b = (p["config"] for p in planned)
    assert (a["epochs"], a["batch_size"], a["lr"], a["optimizer"]) == (2, 30, 0.3, "sgd")
    assert b["lr"] == 0.2 and b["task"] == "cifar"
    assert a["runs_dir"] == str(tmp_path / "out" / "runs" / "a")


def test_goes_on_past_diverged_runs_and_resumes(tmp_path, capsys):
    path = write_sweep(tmp_path, "task: cifar\nruns: [{name: a, lr: 0.1}, {name: b, lr: 0.01}, {name: c, lr: 0.001}]\n")
    loaded, out, calls = sweep.load_sweep(path), tmp_path / "out", []
    outcomes = {"a": ["diverged"], "b": ["killed", "completed"], "c": ["completed"]}
    runner = fake_trainer(outcomes, calls)

    assert sweep.run_sweep(loaded, out, *runner)[1] is True  # interrupted: b is killed after a diverged
    state = runs.read_json(out / "sweep.json")
    assert [state["entries"][n]["status"] for n in "abc"] == ["diverged", "unfinished", "pending"]
    first_b = out / state["entries"]["b"]["run_dir"]

    assert sweep.run_sweep(loaded, out, *runner)[1] is False  # the same command again
    assert [c[0] for c in calls] == ["start", "start", "resume", "start"]
    assert calls[2] == ("resume", str(first_b))  # b continues its own run; a is not redone
    assert "a: diverged earlier" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["entry"], r["status"], r["test_accuracy"]) for r in rows] == [
        ("a", "diverged", ""), ("b", "completed", "0.5"), ("c", "completed", "0.5")]
    assert len(list((out / "runs").glob("*/*/config.json"))) == 3  # one run per entry
    md = (out / "results.md").read_text()
    assert "| a | adam | 0.1 |  | NaN | diverged (loss became nan) |" in md  # no validation figure: not chosen
    assert "Best: **b**, chosen on validation accuracy 0.5000" in md and (out / "overlay.png").stat().st_size > 0

    assert sweep.run_sweep(loaded, out, *runner)[1] is False  # nothing left to do
    assert len(calls) == 4


def test_target_gives_the_epoch_and_training_seconds_it_was_first_reached(tmp_path):
    path = write_sweep(tmp_path, "task: cifar\ntarget: 0.45\nruns: [{name: a, lr: 0.1}, {name: b, lr: 0.01}]\n")
    out, calls = tmp_path / "out", []
    sweep.run_sweep(sweep.load_sweep(path), out, *fake_trainer({"a": ["diverged"], "b": ["completed"]}, calls))
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["entry"], r["epochs_to_target"], r["seconds_to_target"]) for r in rows] == [
        ("a", "2", "2.5"), ("b", "2", "2.5")]  # test accuracy 0.3 then 0.5; epochs of 1.5 s and 1.0 s
    md = (out / "results.md").read_text()
    assert "to 0.45 (epoch, train s) |" in md and "| 2, 2.5 s |" in md
    assert sweep.time_to_target({"test_accuracy": [0.3, 0.5]}, 0.6) == (None, None)


def test_seeds_are_summarised_by_their_mean(tmp_path):
    path = write_sweep(tmp_path, "task: mnist\ntarget: 0.6\nsettings: {val_split: 0.0}\n"
                                 "grid: {lr: [0.1, 0.2], seed: [0, 1]}\n")
    accuracy = {"0.1-0": 0.9, "0.1-1": 0.3, "0.2-0": 0.7, "0.2-1": 0.6}  # 0.1 has the best run, 0.2 the best mean
    out, calls = tmp_path / "out", []
    sweep.run_sweep(sweep.load_sweep(path), out, *fake_trainer({e: ["completed"] for e in accuracy}, calls,
                                                                    accuracy.get))
    text = (out / "results.md").read_text()
    assert "| entry | optimizer | lr | seed |" in text  # seed varies: shown; val_split does not: hidden
    assert "| 0.1 | 2/2 | 0.6000 | 0.6000 | 0.3000 | 0.9000 | 0/2 |" in text  # the fake history tops out at 0.5
    assert "| 0.2 | 2/2 | 0.6500 | 0.6500 | 0.6000 | 0.7000 | 0/2 |" in text
    assert ("Best mean over seeds, chosen on mean validation accuracy: **optimizer adam, lr 0.2**, 0.6500; its "
            "mean test accuracy 0.6500.") in text and "Best: **" not in text
    with open(out / "results.csv") as f:
        assert {(r["entry"], r["seed"], r["val_split"]) for r in csv.DictReader(f)} >= {("0.2-1", "1", "0.0")}


def test_the_best_entry_is_chosen_on_validation_and_reported_on_test(tmp_path):
    """An entry best on test accuracy is not chosen when another is better on validation: results.md and
    the report both name the validation-best, with its test accuracy beside it; over seeds, the same."""
    from tf_assign2.experiments import report

    path = write_sweep(tmp_path, "task: cifar\nruns: [{name: a, lr: 0.1}, {name: b, lr: 0.01}, {name: c, lr: 0.001}]\n")
    out, calls = tmp_path / "out", []
    test = {"a": 0.50, "b": 0.80, "c": 0.60}.get  # b is the test-best
    validation = {"a": 0.70, "b": 0.60, "c": 0.70}.get  # a and c tie on validation: the earlier entry, a
    sweep.run_sweep(sweep.load_sweep(path), out, *fake_trainer({e: ["completed"] for e in "abc"}, calls, test,
                                                                validation))
    md = (out / "results.md").read_text()
    assert "| a | adam | 0.1 | **0.7000** | 0.5000 | completed |" in md and "| b | adam | 0.01 | 0.6000 | 0.8000 |" in md
    assert "Best: **a**, chosen on validation accuracy 0.7000; its test accuracy 0.5000 (runs/a/run-1)." in md
    text = report.build_report([out], tmp_path / "report").read_text()
    assert ("**Best configuration, chosen on validation accuracy: a** (optimizer adam, lr 0.1): validation "
            "accuracy 0.7000; its test accuracy 0.5000") in text
    assert "Best configuration, chosen on validation accuracy: b" not in text

    seeds = write_sweep(tmp_path, "task: cifar\ngrid: {lr: [0.1, 0.2], seed: [0, 1]}\n", "seeds.yaml")
    test = {"0.1-0": 0.9, "0.1-1": 0.9, "0.2-0": 0.5, "0.2-1": 0.5}.get  # 0.1 is best on test
    validation = {"0.1-0": 0.5, "0.1-1": 0.5, "0.2-0": 0.7, "0.2-1": 0.6}.get  # 0.2 on validation
    sweep.run_sweep(sweep.load_sweep(seeds), tmp_path / "seeds", *fake_trainer(
        {e: ["completed"] for e in ("0.1-0", "0.1-1", "0.2-0", "0.2-1")}, calls, test, validation))
    assert ("chosen on mean validation accuracy: **optimizer adam, lr 0.2**, 0.6500; its mean test accuracy "
            "0.5000.") in (tmp_path / "seeds" / "results.md").read_text()


def test_a_sweep_without_validation_chooses_nothing(tmp_path):
    path = write_sweep(tmp_path, "task: cifar\nsettings: {val_split: 0}\nruns: [{name: a, lr: 0.1}, {name: b}]\n")
    calls = []
    sweep.run_sweep(sweep.load_sweep(path), tmp_path / "out", *fake_trainer(
        {"a": ["completed"], "b": ["completed"]}, calls, validation=lambda entry: None))
    md = (tmp_path / "out" / "results.md").read_text()
    assert "No entry is chosen: the runs have no validation split" in md and "**" not in md.split("|---|")[-1]


def test_a_folder_with_other_settings_is_not_reused(tmp_path):
    path = write_sweep(tmp_path, "task: cifar\nruns: [{name: a, lr: 0.1}]\n")
    out, calls = tmp_path / "out", []
    sweep.run_sweep(sweep.load_sweep(path), out, *fake_trainer({"a": ["completed"]}, calls))
    with pytest.raises(UsageError, match=r"entry 'a' was run with other settings \(epochs: 10 -> 3\)"):
        sweep.run_sweep(sweep.load_sweep(path), out, *fake_trainer({}, calls), **flags("cifar", "--epochs", "3"))
    other = write_sweep(tmp_path, "name: s\ntask: mnist\nruns: [{name: a}]\n", "t.yaml")
    with pytest.raises(UsageError, match="holds sweep 's' \\(cifar\\)"):
        sweep.run_sweep(sweep.load_sweep(other), out, *fake_trainer({}, calls))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="holds no sweep.json"):
        sweep.run_sweep(sweep.load_sweep(path), tmp_path / "busy", *fake_trainer({}, calls))
    assert len(calls) == 1


def test_a_folder_from_before_a_setting_existed_still_resumes(tmp_path):
    """A sweep folder written before a setting was added lacks it; it ran with the default, so the
    same sweep resumes there, and a non-default value of the new setting is still refused."""
    path = write_sweep(tmp_path, "task: mnist\nruns: [{name: a}, {name: b, lr: 0.1}]\n")
    out, calls = tmp_path / "out", []
    runner = fake_trainer({"a": ["completed"], "b": ["killed", "completed"]}, calls)
    assert sweep.run_sweep(sweep.load_sweep(path), out, *runner)[1] is True
    state = runs.read_json(out / "sweep.json")
    for entry in state["entries"].values():
        del entry["config"]["augment_shift"]  # as an older version wrote it
    runs.write_json(out / "sweep.json", state)
    assert sweep.run_sweep(sweep.load_sweep(path), out, *runner)[1] is False
    assert [c[0] for c in calls] == ["start", "start", "resume"]
    with pytest.raises(UsageError, match=r"entry 'a' was run with other settings \(augment_shift: 0 -> 2\)"):
        sweep.run_sweep(sweep.load_sweep(path), out, *runner, **flags("mnist", "--augment-shift", "2"))


def test_sweep_cli_end_to_end_on_real_data(data_root, tmp_path, cli):
    """Two tiny entries through `python -m tf_assign2.sweep` (in this process); a second run of the command does nothing."""
    path = write_sweep(tmp_path, f"name: tiny\ntask: cifar\nsettings: {{data_dir: {data_root / 'CIFAR10'}, ntrain: 10, "
                                 "ntest: 2, epochs: 1, visualize: false}\n"
                                 "runs: [{name: sgd, optimizer: sgd, lr: 0.01}, {name: adagrad, optimizer: adagrad}]\n")
    out = tmp_path / "out"
    result = cli("tf_assign2.sweep", path, "--out", out, "--no-test-curve")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[2/2] adagrad: python -m tf_assign2.cifar --config" in result.stdout
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["entry"] for r in rows] == ["sgd", "adagrad"]
    for row in rows:
        summary = json.loads((out / row["run_dir"] / "summary.json").read_text())
        assert row["status"] == summary["status"] == "completed"
        assert float(row["test_accuracy"]) == summary["test_accuracy"]
        config = json.loads((out / row["run_dir"] / "config.json").read_text())
        assert (config["optimizer"], config["ntrain"], config["test_curve"]) == (row["entry"], 10, False)
        assert (out / row["run_dir"] / "saved_model" / "saved_model.pb").is_file()  # a normal run's outputs
        history = list(csv.DictReader((out / row["run_dir"] / "history.csv").open()))
        assert 0 < float(history[0]["epoch_seconds"]) <= summary["train_seconds"]  # what `target` sums
    assert (out / "overlay.png").is_file() and "| sgd | sgd |" in (out / "results.md").read_text()

    again = cli("tf_assign2.sweep", path, "--out", out, "--no-test-curve")
    assert again.returncode == 0 and again.stdout.count("skipped") == 2
    assert len(list((out / "runs").glob("*/*/config.json"))) == 2
