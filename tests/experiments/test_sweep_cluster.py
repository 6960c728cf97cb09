"""One sweep over several machines (``experiments.sweep_cluster``): keras-tuner's oracle hands out
the entries, workers train them into the shared sweep folder.

In-process: the oracle's order, its waits and its end, a diverged entry as a result, a worker ID
given back its entry, a dead worker's entry taken over by another ID (never a live one's), a
restarted chief, and the checks a worker makes. Slow (processes on 127.0.0.1): a chief and two
workers equal the same sweep run on one machine; a worker SIGKILLed mid-entry, started again with
its ID, resumes the entry, which completes once.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA

from tf_assign2 import runs
from tf_assign2.cli.sweep import main
from tf_assign2.errors import UsageError
from tf_assign2.experiments import sweep_cluster as cluster
from tf_assign2.experiments.sweep_oracle import SweepOracle

ENTRIES = ["a", "b", "c"]
WALL_CLOCK = ("train_seconds", "images_per_sec", "run_dir")  # differ between any two runs of a sweep
TINY = ("--ntrain", "10", "--ntest", "3", "--no-visualize", "--no-export", "--deterministic")


@pytest.fixture
def oracle(tmp_path):
    """A chief's oracle over entries a, b, c in tmp_path/cluster, and the events it logged."""
    events = []

    def make(todo=ENTRIES):
        made = SweepOracle(ENTRIES, todo, "sweep-1", tmp_path / "cluster",
                                      lambda *event: events.append(event[:3]))
        made._set_project_dir(str(tmp_path), "cluster")
        return made

    make.events = events
    return make


def _finish(oracle, trial, accuracy=0.5, diverged=False):
    """What a worker reports for an entry (keras-tuner's calls, as its client makes them)."""
    oracle.update_trial(trial.trial_id, {"test_accuracy": float("nan") if diverged else accuracy,
                                         "diverged": float(diverged)})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


def _entry(trial):
    return trial.hyperparameters.values.get("entry")


@pytest.mark.filterwarnings("ignore:All-NaN:RuntimeWarning")  # keras-tuner's nanmax over a diverged entry's NaN
def test_entries_go_out_in_order_then_workers_wait_then_stop(oracle, tmp_path):
    chief = oracle()
    with cluster.hold_worker_id(tmp_path / "cluster", "w0"), cluster.hold_worker_id(tmp_path / "cluster", "w1"):
        first, second = chief.create_trial("w0"), chief.create_trial("w1")
        assert [_entry(first), _entry(second)] == ["a", "b"]
        _finish(chief, first, diverged=True)  # a diverged entry is a result, not a failure
        third = chief.create_trial("w0")
        assert _entry(third) == "c"
        _finish(chief, second, 0.25)
        waiting = chief.create_trial("w1")  # c is being trained: wait, it may come back
        assert waiting.status == "IDLE" and not chief.done()
        _finish(chief, third, 0.75)
        assert chief.create_trial("w1").status == "STOPPED" and chief.done()
    assert [chief.trials[t.trial_id].status for t in (first, second, third)] == ["COMPLETED"] * 3
    assert chief.trials[first.trial_id].score == float("-inf")
    assert [_entry(t) for t in chief.get_best_trials(3)] == ["c", "b", "a"]
    assert oracle.events[:3] == [("start", "a", "w0"), ("start", "b", "w1"), ("end", "a", "w0")]


def test_a_restarted_worker_gets_its_entry_back_and_a_dead_workers_entry_goes_to_another(oracle, tmp_path):
    chief, folder = oracle(), tmp_path / "cluster"
    with cluster.hold_worker_id(folder, "w1"):
        with cluster.hold_worker_id(folder, "w0"):
            assert _entry(chief.create_trial("w0")) == "a"
            assert cluster.is_alive(folder, "w0")
            second = cluster.hold_worker_id(folder, "w0", tries=2)
            with pytest.raises(UsageError, match="w0: this worker ID is in use by process .*give each worker its own ID"):
                second.__enter__()
            assert _entry(chief.create_trial("w1")) == "b"  # w0 is alive: its entry stays with it
        assert not cluster.is_alive(folder, "w0")  # killed: the kernel freed its lock
        with cluster.hold_worker_id(folder, "w0"):  # started again with the same ID: keras-tuner gives a back
            again = chief.create_trial("w0")
            assert _entry(again) == "a" and again.status == "RUNNING"
        with cluster.hold_worker_id(folder, "w2"):  # a worker with another ID takes a over once w0 is gone
            taken = chief.create_trial("w2")
            assert _entry(taken) == "a" and chief.ongoing_trials["w2"] is taken and "w0" not in chief.ongoing_trials
            _finish(chief, taken)
            assert _entry(chief.create_trial("w2")) == "c"  # never b, which live w1 holds
    assert oracle.events == [("start", "a", "w0"), ("start", "b", "w1"), ("again", "a", "w0"),
                             ("taken over", "a", "w2"), ("end", "a", "w2"), ("start", "c", "w2")]
    assert cluster.live_workers(folder) == []


def test_a_restarted_chief_keeps_finished_entries_and_running_ones_with_their_workers(oracle, tmp_path):
    chief, folder = oracle(), tmp_path / "cluster"
    with cluster.hold_worker_id(folder, "w0"), cluster.hold_worker_id(folder, "w1"):
        first = chief.create_trial("w0")
        _finish(chief, first)
        running = chief.create_trial("w1")  # b
        chief.save()
        del chief  # killed; a finished a (so it is not to do), b still runs on w1
        restarted = oracle(todo=["b", "c"])
        restarted.reload()
        assert {w: _entry(t) for w, t in restarted.ongoing_trials.items()} == {"w1": "b"}
        assert _entry(restarted.create_trial("w0")) == "c"  # not b, which w1 still trains; not a, finished
        assert restarted.create_trial("w1").trial_id == running.trial_id  # w1 asks again: b is still its
        _finish(restarted, restarted.trials[running.trial_id])
        assert restarted.trials[first.trial_id].status == "COMPLETED" and not restarted.done()
        _finish(restarted, restarted.ongoing_trials["w0"])
        assert restarted.done() and restarted.create_trial("w0").status == "STOPPED"


def test_worker_and_chief_settings_are_checked(tmp_path, capsys):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("task: cifar\nruns: [{lr: 0.1}]\n")
    for argv, message in [(["--worker", "w0"], "--worker w0: also give --chief HOST:PORT"),
                          (["--chief", "h:1", "--worker", "chief2"], "--worker chief2: expected an ID"),
                          (["--chief", "8000"], "--chief 8000: expected HOST:PORT")]:
        assert main([str(sweep), "--out", str(tmp_path / "out"), *argv]) == 2
        assert message in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UsageError, match=r"--chief 127\.0\.0\.1:\d+: cannot listen there \(Address already in use"):
            cluster.serve(None, "127.0.0.1", str(taken.getsockname()[1]), tmp_path)


def test_a_worker_refuses_another_sweep_folder_or_other_entries(tmp_path):
    import keras_tuner

    out = tmp_path / "out"
    (out / "cluster").mkdir(parents=True)
    runs.write_json(out / "cluster" / "cluster.json", {"sweep_id": "mine"})
    space = SweepOracle.space(ENTRIES, "theirs")
    assert isinstance(space, keras_tuner.HyperParameters)
    with pytest.raises(UsageError, match="serves another sweep folder than --out"):
        cluster.check_served_sweep(space, out, out / "cluster", ENTRIES, "h", 1)
    with pytest.raises(UsageError, match="serves other entries than this sweep file lists"):
        cluster.check_served_sweep(SweepOracle.space(ENTRIES, "mine"), out, out / "cluster", ["a"], "h", 1)
    cluster.check_served_sweep(SweepOracle.space(ENTRIES, "mine"), out, out / "cluster", ENTRIES, "h", 1)


# --------------------------------------------------------------------------- processes on 127.0.0.1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A chief and workers of one sweep as processes, each with its log."""

    def __init__(self, sweep, out, logs, *flags):
        self.command = [sys.executable, "-m", "tf_assign2.sweep", str(sweep), "--out", str(out), *flags,
                        "--chief", f"127.0.0.1:{_free_port()}"]
        self.env = {**os.environ, "TF_ASSIGN2_DATA": str(DATA), "PYTHONUNBUFFERED": "1"}
        self.logs, self.processes = Path(logs), {}

    def start(self, name):
        log = self.logs / f"{name}.log"
        with log.open("a") as f:
            extra = [] if name == "chief" else ["--worker", name]
            self.processes[name] = subprocess.Popen(self.command + extra, stdout=f, stderr=subprocess.STDOUT, env=self.env)
        return self.processes[name]

    def log(self, name):
        path = self.logs / f"{name}.log"
        return path.read_text() if path.is_file() else ""

    def wait_for(self, name, ready, seconds=120):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ready():
                return
            if self.processes[name].poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{name}: not ready in {seconds} s:\n{self.log(name)}")

    def finish(self, seconds=240):
        for name, process in self.processes.items():
            assert process.wait(timeout=seconds) == 0, f"{name}:\n{self.log(name)}"

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def send_garbage(address):
    """What a stranger on the chief's port might send: bytes that are no gRPC at all, then well-formed
    calls that do not fit (a trial for an unknown tuner, reports for trials that do not exist, a new
    search space). Returns the status code of each call."""
    import grpc
    from keras_tuner.src import protos

    host, port = address.rsplit(":", 1)
    for size in (0, 7, 4096):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(os.urandom(size))
    stub, messages = cluster.connect(host, port), protos.get_service()
    calls = [(stub.CreateTrial, messages.CreateTrialRequest(tuner_id="stranger")),
             (stub.UpdateTrial, messages.UpdateTrialRequest(trial_id="0", metrics={"test_accuracy": 1.0})),
             (stub.EndTrial, messages.EndTrialRequest(trial=protos.get_proto().Trial(trial_id="0"))),
             (stub.UpdateSpace, messages.UpdateSpaceRequest())]
    codes = []
    for call, request in calls:
        try:
            call(request, timeout=10)
            codes.append("OK")
        except grpc.RpcError as e:
            codes.append(e.code().name)
    return codes


def _results(out):
    with (Path(out) / "results.csv").open() as f:
        return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in csv.DictReader(f)]


def _ran(timeline, event="end"):
    return [(row["entry"], row["worker"]) for row in timeline if row["event"] == event]


@pytest.mark.slow
def test_a_chief_and_two_workers_finish_a_sweep_as_one_machine_does(data_root, tmp_path):
    sweep = tmp_path / "grid.yaml"  # 6 entries; adam at 1e-2 diverges: a result like any other
    sweep.write_text("task: cifar\ngrid: {optimizer: [adam, sgd, momentum], lr: [0.01, 0.001]}\n")
    flags = (*TINY, "--epochs", "1")
    machines = Cluster(sweep, tmp_path / "shared", tmp_path, *flags)
    started = time.monotonic()
    try:
        machines.start("chief")
        machines.wait_for("chief", lambda: "chief: serving the oracle" in machines.log("chief"))
        refusals = send_garbage(machines.command[-1])  # before any worker: nothing may stick
        for name in ("w0", "w1"):
            machines.start(name)
        machines.finish()
    finally:
        machines.stop()
    assert refusals == ["INVALID_ARGUMENT"] * 4, refusals
    seconds = time.monotonic() - started
    timeline = cluster.read_timeline(tmp_path / "shared")
    ran = _ran(timeline)
    print(f"cluster: {seconds:.0f} s; timeline:")
    for row in timeline:
        print(f"  {row['time']}  {row['event']:<5} {row['entry']:<15} {row['worker']}  {row['detail']}")
    assert sorted(entry for entry, _ in ran) == sorted(r["entry"] for r in _results(tmp_path / "shared"))
    assert {worker for _, worker in ran} == {"w0", "w1"}, ran  # both workers trained entries
    for worker in ("w0", "w1"):
        mine = [entry for entry, w in ran if w == worker]
        assert f"worker {worker}: sweep finished; entries trained here: {len(mine)}" in machines.log(worker)
        for entry in mine:  # each entry's run was made by the worker the chief handed it to
            assert f"{entry}: python -m tf_assign2.cifar --config" in machines.log(worker)
    assert "diverged" in machines.log("chief") and "sweep grid: 1 diverged, 5 completed" in machines.log("chief")
    assert {p.name for p in (tmp_path / "shared").iterdir()} >= {"results.csv", "results.md", "overlay.png", "cluster"}

    assert main([str(sweep), "--out", str(tmp_path / "one"), *flags]) == 0  # the same sweep on one machine
    assert _results(tmp_path / "shared") == _results(tmp_path / "one")
    tables = [[line.split("|")[1:-3] for line in (tmp_path / out / "results.md").read_text().splitlines()
               if line.startswith("|")] for out in ("shared", "one")]  # without train s and images/s
    assert tables[0] == tables[1] and len(tables[0]) == 2 + 6


@pytest.mark.slow
def test_a_worker_killed_mid_entry_resumes_it_when_started_again(data_root, tmp_path):
    sweep = tmp_path / "pair.yaml"
    sweep.write_text("task: cifar\nruns: [{name: first, optimizer: sgd, lr: 0.01}, {name: second, optimizer: sgd, lr: 0.001}]\n")
    out = tmp_path / "shared"
    machines = Cluster(sweep, out, tmp_path, *TINY, "--epochs", "20")  # after the first two, epochs take ms
    backups = lambda: list((out / "runs" / "first").glob("*/backup/epoch-*"))  # noqa: E731
    try:
        machines.start("chief")
        machines.wait_for("chief", lambda: "chief: serving the oracle" in machines.log("chief"))
        machines.start("w0")
        machines.wait_for("w0", lambda: backups())  # epoch 1 of 20 is backed up: kill it now
        machines.processes["w0"].send_signal(signal.SIGKILL)
        assert machines.processes["w0"].wait(timeout=30) == -signal.SIGKILL
        (run,) = [p for p in (out / "runs" / "first").iterdir() if p.is_dir()]
        assert not (run / "summary.json").is_file(), "the entry finished before it was killed"
        killed_at = sorted(p.name for p in backups())
        machines.start("w0")  # the same ID: keras-tuner gives it its ongoing entry
        machines.finish()
    finally:
        machines.stop()
    timeline = cluster.read_timeline(out)
    print(f"killed after {killed_at}; timeline:")
    for row in timeline:
        print(f"  {row['time']}  {row['event']:<6} {row['entry']:<7} {row['worker']}  {row['detail']}")
    assert [(row["event"], row["entry"]) for row in timeline] == [
        ("start", "first"), ("again", "first"), ("end", "first"), ("start", "second"), ("end", "second"), ("stop", "")]
    assert [p for p in (out / "runs" / "first").iterdir() if p.is_dir()] == [run]  # completed once, in its first run
    assert f"[1/2] first: resuming {run} (worker w0)" in machines.log("w0")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 20
    with (run / "history.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == [str(e) for e in range(20)]  # each epoch once
    assert [r["status"] for r in _results(out)] == ["completed", "completed"]


# --------------------------------------------------------------------------- the chief's service


class _Refused(Exception):
    """What ``context.abort`` raises in gRPC: the call ends with a status."""


class _Context:
    def abort(self, code, details):
        self.code, self.details = code, details
        raise _Refused(details)


def test_the_chiefs_service_refuses_what_does_not_fit_and_is_never_left_locked(oracle, tmp_path):
    """Strangers' and malformed calls are refused before the oracle sees them; a call that fails inside
    the oracle (keras-tuner's lock has no ``finally``) does not leave the oracle locked for the chief."""
    import threading
    import types

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.engine import oracle as oracle_module

    from tf_assign2.experiments.oracle_service import guarded_servicer_class

    chief = oracle()
    live = {"w0"}
    service = guarded_servicer_class()(chief, admit=lambda worker: worker in live)
    messages = protos.get_service()

    def refused(call, request, needle):
        context = _Context()
        with pytest.raises(_Refused):
            getattr(service, call)(request, context)
        assert context.code == grpc.StatusCode.INVALID_ARGUMENT and needle in context.details

    refused("CreateTrial", messages.CreateTrialRequest(tuner_id="stranger"), "not a worker of this chief")
    refused("CreateTrial", messages.CreateTrialRequest(tuner_id="w0\n; rm -rf"), "not a worker")
    refused("UpdateTrial", messages.UpdateTrialRequest(trial_id="nope", metrics={"x": 1.0}), "no running trial 'nope'")
    refused("EndTrial", messages.EndTrialRequest(trial=protos.get_proto().Trial(trial_id="nope")), "no running trial")
    refused("GetTrial", messages.GetTrialRequest(trial_id="nope"), "no trial 'nope'")
    refused("UpdateSpace", messages.UpdateSpaceRequest(), "the search space is the chief's")
    assert chief.ongoing_trials == {} and chief.trials == {}  # the oracle never saw any of it

    trial = service.CreateTrial(messages.CreateTrialRequest(tuner_id="w0"), _Context()).trial
    assert trial.status == protos.get_proto().TrialStatus.Value("RUNNING") and list(chief.ongoing_trials) == ["w0"]

    def broken(*args, **kwargs):  # a failure inside the oracle, under keras-tuner's lock
        raise KeyError("inside")

    chief.update_trial = types.MethodType(oracle_module.synchronized(broken), chief)
    refused("UpdateTrial", messages.UpdateTrialRequest(trial_id=trial.trial_id, metrics={}), "refused: KeyError")
    progress = threading.Thread(target=chief.progress, daemon=True)  # the chief's own next call of the oracle
    progress.start()
    progress.join(timeout=5)
    assert not progress.is_alive(), "the oracle stayed locked after a failed call"
