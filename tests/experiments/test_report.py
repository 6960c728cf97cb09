"""The report: every number in REPORT.md is the one in the run files; optional parts are skipped
when their files are absent; bad arguments are one-line errors that leave nothing behind."""

import json
import re

import pytest
from helpers import fake_run

from tf_assign2 import runs
from tf_assign2.errors import UsageError
from tf_assign2.experiments import report


def table_row(text, first_cell):
    """The cells of the Markdown table row starting with ``first_cell``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r}")


def test_cifar_and_mnist_tables_come_from_the_run_files(tmp_path):
    cifar = tmp_path / "cifar"
    fake_run(cifar, "adam-big", status="diverged", history=((9.0, 0.1),), optimizer="adam", lr=1e-2)
    # adam is best on test, sgd on validation: the report chooses sgd, and says on what
    fake_run(cifar, "adam", acc=0.5312, val=0.55, optimizer="adam", lr=1e-3)
    fake_run(cifar, "sgd", acc=0.3617, val=0.58, optimizer="sgd", lr=1e-2)
    mnist = tmp_path / "mnist"
    common = dict(task="mnist", dataset="mnist", batch_size=128)
    fake_run(mnist, "r64", acc=0.871, val=0.88, model="rnn", cell="rnn", units=64, **common)
    fake_run(mnist, "r256", acc=0.912, val=0.91, model="rnn", cell="rnn", units=256, **common)
    fake_run(mnist, "l64", acc=0.934, val=0.97, model="rnn", cell="lstm", units=64, **common)  # best on validation
    fake_run(mnist, "g256", acc=0.961, val=0.95, model="rnn", cell="gru", units=256, **common)  # best on test
    fake_run(mnist, "cnn", acc=0.981, val=0.98, model="lenet5", **common)

    path = report.build_report([cifar, mnist], tmp_path / "report")
    text = path.read_text()
    assert table_row(text, "adam")[1:5] == ["adam", "0.001", "0.5500", "0.5312"]
    assert table_row(text, "sgd")[1:5] == ["sgd", "0.01", "**0.5800**", "0.3617"]  # bold: what it was chosen on
    assert table_row(text, "adam-big")[3:6] == ["", "NaN", "diverged"]
    assert "adam-big: starter_loss became inf in epoch 1" in text
    assert ("**Best configuration, chosen on validation accuracy: sgd** (optimizer sgd, lr 0.01): validation "
            "accuracy 0.5800; its test accuracy 0.3617") in text
    assert "9,000 train, 1,000 val, 1,000 test" in text
    # cell x units: rows are cells, columns the sizes present; an absent combination is blank
    assert table_row(text, "BasicRNN") == ["BasicRNN", "0.8710", "0.9120"]
    assert table_row(text, "GRU") == ["GRU", "", "0.9610"]
    assert table_row(text, "LSTM") == ["LSTM", "**0.9340**", ""]  # the recurrent run chosen on validation
    assert table_row(text, "LeNet5")[1:3] == ["LeNet5", "0.9810"]
    assert table_row(text, "parameters") == ["parameters", "64 units", "256 units"]
    # overlays drawn from the histories, best curves absent (fake runs have no curves.png): skipped
    for link in re.findall(r"\]\((figures/[^)]+)\)", text):
        assert (tmp_path / "report" / link).is_file(), link
    assert len(list((tmp_path / "report" / "figures").glob("*overlay.png"))) == 2
    assert "best-curves" not in text
    # the chosen run's own curves.png, where it has one, is shown under its name
    (cifar / "sgd" / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 32)
    text = report.build_report([cifar, mnist], tmp_path / "report2").read_text()
    (link,) = re.findall(r"\]\((figures/[^)]*best-curves\.png)\)", text)
    assert (tmp_path / "report2" / link).read_bytes() == (cifar / "sgd" / "curves.png").read_bytes()
    # no filters, statistics or visualize folder in these runs: said, not failed
    assert "No filter figures in this run" in text and "No `activation_stats.json`" in text
    assert "python -m tf_assign2.visualize" in text


def test_cnn_section_uses_the_runs_statistics_and_visualisations(tmp_path):
    run_dir = fake_run(tmp_path / "runs", "adam", acc=0.55)
    stats = {"split": "test", "n_images": 1000, "epoch": 10, "layers": {
        "conv1": {"stage": "after ReLU", "mean": 0.0525, "variance": 0.0063, "std": 0.0793, "min": 0.0, "max": 1.5,
                  "zero_fraction": 0.447},
        "pool1": {"stage": "after pooling", "mean": 0.0753, "variance": 0.0088, "std": 0.0935, "min": 0.0,
                  "max": 1.5, "zero_fraction": 0.321}}}
    runs.write_json(run_dir / "activation_stats.json", stats)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 32
    (run_dir / "filters.png").write_bytes(png)
    vis = run_dir / "visualize-20260101-000000"
    vis.mkdir()
    (vis / "occlusion.png").write_bytes(png)
    runs.write_json(vis / "visualize.json", {"files": {"occlusion.png": "occlusion sensitivity maps"}})

    text = report.build_report([tmp_path / "runs"], tmp_path / "out").read_text()
    assert table_row(text, "conv1") == ["conv1", "after ReLU", "0.0525", "0.0063", "0.0793", "0.0000", "1.5000",
                                        "44.7 %"]
    assert table_row(text, "pool1")[-1] == "32.1 %"
    assert "On the 1000 test images, after epoch 10" in text
    assert (tmp_path / "out" / "figures" / "cifar-filters.png").read_bytes() == png
    assert (tmp_path / "out" / "figures" / "cifar-occlusion.png").read_bytes() == png
    assert "Occlusion sensitivity maps (`occlusion.png`)" in text
    assert "filters_change" not in text  # absent in the run: not linked


def test_bad_arguments(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no runs found"):
        report.build_report([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(UsageError, match="not found"):
        report.build_report([tmp_path / "nope"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = cli("tf_assign2.report", tmp_path / "nope", "--out", tmp_path / "out")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_report_of_a_real_run(cifar_run, tmp_path, cli):
    """A real (tiny) CIFAR run through the CLI (``cifar_run``: SGD 0.01, 2 epochs), then the report CLI on its folder."""
    assert cifar_run.returncode == 0, cifar_run.stderr[-2000:]
    result = cli("tf_assign2.report", cifar_run.runs_dir, "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = cifar_run.run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    stats = json.loads((run_dir / "activation_stats.json").read_text())
    text = (tmp_path / "report" / "REPORT.md").read_text()
    row = table_row(text, run_dir.name)
    assert row[1:5] == ["sgd", "0.01", f"**{summary['best_val_accuracy']:.4f}**", f"{summary['test_accuracy']:.4f}"]
    assert row[6:8] == ["2", f"{summary['train_seconds']:.1f}"]
    assert table_row(text, "conv2")[2] == f"{stats['layers']['conv2']['mean']:.4f}"
    for name in ("cifar-filters.png", "cifar-filters-change.png"):
        assert (tmp_path / "report" / "figures" / name).read_bytes() == (
            run_dir / name.replace("cifar-", "").replace("-change", "_change")).read_bytes()
