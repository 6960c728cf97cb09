"""The benchmark's measurements run and its table states the ratios; no speed thresholds (machines are noisy).

``benchmarks`` is not installed: it imports from the repository root (``pythonpath = .`` in pytest.ini).
"""

import json
import math
import os
import subprocess
import sys

import pytest

from benchmarks import bench


def _figure(value):
    return {"median": value, "epochs": [value / 2, value]}


def _results(lenet, rnn=None, tta=None, memory=None):
    """A results dict shaped like ``bench.run_bench``'s, with the given training figures."""
    return {
        "quick": True, "repeats": 1, "date": "2025-01-01", "seconds": 12.0, "lenet_images": 100, "rnn_images": 256,
        "machine": {"processor": "Test CPU", "cpu_count": 2, "gpus": [], "python": "3.11", "tensorflow": "2.x",
                    "keras": "3.x", "numpy": "2.x", "loadavg_start": [1.0, 1.0, 1.0], "loadavg_end": [2.0, 1.5, 1.0]},
        "lenet": lenet,
        "rnn": rnn or {},
        "data": {"png_files": 11000, "png_cold": 0.9, "png_warm": 0.8, "png_disk": 2.5, "idx_cold": 0.3,
                 "idx_warm": 0.2, "idx_disk": 0.4, "idx_images": 70000},
        "time_to_accuracy": tta or {},
        "memory": memory or {},
    }


def test_markdown_prints_the_goals_ratios():
    rates = {"tf1": 100.0, "fit": 80.0, "ours": 150.0, "ours_f32": 120.0, "one_chain": 110.0, "xla": 60.0,
             "bound": 200.0}
    assert set(rates) == set(bench.METHODS)
    lenet = {"50": {"cifar": {m: _figure(v) for m, v in rates.items()}},
             "256": {"cifar": {m: _figure(2 * v) for m, v in rates.items()}}}
    rnn = {"lstm": {m: _figure(v * 10) for m, v in rates.items()}}
    tta = {
        "cifar": {"target": 0.5, "model": "LeNet5", "seconds": 42.0, "epoch": 6, "max_epochs": 20, "best": 0.52,
                  "curve": [0.3, 0.52], "batch_size": 50, "optimizer": "adam 0.001", "train_seconds_run": 42.0,
                  "epoch_seconds": [9.5, 6.5],
                  "train_images": 9000},
        "mnist": {"target": 0.95, "model": "LSTM-128", "seconds": None, "epoch": None, "max_epochs": 1, "best": 0.9,
                  "curve": [0.9], "batch_size": 128, "optimizer": "adam 0.001", "train_seconds_run": 5.0,
                  "train_images": 9000},
    }
    memory = {"command": "python -m tf_assign2.cifar --epochs 10", "peak_rss_mb": 812.3, "images_per_sec": 140.0,
              "wall_seconds": 52.0, "step_seconds": 40.0, "wall_over_steps": 1.3,
              "test_accuracy": 0.53}
    text = bench.markdown({**_results(lenet, rnn, tta, memory), "lenet_optimizer_ms": 3.64})
    assert "| our trainer / TF1 loop, LeNet5 batch 50 | 1.50x | >= 1.3x |" in text
    assert "| our trainer batch 50 / bound at its best batch (256) | 0.38x | >= 0.9x |" in text
    assert "| our trainer / bound, both at our best batch (256) | 0.75x | >= 0.9x |" in text
    assert "| bound batch 50 / bound at its best batch (256): the ceiling of any batch-50 loop | 0.50x |" in text
    assert "| Adam update of LeNet5's 3.3M weights alone, per step (does not shrink with the batch) | 3.6 ms |" in text
    assert "| our trainer, LSTM-128 batch 128: vs TF1 loop; of bound | 1.50x; 0.75x |" in text
    assert "| our trainer (default settings) | 150 | 1.50x | 0.75x | 300 | 1.50x | 0.75x |" in text
    assert "| LSTM | our trainer (default settings) | 1,500 | 1.50x | 0.75x |" in text
    assert "| our trainer, `--precision float32` | 120 | 1.20x | 0.60x |" in text
    assert "| LSTM | our trainer, one chain (the plan's two set to one) | 1,100 | 1.10x | 0.55x |" in text
    assert "time to 0.50 test accuracy, cifar LeNet5 | 42.0 s (epoch 6) |" in text
    assert "not reached in 1 epoch (best 0.900)" in text
    assert "| cifar | LeNet5, batch 50, adam 0.001 | 9,000 | 0.50 | 42.0 | 6 | 9.50 | 6.50 | 0.300 0.520 |" in text
    assert "| - | - |" in text  # a record from before each epoch's seconds were kept
    assert "PNG decode of the 11,000 CIFAR images (fresh process) | 0.90 s | <= 1 s |" in text
    assert "| `python -m tf_assign2.cifar --epochs 10` | 52.0 | 40.0 | 1.30x | 812 MB | 140 | 0.530 |" in text
    assert "Machine: Test CPU, 2 cores, GPU: none" in text
    assert "## Summary: the speed goals and what was measured" in text
    assert "`python -m benchmarks.bench --quick`" in text
    assert "issue" not in text.lower()


def test_markdown_states_the_trainer_plans():
    plans = {"lenet5": {"device": "CPU", "precision": "bfloat16", "jit": False, "steps_per_execution": 16},
             "lstm": {"device": "CPU", "precision": "float32", "jit": True, "steps_per_execution": 1},
             "gru": {"device": "CPU", "precision": "float32", "jit": False, "steps_per_execution": 16, "onednn": True,
                     "chains": 2}}
    text = bench.markdown({**_results({"50": {"cifar": {"ours": _figure(1.0)}}}), "trainer_plans": plans})
    assert ("Our trainer's resolved plans (`Trainer.plan`, default settings, CPU): lenet5: bfloat16, XLA off, "
            "16 steps per call; lstm: float32, XLA on, 1 step per call; gru: float32, oneDNN, XLA off, 2 unrolled chains, "
            "16 steps per call.") in text


def test_float32_lenet_is_timed_once_where_the_default_is_float32():
    """``ours_f32`` is a second figure only where ``ours`` computes in bfloat16; the table then has no
    float32 row, and the auto precision here decides which case this machine is."""
    assert "ours_f32" not in bench.lenet_methods(bench.METHODS, "float32")
    assert bench.lenet_methods(bench.METHODS, "bfloat16") == bench.METHODS
    auto = bench.our_trainer(bench.our_config("cifar")).plan.precision
    assert ("ours_f32" in bench.lenet_methods(bench.METHODS, auto)) == (auto == "bfloat16")
    rates = {"tf1": 100.0, "ours": 150.0, "bound": 200.0}
    text = bench.markdown(_results({"50": {"cifar": {m: _figure(v) for m, v in rates.items()}}}))
    assert "| our trainer (default settings) | 150 |" in text and "--precision float32" not in text


def _images(n):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int32)


def test_tiny_measurements_make_a_table():
    """Two epochs of two steps for the TF1 loop and our trainer, then the table from those figures."""
    x, y = _images(100)
    figures = {}
    for method in ("tf1", "ours"):
        rates = bench.measure(method, "cifar", x, y, 50, 2)
        assert len(rates) == 2 and all(r > 0 and math.isfinite(r) for r in rates), (method, rates)
        figures[method] = bench._figure(rates)
    assert 0 < bench.optimizer_step_ms(bench.our_config("cifar"), repeats=2) < 10_000
    text = bench.markdown(_results({"50": {"cifar": figures}}))
    assert "| our trainer / TF1 loop, LeNet5 batch 50 |" in text
    assert "| TF1 graph + feed_dict loop (the starter) |" in text and "| 1.00x | " in text


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_tf1_rnn_graphs_train(cell):
    """The TF1 baseline's hand-written gated cells build, differentiate and run a step."""
    x, y = _images(16)
    rates = bench.tf1_rnn(cell, x, y, batch_size=8, epochs=1, nHidden=8)
    assert len(rates) == 1 and rates[0] > 0


def test_time_to_accuracy_records_the_first_epoch_at_target(data_root, monkeypatch):
    """A target of 0 is met after the first epoch: seconds and epoch are recorded and training stops."""
    monkeypatch.setenv("TF_ASSIGN2_DATA", str(data_root))
    result = bench.time_to_accuracy("cifar", 0.0, max_epochs=3, ntrain=10)
    assert result["epoch"] == 1 and result["seconds"] > 0 and len(result["curve"]) == 1
    assert result["train_images"] == 90 and result["model"] == "LeNet5"
    recipe = bench.time_to_accuracy("mnist", 0.0, max_epochs=1, ntrain=10, recipe="configs/mnist_rnn_recipe.yaml",
                                    overrides={"cell": "gru"})
    assert recipe["epoch"] == 1 and recipe["model"] == "GRU-128" and recipe["max_epochs"] == 1
    assert recipe["plan"]["jit"] in (True, False) and recipe["optimizer"].startswith("adam")


def test_our_figures_train_through_the_shared_trainer(monkeypatch):
    """``ours`` builds, compiles and fits through ``Trainer`` (its plan, its fit), not a copy of the recipe."""
    from tf_assign2.training import trainer as trainer_module

    calls = []
    for name in ("build_model", "compile", "fit"):
        original = getattr(trainer_module.Trainer, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(trainer_module.Trainer, name, spy)
    x, y = _images(100)
    rates = bench.measure("ours", "cifar", x, y, 50, 1)
    assert calls == ["build_model", "compile", "fit"] and len(rates) == 1 and rates[0] > 0


@pytest.mark.slow
def test_data_worker_runs_from_any_directory(data_root, tmp_path, monkeypatch):
    """The data worker is ``python -m benchmarks.bench --data-worker`` run from the repository root,
    with the data folders resolved by the caller (a relative $TF_ASSIGN2_DATA keeps working)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TF_ASSIGN2_DATA", os.path.relpath(data_root, tmp_path))
    command = bench.data_worker_command()
    assert command[1:4] == ["-m", "benchmarks.bench", "--data-worker"]
    assert all(os.path.isabs(path) for path in command[4:])
    figures = bench.data_figures(1)
    assert figures["png_files"] > 0 and 0 < figures["png_cold"] < 600 and figures["png_warm"] > 0
    assert figures["png_pillow"] > 0  # the decoder the fast path is compared with


@pytest.mark.slow
def test_quick_benchmark_writes_its_record(data_root, tmp_path):
    """``python -m benchmarks.bench --quick --out FILE --json FILE`` from the repository root: every section."""
    out, record = tmp_path / "bench.md", tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--quick", "--repeats", "1", "--out", str(out),
                           "--json", str(record)], capture_output=True, text=True, timeout=1800,
                          cwd=bench.ROOT, env={**os.environ, "TF_ASSIGN2_DATA": str(data_root)})
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    for section in ("## Summary: the speed goals and what was measured", "## LeNet5 training", "## RNN training",
                    "## The machine's limit, and PyTorch on the same machine", "## Data loading",
                    "## Time to accuracy", "## Default CLI runs: wall time, training steps, memory"):
        assert section in text, section
    results = json.loads(record.read_text())
    assert results["peak_gflops"]["float32"] > 0 and results["peak_gflops"]["bfloat16"] > 0
    assert set(results["training_flops"]) == {"lenet5", "lstm"}
    installed = bench.pytorch_peers.installed()
    assert results["pytorch"]["installed"] == installed
    assert ("PyTorch: not installed" in text) != installed
    if installed:
        assert results["pytorch"]["lstm"]["128"]["float32"]["median"] > 0
        paired = results["pytorch"]["lstm"]["128"]["paired"]
        assert len(paired["rounds"]) == 1 and paired["median"] == paired["rounds"][0]["ratio"] > 0
        assert "(paired)" in text
    assert set(results["lenet"]["50"]["cifar"]) >= {"tf1", "fit", "ours", "xla", "bound"}
    assert set(results["time_to_accuracy"]) == {"cifar", "mnist", *bench.RECIPES} and results["memory"]["peak_rss_mb"] > 0
    recipe = results["time_to_accuracy"]["cifar recipe"]
    assert recipe["recipe"] == "configs/cifar_lenet5_recipe.yaml" and recipe["target"] == 0.60 and recipe["curve"]
    assert results["memory"]["wall_over_steps"] > 1 and results["mnist_cli"]["wall_over_steps"] > 1


def test_cli_only_markdown_compares_the_two_codes():
    rows = [{"command": "python -m tf_assign2.cifar --epochs 10", "code": code, "wall_seconds": wall,
             "step_seconds": 22.0, "wall_over_steps": round(wall / 22.0, 2), "peak_rss_mb": 1187.0,
             "images_per_sec": 4178.0, "test_accuracy": 0.523} for code, wall in (("../old (abc123)", 38.9),
                                                                                  ("this checkout", 35.1))]
    rows.append({**rows[0], "code": bench.FLOOR_LABEL, "wall_seconds": 28.6, "wall_over_steps": 1.3, "peak_rss_mb": None,
                 "images_per_sec": None})
    results = {**_results({}), "plan": {"cli_only": True, "compare_with": "../old"}, "cli_runs": rows}
    text = bench.markdown(results)
    assert text.startswith("# Benchmarks: default CLI runs")
    assert "`python -m benchmarks.bench --quick --cli-only --compare-with ../old`" in text
    assert "| `python -m tf_assign2.cifar --epochs 10` | ../old (abc123) | 38.9 | 22.0 | 1.77x | 1,187 MB |" in text
    assert "| `python -m tf_assign2.cifar --epochs 10` | this checkout | 35.1 | 22.0 | 1.60x |" in text
    assert f"| `python -m tf_assign2.cifar --epochs 10` | {bench.FLOOR_LABEL} | 28.6 | 22.0 | 1.30x | - | - | 0.523 |" in text
    assert "## LeNet5 training" not in text


def test_compare_with_needs_a_checkout(tmp_path):
    from tf_assign2.errors import UsageError

    with pytest.raises(UsageError, match=r"--compare-with .*: not a checkout of this project"):
        bench.main(["--cli-only", "--compare-with", str(tmp_path)])


@pytest.mark.slow
def test_cli_run_runs_the_code_of_the_checkout_it_is_given(data_root, tmp_path, monkeypatch):
    """``--compare-with`` runs the other checkout's code: a copy whose training CLI says where it runs from."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(bench.ROOT / "tf_assign2", other / "tf_assign2")
    marker = "print('running from', __file__)\n"
    (other / "tf_assign2" / "cifar.py").write_text(marker + (other / "tf_assign2" / "cifar.py").read_text())
    monkeypatch.setenv("TF_ASSIGN2_DATA", str(data_root))
    row = bench.cli_run("cifar", ("--epochs", "1", "--ntrain", "10", "--ntest", "5", "--no-visualize"),
                        source=other)
    assert row["epochs"] == 1 and row["wall_seconds"] > row["step_seconds"] > 0
    assert row["output"].startswith(f"running from {other / 'tf_assign2' / 'cifar.py'}")


@pytest.mark.slow
def test_profile_run_accounts_for_the_wall_time(data_root, monkeypatch):
    """``python -m benchmarks.profile_run``: each phase timed, the steps among them, none longer than the wall."""
    from benchmarks import profile_run

    monkeypatch.setenv("TF_ASSIGN2_DATA", str(data_root))
    totals = profile_run.profile("cifar", ["--epochs", "2", "--ntrain", "20", "--ntest", "5"])
    wall = totals["wall (in process, from interpreter start)"]
    for phase in ("fit (all of it)", "fit: training steps (sum of epoch_seconds)", "fit: validation each epoch",
                  "fit: Visualization.on_epoch_end", "fit: EpochBackup.on_epoch_end", "fit: TestCurve.on_epoch_end",
                  "data: read and decode", "after fit: export (model.keras, SavedModel)"):
        assert 0 < totals[phase] <= wall, phase
    inside = sum(v for k, v in totals.items() if k.startswith("fit: ") and k != "fit: other (Keras between steps)")
    assert inside <= totals["fit (all of it)"]
    assert "wall / training steps:" in profile_run.table(totals)


@pytest.mark.slow
def test_the_floor_run_is_the_same_training_as_the_cli_run(data_root, monkeypatch):
    """``benchmarks.floor_run`` trains exactly what the CLI trains (same test accuracy at the same seed),
    only without the extras, so its wall / steps is a floor for that run."""
    monkeypatch.setenv("TF_ASSIGN2_DATA", str(data_root))
    args = ("--epochs", "1", "--ntrain", "200", "--ntest", "50", "--no-visualize")
    floor, run = bench.floor_cli_run("cifar", args), bench.cli_run("cifar", args)
    assert floor["code"] == bench.FLOOR_LABEL and floor["command"] == run["command"]
    assert floor["wall_seconds"] > floor["step_seconds"] > 0
    assert floor["test_accuracy"] == run["test_accuracy"]


def test_flops_are_counted_from_the_layers_as_tensorflow_counts_them():
    """The FLOP count of one image's forward pass, from the model's layers, agrees with TensorFlow's own
    profiler on the traced graph (which also counts biases, activations and pooling: a few percent more);
    the recurrent count agrees with the profiler on the same LSTM unrolled into its 28 steps."""
    import keras
    import tensorflow as tf

    from benchmarks import machine_limit
    from tf_assign2 import models
    from tf_assign2.config import build

    def profiled(model, shape):
        function = tf.function(lambda images: model(images, training=False))
        graph = function.get_concrete_function(tf.TensorSpec((1, *shape), tf.float32)).graph
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops

    lenet = models.build(build("cifar", {}), (28, 28, 1), 10)
    ours, theirs = machine_limit.forward_flops(lenet), profiled(lenet, (28, 28, 1))
    assert 0.95 * theirs <= ours <= theirs, (ours, theirs)
    assert machine_limit.training_flops(lenet) == 3 * ours

    rows = keras.Input((28, 28))
    unrolled = keras.Model(rows, keras.layers.Dense(10)(keras.layers.LSTM(128, unroll=True)(rows)))
    looped = keras.Model(rows, keras.layers.Dense(10)(keras.layers.LSTM(128)(rows)))
    ours, theirs = machine_limit.forward_flops(looped), profiled(unrolled, (28, 28))
    assert 0.9 * theirs <= ours <= theirs, (ours, theirs)
    wider = models.build(build("cifar", {"fc_units": 2048}), (28, 28, 1), 10)
    assert machine_limit.forward_flops(wider) - machine_limit.forward_flops(lenet) == 2 * (3136 + 10) * 1024


def test_the_peak_is_chained_products_in_both_precisions():
    from benchmarks import machine_limit

    peak = machine_limit.peak_gflops(size=256, repeats=2)
    assert set(peak) == {"float32", "bfloat16"} and all(value > 0 for value in peak.values())


def test_the_limit_section_puts_each_row_against_its_precision_s_peak():
    lenet = {"50": {"cifar": {"ours": _figure(1000.0)}}}
    rnn = {"lstm": {"ours": _figure(5000.0)}}
    results = {**_results(lenet, rnn), "scope": {"peak_size": 2048},
               "peak_gflops": {"float32": 200.0, "bfloat16": 400.0},
               "training_flops": {"lenet5": 80_000_000, "lstm": 12_000_000},
               "trainer_plans": {"lenet5": {"device": "CPU", "precision": "bfloat16", "jit": False,
                                            "steps_per_execution": 15},
                                 "lstm": {"device": "CPU", "precision": "float32", "jit": True, "steps_per_execution": 8}},
               "pytorch": {"installed": False}}
    text = bench.markdown(results)
    assert "float32 200 GFLOP/s, bfloat16 400 GFLOP/s" in text and "PyTorch: not installed" in text
    assert "| lenet5 | 50 | 80.0 | 1,000 | 80.0 | 20% (bfloat16) | - | - | - |" in text
    assert "| lstm | 128 | 12.0 | 5,000 | 60.0 | 30% (float32) | - | - | - |" in text
    results["pytorch"] = {"installed": True, "version": "2.x",
                          "lstm": {"128": {"float32": _figure(4000.0), "bfloat16": {"median": None, "error": "no LSTM"}}}}
    text = bench.markdown(results)
    assert "| lstm | 128 | 12.0 | 5,000 | 60.0 | 30% (float32) | 4,000 | fails: no LSTM | 1.25x |" in text
    assert "paired" not in text
    rounds = [{"ours": 5200, "pytorch": 4000, "ratio": 1.3}, {"ours": 4800, "pytorch": 4000, "ratio": 1.2},
              {"ours": 6000, "pytorch": 4000, "ratio": 1.5}]
    results["pytorch"]["lstm"]["128"]["paired"] = {"precision": "float32", "rounds": rounds, "median": 1.3}
    text = bench.markdown(results)
    assert "| lstm | 128 | 12.0 | 5,000 | 60.0 | 30% (float32) | 4,000 | fails: no LSTM | 1.30x (paired) |" in text
    assert "| lstm | 128 | float32 | 5,200 / 4,000, 4,800 / 4,000, 6,000 / 4,000 | 1.30 1.20 1.50 | 1.30x |" in text
    results["pytorch"]["lenet5"] = {"50": {"float32": _figure(800.0), "bfloat16": {**_figure(90.0), "emulated_images": 1024}}}
    text = bench.markdown(results)
    assert ("| lenet5 | 50 | 80.0 | 1,000 | 80.0 | 20% (bfloat16) | 800 | 90 (emulated: no bfloat16 instructions; "
            "1,024 images per epoch) | 1.25x |") in text


@pytest.mark.skipif(not bench.pytorch_peers.installed(), reason="PyTorch is an optional extra (bench)")
def test_the_pytorch_peer_trains_each_network(data_root):
    import numpy as np

    from benchmarks import pytorch_peers

    x = np.random.default_rng(0).integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
    y = np.arange(64) % 10
    from tf_assign2.training.plan import native_bfloat16_cpu

    for network in ("lenet5", "lstm", "gru", "rnn"):
        for precision in pytorch_peers.PRECISIONS:
            try:
                rates = pytorch_peers.rates(network, x, y, 32, 1, precision)
            except RuntimeError as e:  # oneDNN's bfloat16 LSTM needs bfloat16 instructions
                assert precision == "bfloat16" and not native_bfloat16_cpu() and "primitive" in str(e)
                continue
            assert len(rates) == 1 and rates[0] > 0
