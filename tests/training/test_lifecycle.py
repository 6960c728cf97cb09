"""A run's lifecycle under faults: stopped mid-epoch, during a backup write or during export, or resumed
over a damaged backup, it resumes from the newest intact epoch and ends exactly where an
uninterrupted deterministic run ends. And a run folder has one owner."""

import json

import keras
import pytest
from helpers import StopAt, resume_run, run_history

from tf_assign2 import config as settings
from tf_assign2 import data, runs
from tf_assign2.errors import UsageError
from tf_assign2.training import callbacks as loop
from tf_assign2.training import export
from tf_assign2.training.trainer import Trainer

EPOCHS = 4
pytestmark = pytest.mark.slow  # each case trains a few short runs for real


@pytest.fixture(scope="module")
def setup(data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle")
    cfg = settings.build("cifar", {"data_dir": str(data_root / "CIFAR10"), "ntrain": 20, "ntest": 5,
                                   "epochs": EPOCHS, "deterministic": True, "visualize": False,
                                   "runs_dir": str(root / "runs")})
    keras.config.disable_interactive_logging()
    arrays, info = data.load_arrays(cfg)
    reference = Trainer(cfg, arrays, info)
    summary = reference.run(reference.new_run_dir())
    return cfg, arrays, info, summary


def _assert_equal_to_reference(setup, summary, run_dir):
    cfg, _, _, reference = setup
    assert summary["status"] == "completed"
    for key in ("test_accuracy", "test_loss", "final_train_loss", "final_val_accuracy"):
        assert summary[key] == reference[key], key
    assert summary["epochs_completed"] == EPOCHS == len(run_history(run_dir))
    assert run_history(run_dir) == run_history(reference["run_dir"])
    assert (run_dir / "saved_model" / "saved_model.pb").is_file() and (run_dir / "model.keras").is_file()
    assert not (run_dir / "backup").exists()  # a finished run keeps no backup


def test_stopped_mid_epoch_resumes_from_the_last_completed_epoch(setup):
    cfg, arrays, info, _ = setup
    trainer = Trainer(cfg, arrays, info)
    run_dir = trainer.new_run_dir()
    stopped = trainer.run(run_dir, extra_callbacks=[StopAt(3)])
    assert stopped["status"] == "interrupted" and loop.latest_intact(run_dir / "backup") == 2
    _assert_equal_to_reference(setup, resume_run(cfg, arrays, info, run_dir), run_dir)


def test_stopped_while_writing_a_backup_resumes_from_the_one_before(setup, monkeypatch):
    cfg, arrays, info, _ = setup
    trainer = Trainer(cfg, arrays, info)
    run_dir = trainer.new_run_dir()
    write_json = runs.write_json

    def dies_writing_epoch_3(path, obj):  # the weights of epoch 3 are written, its state.json is not
        if path.name == loop.STATE and obj["epoch"] == 3:
            raise KeyboardInterrupt
        write_json(path, obj)

    monkeypatch.setattr(runs, "write_json", dies_writing_epoch_3)
    assert trainer.run(run_dir)["status"] == "interrupted"
    monkeypatch.setattr(runs, "write_json", write_json)
    assert loop.backup_epochs(run_dir / "backup") == [1, 2]  # the half-written epoch is not under a final name
    assert len(run_history(run_dir)) == 2  # the history is written after the backup: it agrees
    _assert_equal_to_reference(setup, resume_run(cfg, arrays, info, run_dir), run_dir)


def _strict_json(path):
    """A JSON file that is JSON: NaN or Infinity (which Python's json writes by default) refused."""
    def refuse(constant):
        raise AssertionError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.parametrize("phase", ["test metrics", "export", "curves", "hparams"])
def test_stopped_after_the_last_epoch_says_so_and_resume_finishes_without_retraining(setup, monkeypatch, phase):
    """Ctrl-C in any step after the last epoch: summary.json says the run was interrupted (strict JSON,
    no test figures), nothing is half-written under a final name, the backup stays; --resume trains
    no epoch again, finishes what was left, and ends as the uninterrupted run did."""
    from tf_assign2 import figures
    from tf_assign2.training import trainer as trainer_module

    cfg, arrays, info, _ = setup
    trainer = Trainer(cfg, arrays, info)
    run_dir = trainer.new_run_dir()

    def dies_half_way(*args, **kwargs):
        if phase == "export":
            (run_dir / ".model.tmp.keras").write_bytes(b"half a model")
        raise KeyboardInterrupt

    owner, name = {"test metrics": (Trainer, "plain_test_metrics"), "export": (export, "save_all"),
                   "curves": (figures, "plot_curves"), "hparams": (trainer_module, "write_hparams")}[phase]
    monkeypatch.setattr(owner, name, dies_half_way)
    summary = trainer.run(run_dir)
    monkeypatch.undo()
    assert summary["status"] == "interrupted" and summary["interrupted_after_training"] is True
    assert _strict_json(run_dir / "summary.json") == json.loads(json.dumps(summary))
    assert summary["epochs_completed"] == EPOCHS and loop.latest_intact(run_dir / "backup") == EPOCHS
    assert summary["test_accuracy"] is None  # an interrupted run claims no test figures
    if phase in ("test metrics", "export"):
        assert not (run_dir / "model.keras").exists()
    trained = run_history(run_dir)
    resumed = resume_run(cfg, arrays, info, run_dir)
    _assert_equal_to_reference(setup, resumed, run_dir)
    assert run_history(run_dir) == trained  # no epoch was trained again
    finished = _strict_json(run_dir / "summary.json")
    assert finished["status"] == "completed" and finished["images_per_sec"] > 0  # from history.csv's epochs


def test_a_damaged_newest_backup_falls_back_to_the_previous_epoch(setup):
    cfg, arrays, info, _ = setup
    trainer = Trainer(cfg, arrays, info)
    run_dir = trainer.new_run_dir()
    assert trainer.run(run_dir, extra_callbacks=[StopAt(4)])["status"] == "interrupted"
    weights = loop.epoch_folder(run_dir / "backup", 3) / loop.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated, as by a full disk
    assert loop.latest_intact(run_dir / "backup") == 2
    summary = resume_run(cfg, arrays, info, run_dir)
    _assert_equal_to_reference(setup, summary, run_dir)  # history.csv agrees: no epoch twice


def test_a_run_folder_has_one_owner(setup):
    cfg, arrays, info, _ = setup
    trainer = Trainer(cfg, arrays, info)
    run_dir = trainer.new_run_dir()
    with runs.owned(run_dir, "run folder"), pytest.raises(UsageError, match=r"in use by process \d+ on "):
        trainer.run(run_dir)
    assert not (run_dir / "summary.json").exists()


def test_final_test_figures_are_the_final_weights_own(setup):
    """summary.json's test loss and accuracy (the test curve's last point, not a second pass) equal a
    fresh prediction of the test split by the saved model, and the last row of history.csv."""
    cfg, arrays, info, summary = setup
    model = keras.models.load_model(f"{summary['run_dir']}/model.keras", compile=False)
    logits = model.predict(data.eval_dataset(arrays.test_x, arrays.test_y, 256), verbose=0)
    assert (summary["test_loss"], summary["test_accuracy"]) == loop.logits_metrics(logits, arrays.test_y)
    last = runs.read_history(f"{summary['run_dir']}/history.csv")
    assert (last["test_loss"][-1], last["test_accuracy"][-1]) == pytest.approx(
        (summary["test_loss"], summary["test_accuracy"]), rel=1e-12)
