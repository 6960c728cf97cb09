"""The GPU check (``python -m benchmarks.gpu_check OUT_DIR [--dry]``): its plan of figures, and its dry run
end to end, so the command a GPU machine runs cannot rot where there is none.

``benchmarks`` is not installed: it imports from the repository root (``pythonpath = .`` in pytest.ini).
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import DATA, ROOT

from benchmarks import gpu_check

SECTIONS = ("# GPU check", "## Summary", "## Environment", "## GPU tests", "## Training throughput (dry, CPU)",
            "## What auto chooses", "## Default CIFAR run (dry, CPU)", "## Phases")


def test_the_gpu_figures_cover_every_model_batch_and_setting_largest_batches_first():
    jobs = gpu_check.figure_jobs(gpu_check.GPU)
    assert len(jobs) == len(set(jobs)) == 4 * 2 * 4  # models x batch sizes x (XLA, precision)
    assert {(m, b) for m, b, _, _ in jobs} == {("lenet5", 50), ("lenet5", 512), *((c, b) for c in ("rnn", "lstm", "gru")
                                                                                  for b in (128, 1024))}
    assert {b for _, b, _, _ in jobs[:16]} == {512, 1024}  # a budget cuts the small batches first
    dry = gpu_check.figure_jobs(gpu_check.DRY)
    assert {m for m, _, _, _ in dry} == set(gpu_check.MODELS) and {b for _, b, _, _ in dry} == {50, 128}


def test_auto_is_compared_with_the_fastest_measured_setting():
    def cells(**medians):
        return {key: {"median": value, "images": 1000} for key, value in medians.items()}

    figures = {"lenet5": {"512": cells(**{"xla_off-float32": 10.0, "xla_on-float32": 30.0, "xla_off-mixed": 20.0,
                                          "xla_on-mixed": 40.0})},
               "lstm": {"1024": {**cells(**{"xla_off-float32": 50.0, "xla_on-float32": 20.0}),
                                 "xla_off-mixed": {"skipped": "time budget"}}}}
    lenet, lstm = gpu_check.auto_vs_fastest(gpu_check.GPU, figures)
    assert lenet["auto"] == "xla_on-float32" and lenet["fastest"] == "xla_on-mixed"  # XLA on a GPU, float32
    assert lenet["auto_is_fastest"] is False and lenet["auto_of_fastest"] == 0.75 and lenet["complete"]
    assert lstm["auto"] == "xla_off-float32" and lstm["auto_use_cudnn"] == "auto"  # cuDNN's kernel, no XLA
    assert lstm["auto_is_fastest"] is True and not lstm["complete"]


def test_the_full_check_needs_a_gpu(data_root, tmp_path, monkeypatch):
    from tf_assign2.errors import UsageError

    if gpu_check.visible_gpus():
        pytest.skip("a GPU is visible: the full check would run")
    monkeypatch.setenv("TF_ASSIGN2_DATA", str(data_root))
    with pytest.raises(UsageError, match="no GPU visible to TensorFlow.*--dry"):
        gpu_check.main([str(tmp_path / "out")])


@pytest.mark.slow
def test_the_dry_run_writes_every_section_and_figure(data_root, tmp_path):
    """The whole command on the CPU (GPUs hidden), with room enough that every dry figure is measured."""
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", str(out), "--dry", "--budget", "600"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "TF_ASSIGN2_DATA": str(DATA), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    text = (out / "gpu_check.md").read_text()
    assert text in done.stdout
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert "--dry: a CPU rehearsal" in text and "issue" not in text.lower()

    results = json.loads((out / "gpu_check.json").read_text())
    assert {"dry", "date", "command", "seconds", "budget_s", "sizes", "phase_seconds", "environment", "images",
            "plans", "throughput", "auto_vs_fastest", "gpu_tests", "cifar_run", "goals"} <= set(results)
    assert results["dry"] is True and results["seconds"] > 0
    assert all(seconds >= 0 for seconds in results["phase_seconds"].values())
    env = results["environment"]
    assert env["gpu_details"] == [] and env["cuda_visible_devices"] == "" and env["tensorflow"] and env["keras"]
    assert "cuda_version" in env["build_info"] or env["build_info"].get("is_cuda_build") is False

    tests = results["gpu_tests"]  # every test marked gpu, skipped: the GPUs are hidden
    assert tests["returncode"] == 0 and not tests["timed_out"] and tests["collected"] >= 13
    assert tests["counts"]["skipped"] == tests["collected"]
    assert {t["test"].split("::")[0] for t in tests["tests"]} == {"tests/training/test_gpu.py"}
    assert (out / "gpu_tests.xml").is_file() and (out / "gpu_tests.log").is_file()

    for name in gpu_check.MODELS:  # every figure the dry run measures is there and positive
        measured = gpu_check.DRY.measured(name)
        (cells,) = results["throughput"][name].values()
        assert set(cells) == {gpu_check.setting_key(*s) for s in measured}
        for figure in cells.values():
            assert figure["median"] > 0 and figure["images"] > 0 and figure["seconds"] > 0, figure
            assert figure["plan"]["device"] == "CPU"
        plans = results["plans"][name]
        assert plans["gpu"]["device"] == "GPU" and plans["cpu"]["device"] == "CPU"
    assert results["plans"]["lenet5"]["gpu"]["jit"] is True and results["plans"]["lstm"]["gpu"]["jit"] is False
    rows = results["auto_vs_fastest"]
    assert [r["model"] for r in rows] == list(gpu_check.MODELS)
    assert all(r["fastest_images_per_s"] > 0 for r in rows)

    run = results["cifar_run"]
    assert run["returncode"] == 0 and run["status"] == "completed" and run["epochs_completed"] == 2
    for key in ("seconds", "train_seconds", "epochs_seconds_sum", "images_per_sec", "peak_rss_mb"):
        assert run[key] > 0, key
    assert 0 <= run["test_accuracy"] <= 1 and run["plan"]["device"] == "CPU"
    assert [line.split(":")[0] for line in run["first_lines"]] == ["data", "plan"]  # the run says what it read and chose
    assert run["first_lines"][1].startswith("plan: CPU, ") and run["first_lines"][1] in text
    assert gpu_check._bfloat16_verdict({"device_name": "Tesla T4", "compute_capability": (7, 5)}).startswith(
        "refused: --precision bfloat16: this GPU (Tesla T4, compute capability 7.5)")
    assert gpu_check._bfloat16_verdict({"device_name": "NVIDIA H100", "compute_capability": (9, 0)}) == "runs"
    assert all(goal["value"] > 0 and goal["met"] is None for goal in results["goals"])
