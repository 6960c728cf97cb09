"""One sweep over several machines: keras-tuner's oracle hands out the entries, workers train them.

    # machine A, the chief: serves the entries (on 127.0.0.1 only), trains nothing, writes the results
    python -m tf_assign2.sweep SWEEP.yaml --out /shared/sweeps/x --chief 127.0.0.1:8000
    # machines B, C, ...: one worker each (unique IDs), through an SSH tunnel to the chief's port
    ssh -N -L 8000:127.0.0.1:8000 user@chief-host &
    python -m tf_assign2.sweep SWEEP.yaml --out /shared/sweeps/x --chief 127.0.0.1:8000 --worker w0

The sweep folder is on a filesystem every machine mounts at the same path; it is the state, as
for a one-machine sweep (``experiments.sweep``): every entry is trained by ``tf_assign2.train`` into
``runs/<entry>/<run>/``, resumed from its backup if its run was interrupted, skipped if it finished. Beside it, ``cluster/`` holds what the cluster adds:

    cluster/oracle.json, trial_*/    keras-tuner's project: which entry went to which worker ID, results
    cluster/cluster.json             the sweep's ID (a worker of another folder is refused), the chief's address
    cluster/timeline.csv             every hand-out, return and result with time and worker ID
    cluster/workers/<ID>/.lock       held by each running worker: the chief's way to see that it is alive

The chief serves ``SweepOracle`` (a ``keras_tuner.Oracle``) over keras-tuner's own gRPC service
(its ``OracleServicer``); the workers are ``keras_tuner`` tuners whose ``run_trial`` trains one
entry, talking to it through keras-tuner's ``OracleClient``. A trial is one entry: its one
hyperparameter, ``entry``, is a ``Choice`` of the entry names; its objective is the test
accuracy (a diverged entry is a result: a completed trial scored -inf).

Why an oracle of ours rather than ``GridSearch`` over that Choice: keras-tuner 1.4's grid oracle
keeps its place in the grid (``_populate_next``) outside its saved state, so a restarted chief
hands out only the entries that were running and then stops, and it hands a running entry to
the next worker that asks even while its first worker still trains it. ``SweepOracle`` hands
out the entries in the sweep's order and derives everything from the saved trials and the run
folders.

Faults:

* A worker killed mid-entry: keras-tuner keeps the entry as that worker ID's ongoing trial and
  gives it back when a worker with the same ID asks again; the run resumes from its backup. A
  worker with another ID that asks for work takes it over once the dead worker's lock is free
  (the kernel frees it with the process; NFS when the lease of a dead machine ends).
* A chief killed and started again reloads keras-tuner's project from ``cluster/``: finished
  entries stay finished, running ones stay with their workers (whose calls wait for the chief,
  up to keras-tuner's hour), the others are handed out as before.
* A finished entry is never trained again: the worker looks at the entry's run folder first,
  under the entry's lock (``runs/<entry>/.lock``), so two workers never train one entry at once;
  the run folder's own lock (``runs.owned``) refuses a second resume too.

The oracle has no authentication of its own, so the chief listens on a loopback address only
(``--chief 127.0.0.1:PORT``) and workers on other machines reach it through SSH tunnels
(docs/experiments.md); its service (``oracle_service.GuardedServicer``) refuses requests that do
not fit the oracle's state, and tuner IDs that hold no worker lock, without wedging the chief.
"""

import contextlib
import csv
import datetime
import fcntl
import io
import math
import os
import re
import socket
import sys
import time
import uuid
import warnings
from pathlib import Path

from tf_assign2 import runs
from tf_assign2.errors import UsageError
from tf_assign2.experiments import sweep as sweeps
from tf_assign2.experiments.oracle_service import listen_check
from tf_assign2.experiments.tune import ORACLE_IP, ORACLE_PORT, TUNER_ID

CLUSTER = "cluster"  # out/cluster: keras-tuner's project and the cluster's own files
OBJECTIVE = "test_accuracy"
CHIEF_POLL_SECONDS = 0.5  # how often the chief looks whether the sweep is done and its workers gone
IDLE_SECONDS = 2.0  # a worker asks again this often while the last entries are trained elsewhere
RECONNECT_MS = 5000  # a worker's longest wait between tries to reach a (re)starting chief (gRPC's own: 120 s)
NEVER = 2**31  # keras-tuner stops after this many consecutive failed trials (default 3)
TIMELINE_COLUMNS = ("time", "event", "entry", "worker", "trial", "detail")


# --------------------------------------------------------------------------- liveness of workers


def worker_lock(cluster, worker):
    """The folder whose ``.lock`` a running worker holds (``runs.owned``)."""
    return Path(cluster) / "workers" / worker


def is_alive(cluster, worker):
    """Whether a process holds ``worker``'s lock: a worker holds it from before it first asks for an
    entry until it exits, and the kernel frees it when the process dies (however it dies)."""
    path = worker_lock(cluster, worker) / runs.LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False  # never started (or its folder removed): nothing will report for it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # frees the probe's lock at once
    return False


def live_workers(cluster):
    folder = Path(cluster) / "workers"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return [name for name in names if is_alive(cluster, name)]


@contextlib.contextmanager
def hold_worker_id(cluster, worker, tries=10):
    """Hold ``worker``'s lock for this process; another live process with the same ID is refused.

    A chief that is probing the lock at this instant holds it for microseconds: try a few times.
    """
    folder = worker_lock(cluster, worker)
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        for attempt in range(tries):
            try:
                stack.enter_context(runs.owned(folder, "worker ID"))
                break
            except UsageError as e:
                if "in use" not in str(e) or attempt == tries - 1:
                    raise UsageError(f"--worker {worker}: {e}; give each worker its own ID") from None
                time.sleep(0.1)
        yield


# --------------------------------------------------------------------------- the chief's oracle


def describe(trial):
    """'completed, test accuracy 0.4120' / 'diverged' from a trial's metrics."""
    metrics = trial.metrics
    if metrics.exists("diverged") and metrics.get_last_value("diverged"):
        return "diverged"
    if metrics.exists(OBJECTIVE):
        value = metrics.get_last_value(OBJECTIVE)
        if value is not None and math.isfinite(value):
            return f"completed, test accuracy {value:.4f}"
    return str(trial.status).lower()


def serve(oracle, host, port, cluster, poll=CHIEF_POLL_SECONDS, on_progress=None, on_listening=None):
    """Serve ``oracle`` with keras-tuner's gRPC service until every entry has ended and every worker
    has gone (a worker exits when told there is nothing left); ``on_progress(ended)`` after each end,
    ``on_listening()`` once the port accepts connections (not before: a client told the chief is up
    would be refused).

    keras-tuner's own ``start_server`` waits for the worker IDs it has seen, checking every 20 s,
    so one killed worker that never comes back would keep it forever; this loop asks the workers'
    locks instead.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos

    from tf_assign2.experiments.oracle_service import guarded_servicer_class

    # No SO_REUSEPORT (gRPC's default on Linux): a second chief on the same port must fail, not share it.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), options=[("grpc.so_reuseport", 0)])
    servicer = guarded_servicer_class()(oracle, admit=lambda worker: is_alive(cluster, worker))  # workers hold a lock
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    listen_check(host, port)
    try:
        problem = None if server.add_insecure_port(address) else "gRPC could not bind it"
    except RuntimeError as e:
        problem = str(e).split(";")[0]
    if problem:
        raise UsageError(f"--chief {host}:{port}: cannot listen there ({problem}; the port may be taken)")
    server.start()
    if on_listening is not None:
        on_listening()
    try:
        seen = None
        while True:
            ended, _ = oracle.progress()
            if ended != seen and on_progress is not None:
                on_progress(ended)
            seen = ended
            if oracle.done() and not live_workers(cluster):
                return
            time.sleep(poll)
    finally:
        server.stop(grace=2)


def cluster_record(cluster, sweep, host, port):
    """cluster.json: the sweep's ID (kept across restarts of the chief) and the chief's address."""
    path = Path(cluster) / "cluster.json"
    record = runs.read_json(path) if path.is_file() else {}
    record.update({"sweep": sweep["name"], "sweep_id": record.get("sweep_id") or uuid.uuid4().hex,
                   "chief": f"{host}:{port}", "chief_process": f"{os.getpid()} on {socket.gethostname()}",
                   "started": _now()})
    runs.write_json(path, record)
    return record


def _now():
    return datetime.datetime.now().isoformat(timespec="milliseconds")


def timeline_logger(cluster, planned):
    """A ``log`` for the oracle: one line to stdout and one row in cluster/timeline.csv per event."""
    path = Path(cluster) / "timeline.csv"
    position = {entry["name"]: i for i, entry in enumerate(planned, 1)}
    if not path.is_file():
        path.write_text(",".join(TIMELINE_COLUMNS) + "\n")

    def log(event, entry, worker, trial_id, detail):
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerow([_now(), event, entry, worker, trial_id, detail])
        with path.open("a") as f:
            f.write(text.getvalue())
        head = f"[{position[entry]}/{len(planned)}] {entry}" if entry in position else "chief"
        lines = {"start": f"{head}: to worker {worker}",
                 "again": f"{head}: to worker {worker} again (it was restarted)",
                 "taken over": f"{head}: to worker {worker}, {detail}",
                 "end": f"{head}: {detail} on worker {worker}",
                 "stop": f"chief: worker {worker} told the sweep is done"}
        print(lines.get(event, f"{head}: {event} {detail}"), flush=True)

    return log


def read_timeline(out):
    """cluster/timeline.csv as a list of dicts (for people and tests)."""
    path = Path(out) / CLUSTER / "timeline.csv"
    with path.open() as f:
        return list(csv.DictReader(f))


def run_chief(sweep, out, overrides=None, poll=CHIEF_POLL_SECONDS):
    """Serve the sweep's entries until all have ended and every worker has gone, then write the
    results as a one-machine sweep does; returns (the results' rows, whether it was interrupted).

    The address is keras-tuner's ``KERASTUNER_ORACLE_IP``/``_PORT`` (set from ``--chief``).
    """
    out = Path(out)
    host, port = os.environ[ORACLE_IP], os.environ[ORACLE_PORT]
    planned = sweeps.plan(sweep, out, overrides)
    listen_check(host, port)  # a port taken is refused before any folder is made
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    with runs.made_or_left_alone(out), runs.owned(out, "sweep folder"):  # one chief (or one-machine sweep) per folder
        state = sweeps.prepare_out(sweep, out, planned, overrides)
        cluster = out / CLUSTER
        cluster.mkdir(exist_ok=True)
        record = cluster_record(cluster, sweep, host, port)
        names = [entry["name"] for entry in planned]
        todo = [name for name in names if not sweeps._finished(out, name)]
        from tf_assign2.experiments.sweep_oracle import SweepOracle

        oracle = SweepOracle(names, todo, record["sweep_id"], cluster, timeline_logger(cluster, planned))
        oracle._set_project_dir(str(out), CLUSTER)  # keras-tuner's project: out/cluster/
        if (cluster / "oracle.json").is_file():
            oracle.reload()
            held = ", ".join(f"{oracle.entry_of(t)} ({w})" for w, t in oracle.ongoing_trials.items())
            print(f"chief: continuing the sweep in {out}" + (f"; with workers: {held}" if held else ""), flush=True)
        oracle.save()

        def announce():
            print(f"chief: serving the oracle on {host}:{port}: {len(todo)} of {len(names)} entries to run "
                  f"(sweep {sweep['name']}, folder {out})", flush=True)

        def on_progress(ended):  # as a one-machine sweep does after each entry
            if ended:
                sweeps.write_state(out, sweep, planned, state, overrides)
                sweeps.write_results(out, sweep, planned)

        try:
            with warnings.catch_warnings():
                # A diverged entry reports a NaN test accuracy, over which keras-tuner's nanmax warns.
                warnings.filterwarnings("ignore", "All-NaN", RuntimeWarning)
                serve(oracle, host, port, cluster, poll, on_progress, on_listening=announce)
        except KeyboardInterrupt:
            rows = sweeps.finish(out, sweep, planned, state, overrides)
            print(f"interrupted: start the chief again with the same command to continue the sweep in {out}; "
                  "its workers wait for it", file=sys.stderr)
            return rows, True
        return sweeps.finish(out, sweep, planned, state, overrides), False


# --------------------------------------------------------------------------- workers


def connect(host, port):
    """A stub of keras-tuner's oracle service that reaches a chief which starts (or restarts) later
    within ``RECONNECT_MS``, rather than after gRPC's backoff of up to two minutes."""
    import grpc
    from keras_tuner.src import protos

    options = [("grpc.initial_reconnect_backoff_ms", 500), ("grpc.min_reconnect_backoff_ms", 500),
               ("grpc.max_reconnect_backoff_ms", RECONNECT_MS)]
    return protos.get_service_grpc().OracleStub(grpc.insecure_channel(f"{host}:{port}", options=options))


def served_space(stub):
    """The chief's hyperparameters (the entries and the sweep's ID); waits for the chief as keras-tuner's client does."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_client import TIMEOUT
    from keras_tuner.src.engine.hyperparameters import HyperParameters

    response = stub.GetSpace(protos.get_service().GetSpaceRequest(), wait_for_ready=True, timeout=TIMEOUT)
    return HyperParameters.from_proto(response.hyperparameters)


def all_finished(out, planned):
    return all(sweeps._finished(out, entry["name"]) for entry in planned)


def run_worker(sweep, out, train, resume, overrides=None):
    """Ask the chief for entries and train each one as a one-machine sweep would, until the chief
    says there are none left; returns (the rows of the entries as they stand, whether it was interrupted).

    The chief's address and this worker's ID are keras-tuner's ``KERASTUNER_*`` variables (set
    from ``--chief`` and ``--worker``). ``train`` and ``resume`` are ``tf_assign2.train`` and ``resume``.
    """
    import grpc
    import keras_tuner

    out = Path(out)
    worker, host, port = os.environ[TUNER_ID], os.environ[ORACLE_IP], os.environ[ORACLE_PORT]
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", worker):
        raise UsageError(f"worker ID {worker!r}: expected letters, digits, _ . - (it names a lock folder)")
    planned = sweeps.plan(sweep, out, overrides)
    if (out / "sweep.json").is_file() and all_finished(out, planned):
        print(f"worker {worker}: every entry of sweep {sweep['name']} in {out} has finished; nothing to do")
        return sweeps.result_rows(out, planned), False
    position = {entry["name"]: i for i, entry in enumerate(planned, 1)}
    cluster = out / CLUSTER

    def run_entry(name):
        if name not in position:
            raise UsageError(f"the chief handed out entry {name!r}, which {sweep['file']} does not list; "
                             "give every machine the same sweep file")
        return train_entry(sweep, out, train, resume, planned, position[name], worker)

    print(f"worker {worker}: waiting for the chief at {host}:{port}", flush=True)
    tuner = None
    try:
        stub = connect(host, port)
        check_served_sweep(served_space(stub), out, cluster, list(position), host, port)
        with hold_worker_id(cluster, worker):
            if all_finished(out, planned):
                print(f"worker {worker}: every entry has finished; nothing to do")
                return sweeps.result_rows(out, planned), False
            try:
                sweeps.check_out(out, sweep, planned)  # the chief recorded the same settings for every entry
            except UsageError as e:
                raise UsageError(f"worker {worker}: the chief's settings differ; give it the chief's sweep file, "
                                 f"flags and --out: {e}") from None
            from tf_assign2.experiments.sweep_oracle import SweepWorker

            tuner = SweepWorker(run_entry, str(out), CLUSTER)  # keras-tuner's worker: its client talks to the chief
            tuner.oracle.stub = stub
            tuner.search()
    except KeyboardInterrupt:
        print(f"interrupted: worker {worker} stopped; start it again with the same command (and --worker "
              f"{worker}) to continue its entry, or another worker takes it over", file=sys.stderr)
        return sweeps.result_rows(out, planned), True
    except keras_tuner.errors.FatalError as e:
        raise (tuner.failure if tuner is not None and tuner.failure else e) from None
    except grpc.RpcError as e:
        raise UsageError(f"--chief {host}:{port}: the chief did not answer ({e.code().name}: {e.details()})") from None
    print(f"worker {worker}: sweep finished; entries trained here: {tuner.ran}", flush=True)
    return sweeps.result_rows(out, planned), False


def check_served_sweep(space, out, cluster, names, host, port):
    """The chief serves this sweep folder (its cluster.json has the ID the oracle serves) and the same entries."""
    values = {hp.name: hp for hp in space.space}
    record_path = cluster / "cluster.json"
    served = values["sweep_id"].value if "sweep_id" in values else None
    local = runs.read_json(record_path).get("sweep_id") if record_path.is_file() else None
    if served is None or served != local:
        raise UsageError(f"--chief {host}:{port} serves another sweep folder than --out {out} "
                         "(mount the shared folder at the same path on every machine and give the same --out)")
    if list(values["entry"].values) != names:
        raise UsageError(f"--chief {host}:{port} serves other entries than this sweep file lists; "
                         "give every machine the same sweep file")


def train_entry(sweep, out, train, resume, planned, position, worker):
    """One entry, exactly as a one-machine sweep runs it (skip / resume / start), under the entry's
    lock; returns the metrics reported to the chief."""
    entry = planned[position - 1]
    name = entry["name"]
    head = f"[{position}/{len(planned)}] {name}"
    entry_dir = out / "runs" / name
    entry_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with runs.owned(entry_dir, "sweep entry"):  # never two workers on one entry
        run, status, step = sweeps.next_step(out, name)
        print(sweeps.entry_line(head, sweep["task"], out, name, run, status, step) + f" (worker {worker})", flush=True)
        if step is not None:
            result = sweeps.train_entry(entry, train, resume, run, step)
            sweeps._release_memory()
            if result.status == "interrupted":
                raise KeyboardInterrupt
    seconds = time.perf_counter() - started
    row = sweeps.result_rows(out, [planned[position - 1]])[0]
    if row["status"] not in sweeps.FINISHED:
        raise UsageError(f"entry {name}: its run ended {row['status']} ({row.get('run_dir')})")
    print(f"{head}: {sweeps._outcome(row)} in {seconds:.0f} s on worker {worker}", flush=True)
    accuracy = row["test_accuracy"] if row["status"] == "completed" and row["test_accuracy"] is not None else math.nan
    return {OBJECTIVE: float(accuracy), "diverged": float(row["status"] == "diverged"),
            "epochs": float(row["epochs_completed"] or 0), "seconds": round(seconds, 2)}
