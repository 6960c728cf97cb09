"""`python -m benchmarks.gpu_check OUT_DIR [--dry] [--budget SECONDS]`: the GPU path, proven in one command.

Run it from the repository root on a machine with a GPU, ``$TF_ASSIGN2_DATA`` pointing at the data.
In at most about 5 minutes (``--budget``, 285 s) it writes ``OUT_DIR/gpu_check.md`` and the same
figures as ``OUT_DIR/gpu_check.json``, beside the logs of its child processes:

* environment: each GPU and its details as TensorFlow sees them (with memory growth, on for every
  process of this package, and whether ``--precision bfloat16`` runs on it or is refused in one
  line below compute capability 8.0), the driver (``nvidia-smi``), the
  CUDA and cuDNN TensorFlow was built for and the CUDA libraries it loaded (with their versions),
  TensorFlow, Keras, Python;
* the tests marked ``gpu`` (``tests/training/test_gpu.py``: XLA for every model through the Trainer, mixed
  precision, cuDNN's LSTM/GRU and the portable twin, MirroredStrategy, a GPU-trained SavedModel
  evaluated with the GPU hidden), run by ``pytest -m gpu`` in a child process: counts and every
  test's outcome;
* a default 10-epoch ``python -m tf_assign2.cifar`` run in a child process: wall seconds, training
  seconds (fit with its callbacks; the epochs alone, from history.csv), images/s, test accuracy,
  peak RSS and its first lines (the data it read; the device, precision and XLA choice) (goal:
  under 5 s of training on a modern data-centre GPU);
* training images/s through the shared Trainer (``benchmarks.bench.ours``: ``build_model``,
  ``compile``, ``fit``) for LeNet5 at batch 50 and 512 (CIFAR subset) and the BasicRNN/LSTM/GRU-128
  at batch 128 and 1024 (MNIST rows), each with XLA off and on, float32 and mixed precision: the
  median of 3 timed epochs after a warm-up epoch, each epoch the training set repeated to at least
  40 steps (goal: 100,000 images/s or more for LeNet5 at batch 512);
* what ``--jit auto`` and ``--precision auto`` resolve to on a GPU
  (``training.plan.make_plan(config, steps, gpu=True)``), and whether that is the fastest setting
  measured, a row per model and batch size.

The children go first, one at a time, while this process holds no GPU memory (it only lists the
GPUs before them, with memory growth on); the throughput figures come last, largest batches first.
A figure that would start after the budget is listed as not measured, so the command ends in time;
``--budget 900`` measures everything on a slower GPU.

``--dry`` rehearses the same command on the CPU: GPUs hidden (``CUDA_VISIBLE_DEVICES=""``, so the
gpu tests are skipped), a few hundred images, one timed epoch and one batch size per model, a
2-epoch CIFAR run on 20 images per class, the children overlapping the figures; under 2 minutes on
2 cores. Its report has the same sections, every figure marked as a dry CPU figure.
"""

import contextlib
import csv
import ctypes
import dataclasses
import datetime
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from benchmarks import bench
from tf_assign2.errors import UsageError

ROOT = bench.ROOT
# name -> (task, settings): every model of the registry, as its CLI builds it (RNNs with bench.RNN_UNITS units)
MODELS = {"lenet5": ("cifar", {}), "rnn": ("mnist", {"cell": "rnn"}), "lstm": ("mnist", {"cell": "lstm"}),
          "gru": ("mnist", {"cell": "gru"})}
TITLES = {"lenet5": "LeNet5", "rnn": f"BasicRNN-{bench.RNN_UNITS}", "lstm": f"LSTM-{bench.RNN_UNITS}",
          "gru": f"GRU-{bench.RNN_UNITS}"}
SETTINGS = (("off", "float32"), ("on", "float32"), ("off", "mixed"), ("on", "mixed"))  # (--jit, --precision)
GOALS = {"cifar_train_s": 5.0, "lenet_images_per_s": 100_000}
CHILD_STOP_S = 15  # after SIGTERM, a child's grace before SIGKILL


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much the check measures: ``GPU`` (the real check) or ``DRY`` (the CPU rehearsal)."""

    dry: bool
    batches: dict  # task -> batch sizes
    images: dict  # task -> real training images drawn for the figures (None: all 10,000)
    min_steps: int  # a timed epoch has at least this many steps (the images repeated)
    repeats: int  # timed epochs after the warm-up epoch
    cifar_args: tuple  # the default CIFAR run's flags
    budget_s: float  # the whole check
    tests_timeout_s: float
    cifar_timeout_s: float
    settings: dict = None  # model -> the (jit, precision) settings measured; None: all of SETTINGS

    def measured(self, name):
        return SETTINGS if self.settings is None else self.settings.get(name, ())


GPU = Sizes(dry=False, batches={"cifar": (50, 512), "mnist": (128, 1024)}, images={"cifar": None, "mnist": None},
            min_steps=40, repeats=3, cifar_args=("--epochs", "10"), budget_s=285.0, tests_timeout_s=180.0,
            cifar_timeout_s=90.0)
DRY = Sizes(dry=True, batches={"cifar": (50,), "mnist": (128,)}, images={"cifar": 400, "mnist": 512}, min_steps=1,
            repeats=1, cifar_args=("--epochs", "2", "--ntrain", "20", "--ntest", "10"), budget_s=110.0,
            tests_timeout_s=600.0, cifar_timeout_s=600.0,
            # An XLA or float16 compile takes 5-45 s on 2 cores: every setting for the LSTM (the XLA-or-cuDNN
            # choice auto makes), the float32 graph for the others.
            settings={"lenet5": (("off", "float32"),), "rnn": (("off", "float32"),), "lstm": SETTINGS,
                      "gru": (("off", "float32"),)})


def setting_key(jit, precision):
    return f"xla_{jit}-{precision}"


def setting_text(jit, precision):
    return f"XLA {jit}, {precision}"


def _log(text):
    print(text, file=sys.stderr, flush=True)


def _first_line(error):
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:300]}"


# --------------------------------------------------------------------------- child processes


class Child:
    """A child process run from the repository root, its output in ``log``, in a session of its own
    (so a timeout stops it and its own children). A thread reaps it with ``wait4`` the moment it ends:
    its own seconds and peak RSS, even while this process is busy measuring."""

    def __init__(self, command, log, env):
        self.command, self.log = [str(c) for c in command], Path(log)
        self.started = time.perf_counter()
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(self.command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        self.result, self._ended = None, None
        self._reaper = threading.Thread(target=self._reap, daemon=True)
        self._reaper.start()

    def _reap(self):
        _, status, usage = os.wait4(self.process.pid, 0)
        self._ended = (time.perf_counter(), status, usage)

    def wait(self, timeout):
        """Wait at most ``timeout`` seconds, then stop it (SIGTERM, then SIGKILL); returns the result dict."""
        if self.result is not None:
            return self.result
        self._reaper.join(max(0.0, timeout))
        timed_out = self._reaper.is_alive()
        if timed_out:
            self._signal(signal.SIGTERM)
            self._reaper.join(CHILD_STOP_S)
            if self._reaper.is_alive():
                self._signal(signal.SIGKILL)
                self._reaper.join()
        ended, status, usage = self._ended
        self.process.returncode = os.waitstatus_to_exitcode(status)
        kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024
        self.result = {"command": " ".join(["python", *self.command[1:]]), "returncode": self.process.returncode,
                       "seconds": round(ended - self.started, 1), "timed_out": timed_out,
                       "peak_rss_mb": round(kib / 1024, 1), "log": str(self.log)}
        return self.result

    def stop(self):
        """Stop it now if it still runs (the check was interrupted)."""
        if self._reaper.is_alive():
            self._signal(signal.SIGKILL)
            self._reaper.join()

    def _signal(self, signum):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)  # its own session: the child and its children


def gpu_tests_command(out_dir):
    return [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
            f"--junitxml={out_dir / 'gpu_tests.xml'}", "tests"]


def read_junit(path):
    """Each test's outcome from pytest's JUnit XML, and the counts."""
    cases = []
    root = ElementTree.parse(path).getroot()
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for tag, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            element = case.find(tag)
            if element is not None:
                outcome = name
                message = (element.get("message") or element.text or "").strip().splitlines()
                message = message[0][:300] if message else ""
                break
        module = (case.get("classname") or "").replace(".", "/")
        cases.append({"test": f"{module}.py::{case.get('name')}", "outcome": outcome,
                      "seconds": round(float(case.get("time") or 0), 1), "message": message})
    counts = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "error", "skipped")}
    return counts, cases


def gpu_tests_result(child, out_dir):
    result = dict(child.result)
    junit = out_dir / "gpu_tests.xml"
    result["counts"], result["tests"] = ({k: 0 for k in ("passed", "failed", "error", "skipped")}, [])
    if junit.is_file():
        try:
            result["counts"], result["tests"] = read_junit(junit)
        except ElementTree.ParseError as e:
            result["junit_error"] = str(e)
    result["collected"] = sum(result["counts"].values())
    if result["returncode"] not in (0, 5) or not junit.is_file():  # 5: no tests collected
        result["output_tail"] = Path(result["log"]).read_text(errors="replace")[-1500:]
    return result


def cifar_run_command(sizes, runs_dir):
    return [sys.executable, "-m", "tf_assign2.cifar", *sizes.cifar_args, "--runs-dir", str(runs_dir)]


def cifar_run_result(child, runs_dir, before):
    """The child's figures and its run folder's: summary.json, the epochs' seconds in history.csv, the plan."""
    result = dict(child.result)
    made = sorted(set(p for p in Path(runs_dir).iterdir() if p.is_dir()) - before) if Path(runs_dir).is_dir() else []
    if not made:
        result["error"] = "no run folder was made"
        result["output_tail"] = Path(result["log"]).read_text(errors="replace")[-1500:]
        return result
    run_dir = made[-1]
    result["run_dir"] = str(run_dir)
    summary = _read_json(run_dir / "summary.json")
    for key in ("status", "epochs_completed", "train_seconds", "images_per_sec", "test_accuracy", "batch_size",
                "steps_per_execution", "jit_compile"):
        result[key] = summary.get(key)
    result["plan"] = _read_json(run_dir / "config.json").get("plan")
    output = Path(result["log"]).read_text(errors="replace").splitlines() if Path(result["log"]).is_file() else []
    result["first_lines"] = [line for line in output if line.startswith(("data:", "plan:"))][:2]
    history = run_dir / "history.csv"
    if history.is_file():
        with open(history, newline="") as f:
            seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(f) if row.get("epoch_seconds")]
        result["epoch_seconds"] = [round(s, 3) for s in seconds]
        result["epochs_seconds_sum"] = round(sum(seconds), 3)
    if result["returncode"]:
        result["output_tail"] = Path(result["log"]).read_text(errors="replace")[-1500:]
    return result


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------- environment


def visible_gpus():
    """The GPUs TensorFlow sees, each with memory growth on: listing them starts no runtime and takes no
    memory, so the children that come next have the GPU to themselves."""
    from tf_assign2.training.startup import quiet_native_stderr

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_native_stderr():  # TensorFlow's native start-up lines (and cuInit's complaint with no GPU)
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.experimental.set_memory_growth(gpu, True)
    return gpus


def environment(gpus):
    """The machine (bench.machine: versions, CPU, load), each GPU's details, TensorFlow's build, nvidia-smi."""
    import tensorflow as tf

    env = bench.machine()
    env["gpu_details"] = []
    for gpu in gpus:
        try:
            details = dict(tf.config.experimental.get_device_details(gpu))
        except (RuntimeError, ValueError) as e:
            details = {"error": _first_line(e)}
        env["gpu_details"].append({"device": gpu.name, **{k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in details.items()},
                                   "memory_growth": _memory_growth(tf, gpu),
                                   "bfloat16": _bfloat16_verdict(details)})
    env["build_info"] = {k: list(v) if isinstance(v, tuple) else v for k, v in tf.sysconfig.get_build_info().items()}
    env["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    env["nvidia_smi"] = nvidia_smi()
    env["nvidia_packages"] = nvidia_packages()
    return env


def _memory_growth(tf, gpu):
    try:
        return tf.config.experimental.get_memory_growth(gpu)
    except (RuntimeError, ValueError) as e:
        return _first_line(e)


def _bfloat16_verdict(details):
    """What ``--precision bfloat16`` does on this GPU: runs, or is refused in one line (compute capability < 8.0)."""
    from tf_assign2.training.plan import check_gpu_precision

    capability = tuple(details.get("compute_capability") or ())
    try:
        check_gpu_precision("bfloat16", (details.get("device_name", "GPU"), capability or None))
    except UsageError as e:
        return f"refused: {e}"
    return "runs" if capability else "unknown compute capability"


def nvidia_smi():
    """GPU name, driver, memory and the driver's CUDA version from ``nvidia-smi`` (None where it is absent)."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        header = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": _first_line(e)}
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header.stdout)
    return {"gpus": [line.strip() for line in query.stdout.splitlines() if line.strip()],
            "driver_cuda_version": cuda.group(1) if cuda else None}


def nvidia_packages():
    """Installed ``nvidia-*`` Python packages (the CUDA libraries of ``pip install tensorflow[and-cuda]``)."""
    from importlib import metadata

    found = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name") or ""
        if name.lower().startswith("nvidia-"):
            found[name] = dist.version
    return dict(sorted(found.items()))


def _version_call(lib, function):
    value = ctypes.c_int()
    return value.value if getattr(lib, function)(ctypes.byref(value)) == 0 else None


def loaded_cuda_libraries():
    """The CUDA libraries this process has loaded (read after the figures ran), with the versions they report."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return {"libraries": [], "versions": {}}
    paths = sorted({line.split()[-1] for line in maps if re.search(r"/lib(cudnn|cudart|cublas|cuda|nccl)[^/]*\.so",
                                                                    line.split()[-1] if line.split() else "")})
    versions = {}
    for path in paths:
        name = os.path.basename(path)
        try:
            lib = ctypes.CDLL(path)
            if name.startswith("libcudnn.so"):
                v = int(lib.cudnnGetVersion())
                versions["cudnn"] = f"{v // 10000}.{v % 10000 // 100}.{v % 100}" if v >= 9000 else str(v)
            elif name.startswith("libcudart.so"):
                v = _version_call(lib, "cudaRuntimeGetVersion")
                versions["cuda_runtime"] = f"{v // 1000}.{v % 1000 // 10}" if v else None
            elif name.startswith("libcuda.so"):
                v = _version_call(lib, "cuDriverGetVersion")
                versions["cuda_driver_api"] = f"{v // 1000}.{v % 1000 // 10}" if v else None
        except (OSError, AttributeError, ValueError):
            continue
    return {"libraries": [os.path.basename(p) for p in paths], "versions": versions}


# --------------------------------------------------------------------------- plans and throughput


def model_config(name, **overrides):
    """The settings of a default run of model ``name`` (bench.our_config), with ``overrides``."""
    task, settings = MODELS[name]
    return bench.our_config(task, **{**settings, **overrides})


def quiet_plan(config, steps, gpu=None):
    """``make_plan`` without its stdout warning (mixed precision on a CPU is slow: the dry run knows)."""
    from tf_assign2.training.plan import make_plan

    with contextlib.redirect_stdout(io.StringIO()):
        return make_plan(config, steps, gpu=gpu)


def default_plans(n_train):
    """What a default run of each model resolves to on a GPU and on a CPU (``make_plan(..., gpu=...)``)."""
    from tf_assign2 import data

    plans = {}
    for name in MODELS:
        cfg = model_config(name)
        steps = data.steps_per_epoch(int(n_train[MODELS[name][0]] * (1 - cfg.val_split)), cfg.batch_size)
        plans[name] = {"batch_size": cfg.batch_size, "steps_per_epoch": steps,
                       "gpu": quiet_plan(cfg, steps, gpu=True).to_dict(),
                       "cpu": quiet_plan(cfg, steps, gpu=False).to_dict()}
    return plans


def epoch_arrays(x, y, batch, min_steps):
    """The images of one timed epoch: all of ``x``, repeated up to ``min_steps`` batches."""
    import numpy as np

    n = max(len(y), min_steps * batch)
    if n == len(y):
        return x, y
    index = np.arange(n) % len(y)
    return x[index], y[index]


def figure_jobs(sizes):
    """(model, batch, jit, precision) in the order they are measured: largest batches first."""
    jobs = []
    for rank in range(max(len(b) for b in sizes.batches.values())):
        for name, (task, _) in MODELS.items():
            batches = sorted(sizes.batches[task], reverse=True)
            if rank < len(batches):
                jobs += [(name, batches[rank], jit, precision) for jit, precision in SETTINGS
                         if (jit, precision) in sizes.measured(name)]
    return jobs


def throughput(sizes, arrays, deadline):
    """{model: {batch: {setting: figure}}}: images/s of each epoch through the Trainer (``bench.ours``).

    A figure is skipped when the median time of those before it would take it past ``deadline``.
    """
    from tf_assign2 import data

    out, costs = {}, []
    for name, batch, jit, precision in figure_jobs(sizes):
        task = MODELS[name][0]
        slot = out.setdefault(name, {}).setdefault(str(batch), {})
        key = setting_key(jit, precision)
        expected = statistics.median(costs) if costs else 0.0
        if time.perf_counter() + expected > deadline:
            slot[key] = {"skipped": "time budget"}
            continue
        x, y = epoch_arrays(*arrays[task], batch, sizes.min_steps)
        cfg = model_config(name, jit=jit, precision=precision, batch_size=batch)
        plan = quiet_plan(cfg, data.steps_per_epoch(len(y), batch))
        begun = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # make_plan's mixed-on-CPU warning, once per figure
                figure = bench._figure(bench.ours(cfg, x, y, sizes.repeats + 1))
        except Exception as e:  # one setting failing on this GPU is a finding, not the end of the check
            figure = {"error": _first_line(e)}
        figure.update(seconds=round(time.perf_counter() - begun, 1), images=len(y),
                      plan={k: plan.to_dict()[k] for k in ("device", "jit", "precision", "use_cudnn",
                                                           "steps_per_execution")})
        costs.append(figure["seconds"])
        slot[key] = figure
        value = figure.get("median")
        _log(f"  {name} batch {batch} {setting_text(jit, precision)}: "
             + (f"{value:,.0f} images/s" if value is not None else figure.get("error", "?")) + f" ({figure['seconds']} s)")
    return out


def auto_vs_fastest(sizes, figures):
    """A row per model and batch: what --jit/--precision auto choose on a GPU, and the fastest measured setting."""
    from tf_assign2 import data

    rows = []
    for name, by_batch in figures.items():
        for batch, cells in sorted(by_batch.items(), key=lambda item: int(item[0])):
            measured = {k: v["median"] for k, v in cells.items() if _positive(v.get("median"))}
            images = next((v["images"] for v in cells.values() if "images" in v), int(batch))
            plan = quiet_plan(model_config(name, batch_size=int(batch)), data.steps_per_epoch(images, int(batch)),
                              gpu=True)
            auto = setting_key("on" if plan.jit else "off", plan.precision)
            fastest = max(measured, key=measured.get) if measured else None
            row = {"model": name, "batch": int(batch), "auto": auto, "auto_use_cudnn": plan.use_cudnn,
                   "auto_images_per_s": measured.get(auto), "fastest": fastest,
                   "fastest_images_per_s": measured.get(fastest), "complete": len(measured) == len(SETTINGS)}
            row["auto_is_fastest"] = (auto == fastest) if fastest and auto in measured else None
            row["auto_of_fastest"] = (round(measured[auto] / measured[fastest], 3)
                                      if fastest and auto in measured else None)
            rows.append(row)
    return rows


def _positive(value):
    return isinstance(value, (int, float)) and value > 0 and value == value


# --------------------------------------------------------------------------- the check


def run_check(out_dir, sizes):
    """Everything in order (see the module docstring); returns the results dict that ``markdown`` renders."""
    started = time.perf_counter()
    deadline = started + sizes.budget_s
    load_at_start = bench._loadavg()
    results = {"dry": sizes.dry, "date": datetime.datetime.now().isoformat(timespec="seconds"),
               "command": "python -m benchmarks.gpu_check OUT_DIR" + (" --dry" if sizes.dry else ""),
               "budget_s": sizes.budget_s, "out_dir": str(out_dir),
               "sizes": {k: v for k, v in dataclasses.asdict(sizes).items()}, "phase_seconds": {}}

    def phase(name, begun):
        results["phase_seconds"][name] = round(time.perf_counter() - begun, 1)

    if sizes.dry:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before TensorFlow starts here; the children inherit it
    bench._cifar_root()  # no data: one line and exit code 2 now
    begun = time.perf_counter()
    gpus = visible_gpus()
    phase("tensorflow_import", begun)
    if not gpus and not sizes.dry:
        raise UsageError("no GPU visible to TensorFlow; run this on a GPU machine, or add --dry for the CPU rehearsal")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    runs_dir = out_dir / "cifar_run"
    runs_dir.mkdir(exist_ok=True)
    before = set(p for p in runs_dir.iterdir() if p.is_dir())
    (out_dir / "gpu_tests.xml").unlink(missing_ok=True)  # a previous check's, in the same folder
    children = []
    try:
        # GPU: one child at a time, each with the GPU to itself; dry: they overlap the figures.
        _log("gpu tests: " + " ".join(["python", *gpu_tests_command(out_dir)[1:]]))
        tests = Child(gpu_tests_command(out_dir), out_dir / "gpu_tests.log", env)
        children.append(tests)
        if not sizes.dry:
            tests.wait(sizes.tests_timeout_s)
            phase("gpu_tests", tests.started)
        _log("default CIFAR run: " + " ".join(["python", *cifar_run_command(sizes, runs_dir)[1:]]))
        cifar = Child(cifar_run_command(sizes, runs_dir), out_dir / "cifar_run.log", env)
        children.append(cifar)
        if not sizes.dry:
            cifar.wait(sizes.cifar_timeout_s)
            phase("cifar_run", cifar.started)

        from tf_assign2.training.startup import start_tensorflow

        start_tensorflow(seed=0)
        results["environment"] = {**environment(gpus), "loadavg_start": load_at_start}
        begun = time.perf_counter()
        arrays, n_train = {}, {}
        for task in ("cifar", "mnist"):
            x, y = bench._train_arrays(task, None)
            n_train[task] = len(y)
            arrays[task] = _subset(x, y, sizes.images[task])
        results["images"] = {task: len(y) for task, (_, y) in arrays.items()}
        phase("data", begun)
        results["plans"] = default_plans(n_train)
        begun = time.perf_counter()
        _log(f"training figures ({'dry, CPU' if sizes.dry else 'GPU'}), {sizes.repeats} timed epoch(s) after a warm-up...")
        results["throughput"] = throughput(sizes, arrays, deadline - (0 if sizes.dry else 5))
        phase("throughput", begun)
        results["auto_vs_fastest"] = auto_vs_fastest(sizes, results["throughput"])
        results["environment"]["loaded_cuda"] = loaded_cuda_libraries()

        begun = time.perf_counter()
        tests.wait(sizes.tests_timeout_s - (time.perf_counter() - tests.started))
        cifar.wait(sizes.cifar_timeout_s - (time.perf_counter() - cifar.started))
        if sizes.dry:  # the children ran beside the figures: their own seconds, and the wait after the figures
            results["phase_seconds"]["gpu_tests"] = tests.result["seconds"]
            results["phase_seconds"]["cifar_run"] = cifar.result["seconds"]
            phase("waiting_for_children_after_the_figures", begun)
        results["gpu_tests"] = gpu_tests_result(tests, out_dir)
        results["cifar_run"] = cifar_run_result(cifar, runs_dir, before)
    finally:
        for child in children:
            child.stop()
    results["environment"]["loadavg_end"] = bench._loadavg()
    results["goals"] = goals(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def _subset(x, y, n):
    """``n`` images drawn as bench._train_arrays draws them (all if None)."""
    if not n:
        return x, y
    import numpy as np

    keep = np.random.default_rng(0).permutation(len(y))[:n]
    return x[keep], y[keep]


def goals(results):
    """The two speed goals with what was measured: what, value, goal, met (None: not judged, as in --dry)."""
    cifar = results.get("cifar_run") or {}
    lenet = (results.get("throughput") or {}).get("lenet5") or {}
    batch = max(lenet, key=int) if lenet else None
    best = max((v["median"] for v in (lenet.get(batch) or {}).values() if _positive(v.get("median"))), default=None)
    train = cifar.get("epochs_seconds_sum")
    judged = not results["dry"]  # dry: CPU figures of tiny runs, shown beside the GPU goals, not judged by them
    return [
        {"what": "default CIFAR run: training seconds (its epochs, from history.csv)", "value": train,
         "goal": f"< {GOALS['cifar_train_s']:g} s on a GPU",
         "met": train < GOALS["cifar_train_s"] if judged and train is not None else None},
        {"what": f"LeNet5 images/s at batch {batch}, fastest setting", "value": best,
         "goal": f">= {GOALS['lenet_images_per_s']:,} at batch 512 on a GPU",
         "met": best >= GOALS["lenet_images_per_s"] if judged and best is not None else None},
    ]


# --------------------------------------------------------------------------- the report


def _num(value, digits=0):
    return bench._num(value, digits)


def _cell(figure):
    if figure is None:
        return "not in --dry"
    if "median" in figure:
        return _num(figure["median"])
    if "error" in figure:
        return f"failed: {figure['error'][:120].replace('|', '/')}"
    return f"not measured ({figure.get('skipped', '?')})"


def markdown(results):
    """The report (OUT_DIR/gpu_check.md) of a ``run_check`` results dict."""
    dry = results["dry"]
    where = "dry, CPU" if dry else "GPU"
    lines = ["# GPU check", "",
             f"`{results['command']}`, {results['date']}, {results['seconds']:.0f} s in all "
             f"(budget {results['budget_s']:.0f} s).", ""]
    if dry:
        lines += ["**--dry: a CPU rehearsal.** GPUs hidden (`CUDA_VISIBLE_DEVICES=\"\"`), so the gpu tests are "
                  "skipped; a few hundred images, one timed epoch, one batch size per model. Every figure below is a "
                  "CPU figure (marked *dry, CPU*): it proves the command and the report, not the GPU path.", ""]
    lines += _summary_section(results, where)
    lines += _environment_section(results)
    lines += _tests_section(results)
    lines += _throughput_section(results, where)
    lines += _auto_section(results, where)
    lines += _cifar_section(results, where)
    lines += ["", "## Phases", "", "| phase | seconds |", "|---|---|",
              *(f"| {name} | {seconds} |" for name, seconds in results["phase_seconds"].items())]
    return "\n".join(lines) + "\n"


def _summary_section(results, where):
    tests = results["gpu_tests"]
    c = tests["counts"]
    auto = [r for r in results["auto_vs_fastest"] if r["auto_is_fastest"] is not None]
    rows = [("tests marked gpu (`pytest -m gpu tests`)",
             f"{c['passed']} passed, {c['failed']} failed, {c['error']} errors, {c['skipped']} skipped"
             + (" (timed out)" if tests["timed_out"] else ""), "all pass")]
    for goal in results["goals"]:
        value = goal["value"]
        shown = "-" if value is None else (f"{value:.2f} s" if goal["what"].startswith("default") else _num(value))
        met = "" if goal["met"] is None else (" (met)" if goal["met"] else " (not met)")
        rows.append((goal["what"], f"{shown} ({where}){met}", goal["goal"]))
    rows.append(("`--jit auto`/`--precision auto` pick the fastest measured setting",
                 f"{sum(r['auto_is_fastest'] for r in auto)} of {len(auto)} model/batch rows ({where})", ""))
    return ["## Summary", "", "| check | result | goal |", "|---|---|---|",
            *(f"| {what} | {value} | {goal} |" for what, value, goal in rows)]


def _environment_section(results):
    env = results["environment"]
    build = env.get("build_info", {})
    smi = env.get("nvidia_smi")
    loaded = env.get("loaded_cuda", {})
    gpus = "; ".join(", ".join(f"{k} {v}" for k, v in d.items()) for d in env.get("gpu_details", [])) or "none visible"
    lines = ["", "## Environment", "",
             f"* GPUs (`tf.config.experimental.get_device_details`): {gpus}"
             + (f" (`CUDA_VISIBLE_DEVICES={env['cuda_visible_devices']!r}`)" if env.get("cuda_visible_devices") is not None else "") + ".",
             "* nvidia-smi: " + ("not found" if smi is None else
                                 smi.get("error") or f"{'; '.join(smi['gpus']) or '-'} (name, driver, memory, "
                                 f"compute capability); driver's CUDA {smi.get('driver_cuda_version') or '?'}") + ".",
             f"* TensorFlow's build (`tf.sysconfig.get_build_info()`): CUDA {build.get('cuda_version', '-')}, "
             f"cuDNN {build.get('cudnn_version', '-')}, compute capabilities "
             f"{', '.join(build.get('cuda_compute_capabilities') or []) or '-'}, CUDA build {build.get('is_cuda_build')}.",
             "* CUDA libraries loaded by the figures: "
             + (", ".join(loaded.get("libraries") or []) or "none")
             + ("; versions " + ", ".join(f"{k} {v}" for k, v in loaded["versions"].items()) if loaded.get("versions") else "")
             + ".",
             "* CUDA Python packages: " + (", ".join(f"{k} {v}" for k, v in env.get("nvidia_packages", {}).items())
                                           or "none") + ".",
             f"* TensorFlow {env['tensorflow']}, Keras {env['keras']}, Python {env['python']}, NumPy {env['numpy']}; "
             f"{env['processor']}, {env['cpu_count']} cores; {env['platform']}. Load average (1/5/15 min) at start "
             f"{bench._load(env.get('loadavg_start'))}, at end {bench._load(env.get('loadavg_end'))}."]
    return lines


def _tests_section(results):
    tests = results["gpu_tests"]
    c = tests["counts"]
    lines = ["", "## GPU tests", "",
             f"`{tests['command']}`: exit code {tests['returncode']}{' (timed out)' if tests['timed_out'] else ''}, "
             f"{tests['seconds']:.0f} s; {tests['collected']} tests: {c['passed']} passed, {c['failed']} failed, "
             f"{c['error']} errors, {c['skipped']} skipped. Log: `{Path(tests['log']).name}`, JUnit XML: `gpu_tests.xml`.", ""]
    if tests["tests"]:
        lines += ["| test | outcome | seconds | message |", "|---|---|---|---|",
                  *(f"| `{t['test']}` | {t['outcome']} | {t['seconds']} | {t['message'].replace('|', '/')} |"
                    for t in tests["tests"])]
    if tests.get("output_tail"):
        lines += ["", "Output (tail):", "", "```", tests["output_tail"].rstrip(), "```"]
    return lines


def _throughput_section(results, where):
    sizes = results["sizes"]
    epochs = (f"each epoch the training images repeated to at least {sizes['min_steps']} steps"
              if sizes["min_steps"] > 1 else "each epoch the images drawn, once")
    lines = ["", f"## Training throughput ({where})", "",
             f"Images/s (LeNet5 on the CIFAR subset, 28x28x1) and samples/s (RNNs on MNIST rows, {bench.RNN_UNITS} "
             "units) through the shared Trainer (`benchmarks.bench.ours`: `build_model`, `compile`, `fit` under the "
             f"plan of each setting): median of {sizes['repeats']} timed epoch(s) after a warm-up epoch (tracing, "
             f"compilation); {epochs}. LSTM/GRU with XLA off run cuDNN's kernels where there is a GPU "
             "(`--use-cudnn auto`); with XLA on, the generic kernel. Mixed: float16 compute with loss scaling.", "",
             "| model | batch | images per epoch |" + "".join(f" {setting_text(*s)} |" for s in SETTINGS),
             "|---|---|---|" + "---|" * len(SETTINGS)]
    for name, by_batch in results["throughput"].items():
        for batch in sorted(by_batch, key=int):
            cells = by_batch[batch]
            images = next((v["images"] for v in cells.values() if "images" in v), None)
            lines.append(f"| {TITLES[name]} | {batch} | {_num(images)} |"
                         + "".join(f" {_cell(cells.get(setting_key(*s)))} |" for s in SETTINGS))
    return lines


def _auto_section(results, where):
    lines = ["", "## What auto chooses", "",
             "`--jit auto` and `--precision auto` as `training.plan.make_plan(config, steps, gpu=True)` resolves "
             "them for a default run of each model, beside the CPU's (`gpu=False`):", "",
             "| model | batch | GPU: XLA, precision, cuDNN, steps per call | CPU: XLA, precision, steps per call |",
             "|---|---|---|---|"]
    for name, p in results["plans"].items():
        g, c = p["gpu"], p["cpu"]
        lines.append(f"| {TITLES[name]} | {p['batch_size']} | {'on' if g['jit'] else 'off'}, {g['precision']}, "
                     f"{g['use_cudnn']}, {g['steps_per_execution']} | {'on' if c['jit'] else 'off'}, {c['precision']}, "
                     f"{c['steps_per_execution']} |")
    lines += ["", f"Auto's choice on a GPU against the fastest setting measured ({where}):", "",
              "| model | batch | auto (GPU plan) | its images/s | fastest measured | its images/s | auto / fastest | "
              "auto is the fastest |", "|---|---|---|---|---|---|---|---|"]
    for r in results["auto_vs_fastest"]:
        verdict = "-" if r["auto_is_fastest"] is None else ("yes" if r["auto_is_fastest"] else "no")
        ratio = "-" if r["auto_of_fastest"] is None else f"{r['auto_of_fastest']:.2f}x"
        if r["auto_is_fastest"] is not None and not r["complete"]:
            verdict += " (not every setting measured)"
        lines.append(f"| {TITLES[r['model']]} | {r['batch']} | {setting_text(*_split_key(r['auto']))} | "
                     f"{_num(r['auto_images_per_s'])} | "
                     f"{setting_text(*_split_key(r['fastest'])) if r['fastest'] else '-'} | "
                     f"{_num(r['fastest_images_per_s'])} | "
                     f"{ratio} | {verdict} |")
    return lines


def _split_key(key):
    jit, precision = key.split("-", 1)
    return jit.removeprefix("xla_"), precision


def _cifar_section(results, where):
    run = results["cifar_run"]
    lines = ["", f"## Default CIFAR run ({where})", "",
             f"`{run['command']}`: exit code {run['returncode']}{' (timed out)' if run['timed_out'] else ''}."]
    if run.get("error"):
        lines.append(f"{run['error']}.")
    else:
        plan = run.get("plan") or {}
        epochs = run.get("epoch_seconds") or []
        lines += ["", "| figure | value |", "|---|---|",
                  f"| wall seconds (the whole process: start, data, training, test, export) | {run['seconds']:.1f} |",
                  f"| training seconds, `fit` with its callbacks (summary.json `train_seconds`) | "
                  f"{_num(run.get('train_seconds'), 2)} |",
                  f"| training seconds, the {len(epochs)} epochs alone (history.csv `epoch_seconds`) | "
                  f"{_num(run.get('epochs_seconds_sum'), 2)} |",
                  f"| epoch seconds | {' '.join(f'{s:.2f}' for s in epochs) or '-'} |",
                  f"| images/s (summary.json: median epoch after the first) | {_num(run.get('images_per_sec'))} |",
                  f"| test accuracy | {_num(run.get('test_accuracy'), 3)} |",
                  f"| peak RSS | {_num(run.get('peak_rss_mb'))} MB |",
                  f"| plan | {plan.get('device', '-')}, XLA {'on' if plan.get('jit') else 'off'}, "
                  f"{plan.get('precision', '-')}, {plan.get('steps_per_execution', '-')} steps per call |",
                  f"| the run's first lines | {'<br>'.join(f'`{line}`' for line in run.get('first_lines') or []) or '-'} |",
                  f"| run folder | `{run.get('run_dir', '-')}` |"]
    if run.get("output_tail"):
        lines += ["", "Output (tail):", "", "```", run["output_tail"].rstrip(), "```"]
    return lines


def main(argv=None):
    from tf_assign2.cli import ArgumentParser, checked
    from tf_assign2.runs import write_atomic

    parser = ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for gpu_check.md, gpu_check.json, the logs and the CIFAR run "
                        "(made if missing)")
    parser.add_argument("--dry", action="store_true", help="the CPU rehearsal: GPUs hidden, tiny sizes, "
                        "under 2 minutes on 2 cores")
    parser.add_argument("--budget", type=checked(float, lambda v: 0 < v <= 86_400, "seconds in (0, 86400]"),
                        default=None, help=f"seconds for the whole check ({GPU.budget_s:g}; --dry {DRY.budget_s:g}); "
                        "figures that would start after it are listed as not measured")
    args = parser.parse_args(argv)
    sizes = DRY if args.dry else GPU
    if args.budget:
        sizes = dataclasses.replace(sizes, budget_s=args.budget)
    out_dir = Path(args.out_dir).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{args.out_dir}: not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = run_check(out_dir, sizes)
    text = markdown(results)
    write_atomic(out_dir / "gpu_check.json", json.dumps(results, indent=1, default=str) + "\n")
    write_atomic(out_dir / "gpu_check.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    from tf_assign2.cli import run_cli

    sys.exit(run_cli(main))
