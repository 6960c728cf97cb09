"""The tuner as a user runs it: spaces, a small search and its outputs, resume, failures, chief + workers."""

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, ROOT, trials_done

import tf_assign2 as ta
from tf_assign2.cli.tune import main
from tf_assign2.errors import UsageError
from tf_assign2.experiments import tune
from tf_assign2.experiments.hypermodel import SearchHyperModel


def _tiny(data_root, tmp_path, *extra, task="cifar", epochs=("--epochs", "1")):
    folder = "CIFAR10" if task == "cifar" else "MNIST"
    return [task, "--data-dir", str(data_root / folder), "--ntrain", "10", "--ntest", "3", *epochs,
            "--directory", str(tmp_path / "tune"), "--no-visualize", "--no-test-curve", *extra]


def _rows(project):
    with (project / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def _trial_files(project):
    return {p.parent.name: p.read_bytes() for p in sorted(project.glob("trial_*/trial.json"))}


# --------------------------------------------------------------------------- spaces (no TensorFlow)


@pytest.mark.parametrize("task", ["cifar", "mnist"])
def test_the_printed_space_is_the_built_in_one_and_loads_back_as_a_space_file(task, tmp_path, capsys):
    """--print-space writes the schema's default space as a YAML file that --space reads back unchanged."""
    assert main([task, "--print-space"]) == 0
    text = capsys.readouterr().out
    (tmp_path / "space.yaml").write_text(text)
    space = tune.load_space(tmp_path / "space.yaml", task)
    assert space == tune.default_space(task) == ta.search_space(task)
    assert set(space) == {"lr", "optimizer", *({"cifar": ("fc_units", "conv1_filters", "conv2_filters"),
                                               "mnist": ("cell", "units")}[task])}
    # keras-tuner draws in declaration order: the recorded searches' trials come again from the same seed only
    # if the built-in space declares its hyperparameters in the order their trials.csv shows
    record = next((ROOT / "docs" / "tune").glob(f"{task}-*-trials.csv")).read_text().splitlines()[0].split(",")
    assert [column for column in record if column in space] == list(space)
    named = text.split(f"# {task} names: ")[1].splitlines()[0]
    assert ("conv1_filters" in named) == (task == "cifar") and ("cell" in named) == (task == "mnist")


def test_the_hyperparameters_are_the_searchable_settings_of_the_schema():
    """Each hyperparameter varies one setting of the schema and is checked by that setting's rule; the pair
    setting conv_filters is searched entry by entry, and a trial's values land in their places."""
    from tf_assign2 import config as schema

    assert {rule.setting for rule in tune.HYPERPARAMETERS.values()} == set(schema.SEARCHABLE)
    assert [n for n, r in tune.HYPERPARAMETERS.items() if r.setting == "conv_filters"] == ["conv1_filters",
                                                                                            "conv2_filters"]
    for name, rule in tune.HYPERPARAMETERS.items():
        setting = schema.SETTINGS[rule.setting]
        if name in ("conv1_filters", "conv2_filters"):
            assert rule.ok(1) and rule.ok(4096) and not rule.ok(0) and not rule.ok(4097)
        elif setting.kind in (int, float) and setting.low is not None:
            assert not rule.ok(setting.low - 1), name
    base = schema.build("cifar", {})
    trial = tune.trial_config(base, {"conv2_filters": 128, "lr": 0.01, "tuner/epochs": 3})
    assert trial.conv_filters == (base.conv_filters[0], 128) and trial.lr == 0.01
    with pytest.raises(UsageError, match="search_space"):
        ta.search_space("cifar10")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("lr: {min: 1.0e-4, max: 1.0e-2}\nfc_unit: [256, 512]\n", "unknown hyperparameter 'fc_unit' for cifar (did you mean fc_units?)"),
        ("learning_rate: 0.01\n", "unknown hyperparameter 'learning_rate'"),
        ("cell: [lstm, gru]\n", "unknown hyperparameter 'cell' for cifar"),
        ("lr: {min: 1.0e-2, max: 1.0e-4}\n", "lr: min 0.01 must be below max 0.0001"),
        ("lr: {min: 0, max: 0.1, sampling: log}\n", "lr: min: 0; expected a learning rate in (0, 10]"),
        ("momentum: {min: 0.0, max: 0.99, sampling: log}\n", "log sampling needs min > 0"),
        ("lr: {min: 1.0e-4, mx: 1.0e-2}\n", "unknown field 'mx'"),
        ("lr: {min: 1.0e-4}\n", "needs both min and max"),
        ("optimizer: [adam, adamm]\n", "optimizer: 'adamm'; expected one of"),
        ("fc_units: [256, 256]\n", "repeated choices"),
        ("fc_units: [256.5]\n", "expected an integer"),
        ("fc_units: {min: 64, max: 512, step: 1000}\n", "step 1000"),
        ("optimizer: {min: 1, max: 2}\n", "a range is not possible here"),
        ("lr: []\n", "empty list"),
        ("- lr\n", "expected a mapping"),
        ("lr: [0.1\n", "not valid YAML"),
    ],
)
def test_bad_spaces_are_rejected_with_the_file_and_key(tmp_path, text, needle):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as error:
        tune.load_space(path, "cifar")
    assert str(error.value).startswith(f"--space {path}: ") and needle in str(error.value), str(error.value)


def test_space_accepts_yaml_text_numbers_and_fixed_values(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("lr: {min: 1e-4, max: 1e-2, sampling: log}\noptimizer: adam\nunits: [64, 128]\ncell: gru\n")
    assert tune.load_space(path, "mnist") == {
        "lr": {"min": 1e-4, "max": 1e-2, "sampling": "log"}, "optimizer": "adam", "units": [64, 128], "cell": "gru",
    }


def test_typo_in_space_is_one_line_exit_2_and_no_project(data_root, tmp_path, cli):
    space = tmp_path / "typo.yaml"
    space.write_text("lr: {min: 1.0e-4, max: 1.0e-2, sampling: log}\noptimiser: [adam, sgd]\n")
    done = cli("tf_assign2.tune", *_tiny(data_root, tmp_path, "--space", str(space)))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == f"error: --space {space}: unknown hyperparameter 'optimiser' for cifar (did you mean optimizer?)"
    assert not (tmp_path / "tune").exists()


@pytest.mark.parametrize(
    "chief, worker, environ, expected",
    [
        (None, None, {}, ("standalone", {})),
        ("127.0.0.1:8000", None, {}, ("chief", {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
                                                "KERASTUNER_TUNER_ID": "chief"})),
        ("localhost:8000", None, {}, ("chief", {"KERASTUNER_ORACLE_IP": "localhost", "KERASTUNER_ORACLE_PORT": "8000",
                                                "KERASTUNER_TUNER_ID": "chief"})),
        ("10.0.0.1:8000", "tuner3", {}, ("worker", {"KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
                                                   "KERASTUNER_TUNER_ID": "tuner3"})),
        (None, "tuner1", {"KERASTUNER_ORACLE_IP": "h", "KERASTUNER_ORACLE_PORT": "9"}, ("worker", {"KERASTUNER_TUNER_ID": "tuner1"})),
        (None, None, {"KERASTUNER_ORACLE_IP": "::1", "KERASTUNER_ORACLE_PORT": "9", "KERASTUNER_TUNER_ID": "chief"},
         ("chief", {})),
        (None, None, {"KERASTUNER_ORACLE_IP": "h", "KERASTUNER_ORACLE_PORT": "9", "KERASTUNER_TUNER_ID": "t0"}, ("worker", {})),
    ],
)
def test_distributed_roles(chief, worker, environ, expected):
    assert tune.distribution(chief, worker, environ) == expected


@pytest.mark.parametrize(
    "chief, worker, environ, needle",
    [
        (None, "tuner0", {}, "--worker tuner0: also give --chief HOST:PORT"),
        ("8000", None, {}, "--chief 8000: expected HOST:PORT"),
        ("host:80000", None, {}, "expected a port number"),
        ("host:8000", "chief2", {}, "without 'chief'"),
        # The oracle has no authentication: a chief listens on this machine only, workers come through SSH tunnels.
        ("0.0.0.0:8000", None, {}, "--chief 0.0.0.0:8000: the chief's port has no authentication, so it listens"),
        ("10.0.0.1:8000", None, {}, "give 127.0.0.1:PORT, and let workers elsewhere reach it through an SSH tunnel"),
        (None, None, {"KERASTUNER_ORACLE_IP": "h", "KERASTUNER_ORACLE_PORT": "9", "KERASTUNER_TUNER_ID": "chief"},
         "--chief h:9: the chief's port has no authentication"),
        (None, None, {"KERASTUNER_ORACLE_IP": "h"}, "KERASTUNER_ORACLE_PORT and KERASTUNER_TUNER_ID is not"),
    ],
)
def test_bad_distributed_settings(chief, worker, environ, needle):
    with pytest.raises(UsageError, match=needle.replace("(", r"\(")):
        tune.distribution(chief, worker, environ)


# --------------------------------------------------------------------------- searches (in-process)


def test_random_search_writes_every_output_and_evaluate_reads_the_best_run(data_root, tmp_path, capsys, cli):
    import tensorflow  # noqa: F401  (for the registry baseline below)

    before = tune.custom_gradient_names()
    assert main(_tiny(data_root, tmp_path, "--max-trials", "3")) == 0
    # Memory stays flat: of the custom gradients TF registered (one per traced train step, each
    # pinning that model's variables), only the last model's are left after 3 trials + the retrain
    # (at most 2: a full batch and the last, smaller one are traced apart); without the purge >= 4.
    assert len(tune.custom_gradient_names() - before) <= 2
    out = capsys.readouterr().out
    project = tmp_path / "tune" / "cifar-random"
    rows = _rows(project)
    assert [r["trial_id"] for r in rows] == ["0", "1", "2"] and trials_done(out) == [None] * 3
    assert {r["status"] for r in rows} == {"completed"}
    for row in rows:
        assert 1e-4 <= float(row["lr"]) <= 1e-2 and row["optimizer"] in ("adam", "momentum", "rmsprop")
        assert row["fc_units"] in ("256", "512", "1024") and row["epochs"] == "1"
        assert 0 <= float(row["val_accuracy"]) <= 1 and float(row["seconds"]) > 0 and float(row["rss_mb"]) > 0
    assert len({r["lr"] for r in rows}) == 3

    best = json.loads((project / "best_hyperparameters.json").read_text())
    best_row = max(rows, key=lambda r: float(r["val_accuracy"]))
    assert best["val_accuracy"] == pytest.approx(float(best_row["val_accuracy"]))
    assert best["hyperparameters"]["lr"] == pytest.approx(float(best_row["lr"]))
    assert (project / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    run_dir = Path(best["run_dir"])
    assert run_dir.parent == project / "best" and (run_dir / "saved_model").is_dir()
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["lr"] == best["hyperparameters"]["lr"] and saved["fc_units"] == best["hyperparameters"]["fc_units"]
    assert list(saved["conv_filters"]) == [best["hyperparameters"]["conv1_filters"], best["hyperparameters"]["conv2_filters"]]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["test_accuracy"] == best["test_accuracy"]
    # The search never saw the test split: the trials were trained and scored on train/val only.
    assert saved["data_info"]["n_test"] == 30 and saved["data_info"]["n_val"] == 10

    assert not (run_dir / "filters.png").exists()  # --no-visualize holds for the retrain too
    evaluated = cli("tf_assign2.evaluate", run_dir)
    assert evaluated.returncode == 0, evaluated.stderr
    (eval_dir,) = run_dir.glob("eval-*")
    assert json.loads((eval_dir / "eval.json").read_text())["accuracy"] == summary["test_accuracy"]


@pytest.mark.slow  # six models: four trials and two retrains
def test_resume_continues_without_rerunning_finished_trials(data_root, tmp_path, capsys, monkeypatch):
    args = _tiny(data_root, tmp_path, "--max-trials", "3")
    project = tmp_path / "tune" / "cifar-random"
    real_fit, calls = SearchHyperModel.fit, []

    def fit_then_interrupt(self, *a, **k):  # Ctrl-C during the second trial
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fit(self, *a, **k)

    monkeypatch.setattr(SearchHyperModel, "fit", fit_then_interrupt)
    assert main(args) == 130
    assert [(r["trial_id"], r["status"]) for r in _rows(project)] == [("0", "completed"), ("1", "running")]
    first = _trial_files(project)["trial_0"]
    capsys.readouterr()

    monkeypatch.setattr(SearchHyperModel, "fit", real_fit)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "continuing the search" in out and trials_done(out) == [None] * 2  # trials 1 (again) and 2
    assert _trial_files(project)["trial_0"] == first
    assert [(r["trial_id"], r["status"]) for r in _rows(project)] == [(i, "completed") for i in ("0", "1", "2")]

    # The same command once more: nothing is trained again, not even the best model.
    files = _trial_files(project)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert trials_done(out) == [] and "best model already retrained" in out, out
    assert _trial_files(project) == files and len(list((project / "best").iterdir())) == 1

    # Other settings are refused; --overwrite starts again.
    assert main(_tiny(data_root, tmp_path, "--max-trials", "3", "--batch-size", "25")) == 2
    assert "config.batch_size differ" in capsys.readouterr().err
    assert main(_tiny(data_root, tmp_path, "--max-trials", "1", "--overwrite")) == 0
    assert [r["trial_id"] for r in _rows(project)] == ["0"]


@pytest.mark.slow  # four models: three trials and a retrain
def test_diverged_trials_are_failed_and_an_all_failed_search_exits_1(data_root, tmp_path, capsys):
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text("lr: [1.0e-3, 10.0]\noptimizer: sgd\n")
    assert main(_tiny(data_root, tmp_path, "--max-trials", "2", "--space", str(mixed))) == 0
    rows = {r["lr"]: r for r in _rows(tmp_path / "tune" / "cifar-random")}
    assert rows["10.0"]["status"] == "failed" and rows["10.0"]["val_accuracy"] == ""
    assert rows["10.0"]["note"] == "diverged (NaN/Inf loss) in epoch 1" and rows["10.0"]["optimizer"] == "sgd"
    assert rows["0.001"]["status"] == "completed"
    best = json.loads((tmp_path / "tune" / "cifar-random" / "best_hyperparameters.json").read_text())
    assert best["hyperparameters"]["lr"] == 0.001 and best["status"] == "completed"
    capsys.readouterr()

    hopeless = tmp_path / "hopeless.yaml"
    hopeless.write_text("lr: 10.0\noptimizer: sgd\n")
    assert main(_tiny(data_root, tmp_path, "--space", str(hopeless), "--project-name", "hopeless")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: every trial failed (1 of 1): diverged"), err
    assert not (tmp_path / "tune" / "hopeless" / "best").exists()


@pytest.mark.slow  # about ten RNN trials and two retrains
def test_mnist_bayesian_and_hyperband(data_root, tmp_path, capsys):
    space = tmp_path / "rnn.yaml"
    space.write_text("lr: {min: 1.0e-3, max: 1.0e-2, sampling: log}\ncell: [rnn, gru]\nunits: [16, 32]\n")
    # --jit off: without it each GRU trial is XLA-compiled on a CPU, most of the time of this test
    bayes = _tiny(data_root, tmp_path, "--tuner", "bayesian", "--max-trials", "3", "--initial-points", "1",
                  "--space", str(space), "--jit", "off", task="mnist")
    assert main(bayes) == 0
    rows = _rows(tmp_path / "tune" / "mnist-bayesian")
    assert len(rows) == 3 and {r["status"] for r in rows} == {"completed"} and {r["cell"] for r in rows} <= {"rnn", "gru"}
    config = json.loads((Path(json.loads((tmp_path / "tune" / "mnist-bayesian" / "best_hyperparameters.json")
                                         .read_text())["run_dir"]) / "config.json").read_text())
    assert config["model"] == "rnn" and config["cell"] in ("rnn", "gru") and config["units"] in (16, 32)

    hyper = _tiny(data_root, tmp_path, "--tuner", "hyperband", "--max-epochs", "2", "--factor", "2",
                  "--space", str(space), "--jit", "off", task="mnist", epochs=())
    assert main(hyper) == 0
    rows = _rows(tmp_path / "tune" / "mnist-hyperband")
    assert {r["status"] for r in rows} == {"completed"} and {r["tuner/epochs"] for r in rows} == {"1", "2"}
    continued = [r for r in rows if r["tuner/initial_epoch"] == "1"]
    assert continued and all(r["epochs"] == "2" and r["tuner/trial_id"] for r in continued)
    capsys.readouterr()
    assert main(hyper + ["--epochs", "2"]) == 2
    assert "--epochs is for --tuner random or bayesian, not hyperband (use --max-epochs)" in capsys.readouterr().err


# --------------------------------------------------------------------------- distributed


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_chief_is_announced_once_its_port_listens_not_before(capsys):
    """keras-tuner's chief starts its server late, inside ``tuner.search``: the line that tells workers
    to connect waits for the port to accept a connection."""
    from tf_assign2.experiments.oracle_service import announce_when_listening

    port = _free_port()
    announce_when_listening("127.0.0.1", port, f"chief: serving the oracle on 127.0.0.1:{port}", timeout=30)
    time.sleep(0.5)
    assert "serving the oracle" not in capsys.readouterr().out  # nothing listens yet
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        deadline = time.monotonic() + 10
        out = ""
        while "serving the oracle" not in out and time.monotonic() < deadline:
            time.sleep(0.05)
            out += capsys.readouterr().out
    assert out.count(f"chief: serving the oracle on 127.0.0.1:{port}") == 1


def _wait_for(path, text, process, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text():
            return
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"{path.name}: no {text!r}:\n{path.read_text() if path.is_file() else ''}")


@pytest.mark.slow
def test_chief_and_two_workers_complete_a_search(data_root, tmp_path):
    """One chief and two workers on 127.0.0.1; every trial is run by a worker, both workers run some."""
    args = [sys.executable, "-m", "tf_assign2.tune", *_tiny(data_root, tmp_path, "--max-trials", "6", "--epochs", "2"),
            "--chief", f"127.0.0.1:{_free_port()}"]
    env = {**os.environ, "TF_ASSIGN2_DATA": str(DATA), "PYTHONUNBUFFERED": "1"}
    logs = {name: tmp_path / f"{name}.log" for name in ("chief", "tuner0", "tuner1")}
    processes = {}
    try:
        # The chief first: a worker that waits for it backs off (gRPC reconnects ever more slowly).
        with logs["chief"].open("w") as log:
            processes["chief"] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        _wait_for(logs["chief"], "chief: serving the oracle", processes["chief"], 120)
        for worker in ("tuner0", "tuner1"):
            with logs[worker].open("w") as log:
                processes[worker] = subprocess.Popen(args + ["--worker", worker], stdout=log,
                                                     stderr=subprocess.STDOUT, env=env)
        for name, process in processes.items():
            assert process.wait(timeout=300) == 0, logs[name].read_text()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    ran = {worker: trials_done(logs[worker].read_text()).count(worker) for worker in ("tuner0", "tuner1")}
    assert all(ran.values()) and sum(ran.values()) == 6, ran
    for worker in ran:
        assert f"worker {worker}: search finished; {ran[worker]} trials ran here" in logs[worker].read_text()
    project = tmp_path / "tune" / "cifar-random"
    rows = _rows(project)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"completed"} and {r["epochs"] for r in rows} == {"2"}
    assert trials_done(logs["chief"].read_text()) == []  # the chief only serves the oracle
    best = json.loads((project / "best_hyperparameters.json").read_text())
    assert json.loads((Path(best["run_dir"]) / "summary.json").read_text())["status"] == "completed"


def test_a_project_recorded_before_a_setting_existed_continues():
    """An older search.json lacks settings added since (it ran with their defaults): continuing it
    is allowed; asking for a non-default value of the new setting is a change."""
    from tf_assign2.config import Config, to_dict

    fresh = {"task": "mnist", "tuner": "random", "config": json.loads(json.dumps(to_dict(Config())))}
    older = json.loads(json.dumps(fresh))
    del older["config"]["augment_shift"]
    assert tune._differences(older, fresh) == []
    fresh["config"]["augment_shift"] = 2
    assert tune._differences(older, fresh) == ["config.augment_shift"]
