"""Hostile files and flags: whatever a PNG, an idx file, a YAML file or a run's config.json holds, reading
it returns valid data or one UsageError naming the file, never another exception, in bounded work.
Signals and a second process: SIGTERM ends a run like Ctrl-C; a second tune on one project is refused."""

import gzip
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import yaml
from conftest import DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tf_assign2 import config as schema
from tf_assign2 import data, runs
from tf_assign2.errors import UsageError

HOSTILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def _png(width, height, depth, colour, pixels):
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(pixels)) + _chunk(b"IEND", b"")


@HOSTILE
@given(width=st.integers(0, 2**31), height=st.integers(0, 2**31), depth=st.sampled_from([1, 2, 4, 8, 16, 3, 0, 255]),
       colour=st.sampled_from([0, 2, 3, 4, 6, 1, 7]), pixels=st.binary(max_size=200))
def test_png_headers_of_any_size_depth_and_colour(tmp_path, width, height, depth, colour, pixels):
    path = tmp_path / "Image00000.png"
    path.write_bytes(_png(width, height, depth, colour, pixels))
    started = time.perf_counter()
    try:
        image = data.decode_png(path)
    except UsageError as e:
        assert str(path) in str(e) and "\n" not in str(e)
    else:
        assert image.dtype == np.uint8 and image.shape == (height, width, 1)
        assert width * height <= data.sources.MAX_PIXELS
    assert time.perf_counter() - started < 5  # a huge header is refused before decoding


def test_a_huge_png_header_is_refused_without_decoding(tmp_path):
    path = tmp_path / "Image00000.png"
    rows = zlib.compress(b"\0" * 40001 * 100)  # a small file whose header declares 40000 x 40000
    path.write_bytes(_png(40000, 40000, 8, 0, b"")[:33] + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))
    with pytest.raises(UsageError, match="image is 40000x40000 pixels"):
        data.decode_png(path)


def test_16_bit_pngs_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    wide = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "a.png")
    assert data.decode_png(tmp_path / "a.png")[0, :, 0].tolist() == [0, 1, 128, 255]


def _idx(magic, dims, body):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + body


@HOSTILE
@given(labels=st.lists(st.integers(0, 255), min_size=0, max_size=30), images=st.integers(0, 30), gz=st.booleans(),
       garble=st.binary(max_size=20))
def test_idx_folders_with_any_labels(tmp_path, labels, images, gz, garble):
    folder = tmp_path / "idx"
    folder.mkdir(exist_ok=True)
    for stem, dims, body in (("train-images-idx3-ubyte", (images, 2, 2), bytes(images * 4)),
                             ("train-labels-idx1-ubyte", (len(labels),), bytes(labels)),
                             ("t10k-images-idx3-ubyte", (images, 2, 2), bytes(images * 4)),
                             ("t10k-labels-idx1-ubyte", (len(labels),), bytes(labels) + garble)):
        magic = 2051 if "images" in stem else 2049
        raw = _idx(magic, dims, body)
        for old in folder.glob(stem + "*"):
            old.unlink()
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)
    cfg = schema.build("mnist", {"data_dir": str(folder), "val_split": 0.0})
    try:
        arrays, info = data.load_arrays(cfg)
    except UsageError as e:
        assert str(folder) in str(e) and "\n" not in str(e)
    else:
        assert info.num_classes >= 2 and sorted(set(arrays.train_y.tolist())) == list(range(info.num_classes))
        assert arrays.test_y.max() < info.num_classes


def test_a_corrupt_gzip_is_one_error(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx(2051, (1, 2, 2), bytes(4)))[:-12] + b"\0" * 12)
    with pytest.raises(UsageError, match="cannot read idx file"):
        data.read_idx(path, 2051)


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@HOSTILE
@given(values=st.dictionaries(st.sampled_from(sorted(schema.SETTINGS)) | st.text(max_size=12), YAML_VALUES,
                              max_size=6))
def test_config_files_of_any_content(tmp_path, values):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(values))
    try:
        schema.build("cifar", schema.file_values(schema.read_yaml(path), f"--config {path}"))
    except UsageError as e:
        assert "\n" not in str(e)


@HOSTILE
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_yaml_files_of_any_bytes(tmp_path, raw):
    path = tmp_path / "c.yaml"
    path.write_bytes(raw)
    try:
        values = schema.read_yaml(path)
    except UsageError as e:
        assert str(path) in str(e) and "\n" not in str(e)
    else:
        assert isinstance(values, dict)


@pytest.mark.parametrize("text, message", [
    ("a: &x [1, 2]\nb: *x\n", "anchors and aliases"),
    ("a: " + "[" * 40 + "]" * 40 + "\n", "nested deeper than 16"),
    (b"lr: 0.1\xff\n", "not UTF-8"),
    ("x" * (schema.YAML_MAX_BYTES + 1), "larger than"),
])
def test_yaml_bombs_are_refused_before_they_expand(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UsageError, match=message):
        schema.read_yaml(path)


@HOSTILE
@given(values=st.dictionaries(st.sampled_from(sorted(schema.SETTINGS)), YAML_VALUES, max_size=12)
       | st.lists(st.integers(), max_size=3) | st.integers())
def test_run_configs_of_any_shape(tmp_path, values):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values, default=str))
    try:
        schema.from_dict(runs.read_json(path), str(path))
    except UsageError as e:
        assert "\n" not in str(e)


def test_an_empty_run_config_is_not_resumed_with_defaults(tmp_path, cli):
    (tmp_path / "config.json").write_text("{}")
    done = cli("tf_assign2.cifar", "--resume", tmp_path)
    assert done.returncode == 2 and "missing task, dataset, model" in done.stderr


@pytest.mark.parametrize("args, message", [
    (("--seed", "-1"), "--seed: expected an integer >= 0 and <= 4294967295"),
    (("--seed", str(2**32)), "--seed: expected an integer >= 0"),
    (("--steps", "5", "--epochs", "3"), "--steps and --epochs both given"),
    (("--devices", "GPU:7"), "--devices is for --strategy mirrored"),
    (("--units", "100000000"), "--units: expected an integer >= 1 and <= 65536"),
    (("--epochs", str(10**9)), "--epochs: expected an integer >= 1 and <= 100000"),
])
def test_flags_tensorflow_would_reject_later_are_refused_first(cli, tmp_path, args, message):
    done = cli("tf_assign2.cifar", "--runs-dir", tmp_path / "runs", *args)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_device_that_is_not_there_is_refused(cli, tmp_path):
    done = cli("tf_assign2.cifar", "--ntrain", "5", "--ntest", "2", "--strategy", "mirrored", "--devices", "GPU:7",
               "--runs-dir", tmp_path / "runs")
    assert done.returncode == 2 and "--devices GPU:7: no GPU:7 on this machine" in done.stderr


def test_sweep_grids_are_counted_before_they_are_expanded(tmp_path):
    from tf_assign2.experiments import sweep

    path = tmp_path / "s.yaml"
    path.write_text("task: cifar\ngrid: {" + ", ".join(f"k{i}: [{', '.join(map(str, range(10)))}]" for i in range(9))
                    + "}\n")
    started = time.perf_counter()
    with pytest.raises(UsageError, match="1,000,000,000 entries, more than the 1,000 allowed"):
        sweep.load_sweep(path)
    assert time.perf_counter() - started < 1


def _env():
    return {**os.environ, "TF_ASSIGN2_DATA": str(DATA), "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_sigterm_ends_a_run_like_ctrl_c_and_it_resumes(tmp_path):
    args = ("--ntrain", "40", "--ntest", "5", "--epochs", "3", "--no-visualize", "--runs-dir", str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "tf_assign2.cifar", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob("*/backup/epoch-0001")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert f"interrupted: continue with --resume {run_dir}" in err and "Traceback" not in err
    done = subprocess.run([sys.executable, "-m", "tf_assign2.cifar", "--resume", str(run_dir)], capture_output=True,
                          text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((run_dir / "summary.json").read_text())["epochs_completed"] == 3


@pytest.mark.slow
def test_two_identical_tune_commands_on_one_project(tmp_path):
    command = [sys.executable, "-m", "tf_assign2.tune", "cifar", "--max-trials", "2", "--epochs", "1", "--ntrain", "20",
               "--ntest", "5", "--no-visualize", "--directory", str(tmp_path)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    lock = tmp_path / "cifar-random" / runs.LOCK_FILE
    deadline = time.monotonic() + 120
    while not (lock.is_file() and lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=120)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert second.returncode == 2 and len(second.stderr.splitlines()) == 1, second.stderr
    assert f"this tuning project is in use by process {first.pid} on " in second.stderr
    assert re.findall(r"^trial (\d)/2 done", out, re.M) == ["1", "2"]  # every trial once, alone
