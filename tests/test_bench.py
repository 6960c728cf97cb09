"""The benchmark's workers run and report; no speed thresholds (machines are noisy)."""

import json

import pytest

from conftest import run_cli
from tf_assign2 import bench


@pytest.mark.parametrize("method", ["tf1", "ours", "bound"])
def test_worker_reports_images_per_second(method):
    done = run_cli("tf_assign2.bench", "--worker", method, "16", "4", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["method"] == method and result["batch_size"] == 16 and result["images_per_sec"] > 0


def test_markdown_table_states_the_ratios(data_root, monkeypatch):
    monkeypatch.setenv("TF_ASSIGN2_DATA", str(data_root))
    rows = {(m, b): rate for b in (50, 256) for m, rate in
            zip(("tf1", "fit", "ours", "xla", "bound"), (100.0, 80.0, 150.0, 60.0, 200.0))}
    text = bench.markdown(rows, 0.9, repeats=1, steps={50: 4, 256: 2}, quick=True)
    assert "| our trainer (default settings) | 150 | 1.50x |" in text
    assert "**1.50x the TF1 loop**, 0.75x the bare" in text
    assert "Cold decode of the 11000 CIFAR PNGs" in text
