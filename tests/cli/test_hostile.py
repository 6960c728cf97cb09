"""Hostile and careless input, by category: each category's cases are generated (every combination, or
hypothesis), and every case ends in one line on stderr, exit code 2, no traceback and nothing left
behind - or, where the input is legitimate, in the right result.

Categories: special files and loops where files or folders are expected; settings that nothing reads;
duplicate keys; a list where one value belongs."""

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tf_assign2 import api
from tf_assign2 import config as schema
from tf_assign2.errors import UsageError
from tf_assign2.models import MODELS

CASES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@contextlib.contextmanager
def no_hang(seconds=20):
    """Fail, rather than wait forever, if the call inside blocks (on a named pipe, in a loop)."""
    def timeout(signum, frame):
        raise AssertionError(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_line_refusal(done, *needles):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and all(n in lines[0] for n in needles), (lines[0], needles)
    return lines[0]


# --------------------------------------------------------------------------- special files and loops


def make_special(path, kind):
    """``path`` made into something that is not a regular file; returns the words its refusal uses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
        return "named pipe"
    if kind == "folder":
        path.mkdir()
        return "folder"
    if kind == "loop":
        os.symlink(path.name, path)  # a link to itself
        return "leads to itself"
    if kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()
        return "socket"
    raise ValueError(kind)


def copy_layout(source, target, per_class=3):
    for split in ("Train", "Test"):
        for label in range(10):
            folder = target / split / str(label)
            folder.mkdir(parents=True)
            for name in sorted(os.listdir(source / split / str(label)))[:per_class]:
                shutil.copy(source / split / str(label) / name, folder / name)
    return target


SLOTS = ("--config file", "sweep file", "search space", "an image", "an idx file", "an exported model",
         "a run's config.json")
KINDS = ("fifo", "folder", "loop", "socket")


@pytest.mark.parametrize("slot, kind", list(itertools.product(SLOTS, KINDS)))
def test_a_special_file_where_a_file_belongs_is_refused_in_one_line_without_waiting(slot, kind, data_root, tmp_path,
                                                                                   cli):
    """A named pipe would block the reader until a writer came; a folder, a socket or a link to itself
    is no file either. Each is named for what it is, wherever a file is read."""
    runs_dir = tmp_path / "runs"
    common = ("--epochs", "1", "--runs-dir", runs_dir)
    if slot == "an image":
        layout = copy_layout(data_root / "CIFAR10", tmp_path / "layout")
        target = layout / "Train" / "4" / "Image00001.png"
        target.unlink()
        words = make_special(target, kind)
        command = ("tf_assign2.cifar", "--data-dir", layout, *common)
    elif slot == "an idx file":
        layout = tmp_path / "idx"
        layout.mkdir()
        for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            (layout / name).write_bytes(b"")
        target = layout / "train-images-idx3-ubyte"
        words = make_special(target, kind)
        command = ("tf_assign2.mnist", "--data-dir", layout, *common)
    elif slot == "a run's config.json":
        target = tmp_path / "run" / "config.json"
        words = make_special(target, kind)
        command = ("tf_assign2.cifar", "--resume", target.parent)
    else:
        target = tmp_path / {"--config file": "c.yaml", "sweep file": "s.yaml", "search space": "space.yaml",
                             "an exported model": "model.tflite"}[slot]
        words = make_special(target, kind)
        command = {"--config file": ("tf_assign2.cifar", "--config", target, *common),
                   "sweep file": ("tf_assign2.sweep", target, "--out", tmp_path / "out"),
                   "search space": ("tf_assign2.tune", "cifar", "--space", target, "--directory", tmp_path / "tune"),
                   "an exported model": ("tf_assign2.evaluate", target)}[slot]
    if kind == "folder" and slot == "an exported model":
        words = "not a run directory or a SavedModel"  # a folder named model.tflite is a folder to look into
    with no_hang():
        done = cli(*command)
    one_line_refusal(done, words)
    assert not runs_dir.exists() and not (tmp_path / "out").exists() and not (tmp_path / "tune").exists()


def test_folder_walks_end_however_links_loop(data_root, tmp_path, cli, cifar_run):
    """A folder of runs holding links back to itself (the report walks it), and a class folder that is a
    link to itself (named as such, not as a wrongly named class)."""
    runs_dir = tmp_path / "runs"
    shutil.copytree(cifar_run.run_dir, runs_dir / "a" / cifar_run.run_dir.name)
    os.symlink("..", runs_dir / "a" / "up")
    os.symlink(runs_dir, runs_dir / "a" / "again")
    with no_hang(60):
        done = cli("tf_assign2.report", runs_dir, "--out", tmp_path / "report")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report" / "REPORT.md").read_text().count(f"| {cifar_run.run_dir.name} |") == 1
    layout = copy_layout(data_root / "CIFAR10", tmp_path / "layout")
    shutil.rmtree(layout / "Train" / "7")
    os.symlink("7", layout / "Train" / "7")
    with no_hang():
        one_line_refusal(cli("tf_assign2.cifar", "--data-dir", layout, "--runs-dir", tmp_path / "r"),
                         "Train/7: a symbolic link that leads to itself; expected a class folder")


# --------------------------------------------------------------------------- accepted but ignored


def unread_settings():
    """(model, setting) pairs of every built-in model and each model setting it does not read."""
    model_settings = [n for n, s in schema.SETTINGS.items() if s.group == "model" and n != "model"]
    return [(m, n) for m in ("lenet5", "rnn") for n in model_settings if n not in MODELS[m].settings]


def other_value(name):
    """A valid value of setting ``name`` other than its default."""
    rule, default = schema.SETTINGS[name], schema.DEFAULTS[name]
    if rule.kind is bool:
        return st.just(not default)
    if rule.choices is not None:
        return st.sampled_from([c for c in rule.choices if c != default])
    if name == "conv_filters":
        return st.tuples(st.integers(1, 64), st.integers(1, 64)).filter(lambda v: v != default)
    return st.integers(int(rule.low), int(min(rule.high, rule.low + 500))).filter(lambda v: v != default)


@CASES
@given(data=st.data())
def test_a_setting_nothing_reads_is_refused_not_recorded(data):
    """``mnist --batchnorm`` (the RNN has no batch normalisation), ``--units 64`` on LeNet5, ``--momentum``
    with Adam: the value would be recorded in config.json as if it applied. Refused, naming what reads it."""
    model, name = data.draw(st.sampled_from(unread_settings()))
    if name == "use_cudnn":
        return  # a kernel choice, read by every model with cuDNN layers; LeNet5 has none to choose
    value = data.draw(other_value(name))
    task = data.draw(st.sampled_from(schema.TASKS))
    with pytest.raises(UsageError, match=f"{schema.flag_name(name)} .*: the {model} model does not read it"):
        api.settings(task, model=model, **{name: value})
    momentum = data.draw(st.floats(0, 0.99).filter(lambda v: v != 0.9))
    optimizer = data.draw(st.sampled_from([o for o in ("adam", "sgd", "rmsprop", "adagrad", "adamw")]))
    with pytest.raises(UsageError, match=f"--momentum .*: --optimizer {optimizer} does not read it"):
        api.settings(task, optimizer=optimizer, momentum=momentum)
    assert api.settings(task, optimizer="momentum", momentum=momentum).momentum == momentum  # where it is read


@CASES
@given(keys=st.lists(st.sampled_from(["epochs", "lr", "seed", "batch_size", "optimizer"]), min_size=1, max_size=5,
                     unique=True),
       twice=st.data(), flow=st.booleans())
def test_a_key_given_twice_is_refused_not_silently_overwritten(tmp_path, keys, twice, flow):
    values = {"epochs": "3", "lr": "0.01", "seed": "2", "batch_size": "25", "optimizer": "sgd"}
    repeated = twice.draw(st.sampled_from(keys))
    order = keys + [repeated]
    text = ("{" + ", ".join(f"{k}: {values[k]}" for k in order) + "}\n") if flow else \
        "".join(f"{k}: {values[k]}\n" for k in order)
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=f"key '{repeated}' appears twice"):
        schema.read_yaml(path)


@CASES
@given(data=st.data())
def test_a_list_where_one_value_belongs_says_so(data):
    name = data.draw(st.sampled_from(["lr", "epochs", "batch_size", "optimizer", "seed", "label_smoothing"]))
    value = data.draw(st.lists(st.sampled_from([0.1, 2, 3, "adam"]), min_size=1, max_size=3))
    with pytest.raises(UsageError, match=r"a list \(.*\): expected one value, "):
        api.settings("cifar", **{name: value})


# --------------------------------------------------------------------------- damaged or hostile model files


MODEL_FILES = ("saved_model/saved_model.pb", "saved_model/variables/variables.index",
               "saved_model/variables/variables.data-00000-of-00001", "model.keras")


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(part=st.sampled_from(MODEL_FILES), cut=st.floats(0.0, 0.98), garbage=st.booleans())
def test_a_damaged_model_file_is_one_line_naming_it(cifar_run, tmp_path_factory, part, cut, garbage):
    """Any file of a run's SavedModel or its model.keras, truncated anywhere or overwritten with bytes that
    are no model: evaluate (the SavedModel) and export (model.keras) say which file in one line."""
    from conftest import call_main

    run_dir = shutil.copytree(cifar_run.run_dir, tmp_path_factory.mktemp("damaged") / "run")
    path = run_dir / part
    raw = path.read_bytes()
    path.write_bytes(os.urandom(max(1, int(len(raw) * cut))) if garbage else raw[: int(len(raw) * cut)])
    command = ("tf_assign2.export", run_dir, "--formats", "litert") if part == "model.keras" else \
        ("tf_assign2.evaluate", run_dir, "--out", run_dir / "eval")
    with no_hang(60), contextlib.redirect_stderr(stderr := __import__("io").StringIO()), \
            contextlib.redirect_stdout(__import__("io").StringIO()):
        code = call_main(*command)
    lines = stderr.getvalue().strip().splitlines()
    if code == 0:  # bytes that still load and run: only the SavedModel's data file can be hit so softly
        assert part.endswith("variables.data-00000-of-00001") and garbage
        return
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr.getvalue(), (code, stderr.getvalue())
    assert str(run_dir) in lines[0] and not (run_dir / "model.tflite").exists()


def test_exported_files_that_are_no_model_or_ask_for_too_much_memory(tmp_path, cli):
    (tmp_path / "model.tflite").write_bytes(os.urandom(500))
    one_line_refusal(cli("tf_assign2.evaluate", tmp_path / "model.tflite"), "model.tflite: cannot load litert model")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    (tmp_path / "random.onnx").write_bytes(os.urandom(500))
    one_line_refusal(cli("tf_assign2.evaluate", tmp_path / "random.onnx"), "random.onnx: cannot load onnx model")
    from onnx import TensorProto, helper

    # images -> a 12 GB tensor -> probabilities: refused by the bounded arena, not by the machine's memory
    ints = lambda name, values: helper.make_tensor(name, TensorProto.INT64, [len(values)], values)  # noqa: E731
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["big"], ["sum"], keepdims=1),
             helper.make_node("Reshape", ["images", "flat"], ["rows"]),
             helper.make_node("Slice", ["rows", "start", "end", "axis"], ["ten"]),
             helper.make_node("Add", ["ten", "sum"], ["probabilities"])]
    graph = helper.make_graph(
        nodes, "hostile", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 28, 28, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 10])],
        initializer=[ints("shape", [3_000_000_000]), ints("flat", [-1, 784]), ints("start", [0]), ints("end", [10]),
                     ints("axis", [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "huge.onnx")
    with no_hang(60):
        line = one_line_refusal(cli("tf_assign2.evaluate", tmp_path / "huge.onnx"), "huge.onnx: cannot run")
    assert "smaller than requested bytes" in line or "memory" in line.lower()


# --------------------------------------------------------------------------- edited run folders


@pytest.fixture(scope="module")
def interrupted_run(data_root, tmp_path_factory):
    """A tiny run stopped (Ctrl-C) in its third epoch of four: two epochs backed up, --resume possible."""
    import keras

    from tf_assign2 import data
    from tf_assign2.training.trainer import Trainer

    class StopInThirdEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    config = api.settings("cifar", data_dir=str(data_root / "CIFAR10"), ntrain=10, ntest=5, epochs=4, visualize=False,
                          runs_dir=str(tmp_path_factory.mktemp("interrupted")))
    trainer = Trainer(config, *data.load_arrays(config))
    run_dir = trainer.new_run_dir()
    assert trainer.run(run_dir, extra_callbacks=[StopInThirdEpoch()])["status"] == "interrupted"
    return run_dir


def an_edit():
    """A setting of config.json and another valid value for it, one that changes what the run is."""
    names = ["model", "dataset", "epochs", "optimizer", "lr", "batch_size", "seed", "conv_filters", "fc_units",
             "label_smoothing", "augment_shift", "flip", "test_curve", "val_split"]
    return st.sampled_from(names).flatmap(lambda name: st.tuples(st.just(name), {
        "model": st.just("rnn"), "dataset": st.just("mnist"), "epochs": st.integers(1, 3),
        "optimizer": st.sampled_from(["sgd", "rmsprop"]), "lr": st.floats(1e-5, 0.5).filter(lambda v: v != 1e-3),
        "batch_size": st.integers(1, 49), "seed": st.integers(1, 99), "conv_filters": st.just([8, 16]),
        "fc_units": st.integers(1, 1000), "label_smoothing": st.floats(0.01, 0.5), "augment_shift": st.integers(1, 7),
        "flip": st.sampled_from(["random", "alternate"]), "test_curve": st.just(False),
        "val_split": st.sampled_from([0.0, 0.2, 0.5])}[name]))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edit=an_edit())
def test_a_run_whose_config_was_edited_is_not_resumed_under_other_settings(interrupted_run, tmp_path_factory, edit):
    """Another model, another dataset, fewer epochs, another seed ...: the backups were trained under the
    recorded settings, so --resume refuses, naming config.json and what changed, and touches nothing."""
    import json

    from conftest import call_main

    name, value = edit
    run_dir = shutil.copytree(interrupted_run, tmp_path_factory.mktemp("edited") / "run")
    recorded = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**recorded, name: value}))
    history = (run_dir / "history.csv").read_text()
    stderr = __import__("io").StringIO()
    with no_hang(60), contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(__import__("io").StringIO()):
        code = call_main("tf_assign2.cifar", "--resume", run_dir)
    lines = stderr.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr.getvalue(), stderr.getvalue()
    assert f"{run_dir}/config.json" in lines[0]
    assert f"changed since the run backed up epoch 2 ({name}: " in lines[0] or "expected" in lines[0], lines[0]
    assert (run_dir / "history.csv").read_text() == history  # nothing trained, nothing truncated
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"


def test_an_edit_of_where_things_are_or_what_is_printed_still_resumes(interrupted_run, tmp_path, cli):
    import json

    run_dir = shutil.copytree(interrupted_run, tmp_path / "run")
    recorded = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**recorded, "quiet": True, "runs_dir": "elsewhere"}))
    done = cli("tf_assign2.cifar", "--resume", run_dir)
    assert done.returncode == 0, done.stderr
    assert json.loads((run_dir / "summary.json").read_text())["epochs_completed"] == 4


# --------------------------------------------------------------------------- what reports read


NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=30) \
    .filter(lambda name: name not in (".", "..") and not name.startswith("."))


def _tables(text):
    """Each Markdown table of ``text`` as the cell count of its rows (escaped pipes are no separators)."""
    import re

    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(len(re.split(r"(?<!\\)\|", line.strip())))
        elif current:
            tables, current = tables + [current], []
    return tables


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES, description=st.text(max_size=60), divergence=st.text(max_size=60))
def test_names_and_text_from_run_files_never_become_markdown_or_html(tmp_path_factory, name, description, divergence):
    """A run folder named ``a|b``, a sweep description with ``<script>``, a divergence message with backticks:
    REPORT.md and results.md show them as text; every table row keeps its header's cells."""
    from helpers import fake_run

    from tf_assign2 import runs
    from tf_assign2.experiments import report, sweep

    folder = tmp_path_factory.mktemp("named")
    fake_run(folder / "runs", name, acc=0.5, val=0.6)
    fake_run(folder / "runs", "other", status="diverged", optimizer="sgd")
    summary = runs.read_json(folder / "runs" / "other" / "summary.json")
    runs.write_json(folder / "runs" / "other" / "summary.json", {**summary, "divergence": divergence})
    text = report.build_report([folder / "runs"], folder / "report").read_text()
    md = sweep.results_markdown({"name": "s", "task": "cifar", "description": description, "file": None,
                                 "target": None}, [sweep.run_row(name, fake_config(), folder / "runs" / name)])
    for page in (text, md):
        tables = _tables(page)
        assert tables and all(len(set(rows)) == 1 for rows in tables), tables
        outside_code = re.sub(r"(`+)(.+?)\1", "", page)  # a code span shows its text as it is, HTML included
        assert "<" not in outside_code and ">" not in outside_code  # elsewhere HTML's characters only as entities


def fake_config():
    from tf_assign2.config import to_dict

    return to_dict(api.settings("cifar"))


SUMMARY_KEYS = ("test_accuracy", "best_val_accuracy", "train_seconds", "epochs_completed", "status", "divergence")
BAD_VALUES = st.one_of(st.text(max_size=5), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2),
                       st.integers(), max_size=2), st.booleans())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(SUMMARY_KEYS + ("optimizer", "model", "lr", "units")), value=BAD_VALUES)
def test_a_value_of_the_wrong_type_in_a_runs_files_is_one_error_naming_it(tmp_path_factory, key, value):
    """A string where a number belongs, a list where a name belongs, in summary.json or config.json: the
    report stops with one line naming the file and the key (or shows the value where it is of its type)."""
    from helpers import fake_run

    from tf_assign2 import runs
    from tf_assign2.experiments import report

    folder = tmp_path_factory.mktemp("typed")
    run_dir = fake_run(folder / "runs", "a", acc=0.5)
    target = run_dir / ("summary.json" if key in SUMMARY_KEYS else "config.json")
    runs.write_json(target, {**runs.read_json(target), key: value})
    try:
        report.build_report([folder / "runs"], folder / "report")
    except UsageError as e:
        assert str(target) in str(e) and key in str(e) and "\n" not in str(e)
    else:  # accepted only where the value is of the type the key holds
        assert isinstance(value, str) and key in ("divergence", "optimizer", "model", "status") and \
            (key != "status" or value in ("completed", "diverged", "interrupted"))


# --------------------------------------------------------------------------- leftovers and wrong causes


def _taken_port():
    """A socket listening on 127.0.0.1 (kept open by the caller): its port is taken."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


LEFTOVERS = ("out of memory building the model", "out of memory in the first step", "the sweep chief's port taken",
             "the search chief's port taken", "a search refused", "the disk full during export",
             "a device that does not exist")


@pytest.mark.parametrize("case", LEFTOVERS)
def test_a_command_that_fails_leaves_no_folder_behind_and_says_the_real_cause(case, data_root, tmp_path, cli,
                                                                            monkeypatch, cifar_run):
    """Whatever stops a command before it has done anything leaves no run, sweep or project folder and no
    lock file; the one line names the cause (memory, the port, the disk), not a symptom."""
    import tensorflow as tf

    from tf_assign2.training import export
    from tf_assign2.training.trainer import Trainer

    tiny = ("--ntrain", "10", "--ntest", "5", "--epochs", "1", "--no-visualize")
    listener, made = None, tmp_path / "made"
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text("task: cifar\nruns: [{name: a}]\n")
    if case == "out of memory building the model":
        def no_memory(*args, **kwargs):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

        monkeypatch.setattr(Trainer, "build_model", no_memory)
        command, needles = ("tf_assign2.cifar", *tiny, "--runs-dir", made), ("out of memory",)
    elif case == "out of memory in the first step":
        def no_memory(*args, **kwargs):
            raise MemoryError

        monkeypatch.setattr(Trainer, "fit", no_memory)
        command, needles = ("tf_assign2.cifar", *tiny, "--runs-dir", made), ("out of memory",)
    elif case in ("the sweep chief's port taken", "the search chief's port taken"):
        listener = _taken_port()
        chief = f"127.0.0.1:{listener.getsockname()[1]}"
        command = ("tf_assign2.sweep", sweep_file, "--out", made, "--chief", chief) if "sweep" in case else \
            ("tf_assign2.tune", "cifar", "--directory", made, "--chief", chief, *tiny[:4])
        needles = (f"--chief {chief}: cannot listen there (Address already in use",)
    elif case == "a search refused":
        command, needles = ("tf_assign2.tune", "cifar", "--directory", made, "--ntrain", "4", "--val-split", "0.1"), \
            ("leaves no validation images",)
    elif case == "the disk full during export":
        def disk_full(served, fmt, path):
            raise OSError(28, "No space left on device", str(path))

        monkeypatch.setattr(export, "write_format", disk_full)
        made = shutil.copytree(cifar_run.run_dir, tmp_path / "run")
        command, needles = ("tf_assign2.export", made, "--formats", "litert"), ("model.tflite: No space left on device",)
    else:
        command, needles = ("tf_assign2.cifar", *tiny, "--strategy", "mirrored", "--devices", "CPU:0,CPU:100000",
                            "--runs-dir", made), ("expected names like GPU:0,GPU:1 or CPU:0,CPU:1 (CPU:0 to CPU:63)",)
    try:
        with no_hang(120):
            line = one_line_refusal(cli(*command), *needles)
    finally:
        if listener is not None:
            listener.close()
    assert "converter" not in line
    if case == "the disk full during export":
        assert not (made / "model.tflite").exists() and (made / "summary.json").exists()  # the run itself stands
    else:
        assert not made.exists(), sorted(p.name for p in made.rglob("*"))


def test_a_finished_run_whose_summary_was_deleted_is_not_trained_over(cifar_run, tmp_path, cli):
    """No backup is left once a run finishes: a --resume there would train from scratch over its results."""
    run_dir = shutil.copytree(cifar_run.run_dir, tmp_path / "run")
    (run_dir / "summary.json").unlink()
    before = {p.name: p.stat().st_mtime for p in run_dir.iterdir()}
    one_line_refusal(cli("tf_assign2.cifar", "--resume", run_dir), "no intact backup to continue from, yet the folder "
                     "holds results (history.csv, model.keras); they would be overwritten: start a new run")
    assert {p.name: p.stat().st_mtime for p in run_dir.iterdir()} == before
