"""The notebooks: stored without outputs, and run top to bottom in a real Jupyter kernel (nbclient) in quick
mode, each in a folder of its own; a cell that raises fails the test. The change-walk notebook's
artifacts are checked: a model and an optimizer registered in the kernel were trained, swept, searched,
exported, visualised and reported without editing the package."""

import csv
import json
import time

import nbformat
import pytest
from conftest import DATA, ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_for_both_parts_and_the_search_and_they_are_stored_without_outputs():
    assert [p.stem for p in NOTEBOOKS] == ["01_lenet5_cifar", "02_rnn_mnist", "03_tuning", "04_your_own_model"]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code and all(not cell.outputs and cell.execution_count is None for cell in code), path.name
        setup = code[0].source
        assert "google.colab" in setup and "TF_ASSIGN2_NOTEBOOK_QUICK" in setup, path.name  # Colab, quick mode
        assert any("GPU runtime" in cell.source for cell in notebook.cells if cell.cell_type == "markdown")


def execute(path, folder, monkeypatch):
    """Run every cell of ``path`` in a fresh kernel whose working directory is ``folder``; returns the
    executed notebook and each cell's wall time."""
    import nbclient

    monkeypatch.setenv("TF_ASSIGN2_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("TF_ASSIGN2_DATA", str(DATA))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    seconds = []
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            started = time.perf_counter()
            client.execute_cell(cell, index)  # raises CellExecutionError, with the traceback, on an error
            seconds.append(round(time.perf_counter() - started, 1))
    print(f"{path.name}: {len(notebook.cells)} cells in {sum(seconds):.1f} s; per cell {seconds}")
    return notebook, seconds


def outputs(notebook, kind):
    """Every output of the code cells carrying MIME type ``kind``."""
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs if kind in o.get("data", {})]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_runs_top_to_bottom_in_a_kernel(path, tmp_path, monkeypatch):
    notebook, _ = execute(path, tmp_path, monkeypatch)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    assert outputs(notebook, "image/png") or outputs(notebook, "text/html")  # something shows inline
    assert not any("Traceback" in o.get("text", "") for cell in code for o in cell.outputs)
    if path.stem == "01_lenet5_cifar":
        html = "".join(o["data"]["text/html"] for o in outputs(notebook, "text/html"))
        assert "test accuracy" in html and "data:image/png;base64," in html  # the Run, the sweep, the figures
        assert len(outputs(notebook, "image/png")) >= 2  # run.curves(), run.filters()
    if path.stem == "04_your_own_model":
        check_the_change_walk(tmp_path)


def check_the_change_walk(folder):
    """What notebook 04 did with the model and the optimizer it registered: each use left its files."""
    (mlp_run,) = [p.parent for p in (folder / "runs").glob("cifar-nesterov-*/config.json")]
    config = json.loads((mlp_run / "config.json").read_text())
    assert (config["model"], config["optimizer"], config["fc_units"]) == ("mlp", "nesterov", 256)
    assert json.loads((mlp_run / "summary.json").read_text())["status"] == "completed"
    # sweep: both models, both optimizers
    with open(folder / "runs/sweeps/notebook_mlp_vs_lenet5/results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["model"], r["optimizer"], r["status"]) for r in rows} == {
        (m, o, "completed") for m in ("mlp", "lenet5") for o in ("nesterov", "adam")}
    # tune: the registered names are values of the search space, and every trial trained them
    project = folder / "runs/tune/notebook-mlp"
    space = json.loads((project / "search.json").read_text())["space"]
    assert (space["model"], space["optimizer"]) == ("mlp", "nesterov")
    with open(project / "trials.csv") as f:
        trials = list(csv.DictReader(f))
    assert [(t["status"], t["model"], t["optimizer"]) for t in trials] == [("completed", "mlp", "nesterov")] * 2
    best = json.loads((project / "best_hyperparameters.json").read_text())
    retrained = json.loads((folder / best["run_dir"] / "config.json").read_text())  # relative to the kernel
    assert (retrained["model"], retrained["optimizer"]) == ("mlp", "nesterov") and best["status"] == "completed"
    # export, evaluate, visualize
    exports = json.loads((mlp_run / "exports.json").read_text())
    assert (mlp_run / "model.tflite").stat().st_size > 0 and "litert" in json.dumps(exports)
    (evaluation,) = mlp_run.glob("eval-*/eval.json")
    assert json.loads(evaluation.read_text())["n_test"] == 100
    (shown,) = mlp_run.glob("visualize-*")
    assert (shown / "attribution.png").is_file() and (shown / "occlusion.png").is_file()
    assert not (shown / "top9_conv2.png").exists()  # no conv layer: no top-9 patches
    # report
    report = (folder / "reports/notebook-mlp/REPORT.md").read_text()
    assert mlp_run.name in report and "notebook_mlp_vs_lenet5" in report
