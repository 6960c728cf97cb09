"""Helpers that several test modules use (fixtures live in conftest.py): synthetic idx folders, a fake
run folder, the history of a run without its clock columns, resuming a run, and a Ctrl-C at an epoch."""

import csv
import gzip
import json
import struct
from pathlib import Path

import keras
import numpy as np

from tf_assign2 import config as schema
from tf_assign2 import data, runs
from tf_assign2.config import Config, to_dict, validate
from tf_assign2.training.trainer import Trainer, recorded_plan


def write_idx(path, array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def write_idx_folder(folder, train_x, train_y, test_x, test_y, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{ext}", train_x[..., 0], data.IDX_IMAGES_MAGIC)
    write_idx(folder / f"train-labels-idx1-ubyte{ext}", train_y, data.IDX_LABELS_MAGIC)
    write_idx(folder / f"t10k-images-idx3-ubyte{ext}", test_x[..., 0], data.IDX_IMAGES_MAGIC)
    write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", test_y, data.IDX_LABELS_MAGIC)
    return folder


def fake_run(parent, name, status="completed", acc=0.5, history=((2.0, 0.3), (1.5, 0.4)), val=0.61, **settings):
    """A run directory with the files a run writes (config.json, summary.json, history.csv)."""
    run_dir = Path(parent) / name
    run_dir.mkdir(parents=True)
    config = {**to_dict(validate(Config(**settings))), "data_info": {"dataset": settings.get("dataset", "cifar10"),
                                                           "n_train": 9000, "n_val": 1000, "n_test": 1000}}
    runs.write_json(run_dir / "config.json", config)
    runs.write_json(run_dir / "summary.json", {
        "status": status, "test_accuracy": acc if status == "completed" else None, "test_loss": 1.25,
        "best_val_accuracy": val, "epochs_completed": len(history), "train_seconds": 12.5,
        "images_per_sec": 1234.0, "parameters": 4321, "divergence": "starter_loss became inf in epoch 1"
        if status == "diverged" else None})
    rows = "".join(f"{i},{loss},{a},{a}\n" for i, (loss, a) in enumerate(history))
    (run_dir / "history.csv").write_text("epoch,loss,accuracy,test_accuracy\n" + rows)
    return run_dir


def run_history(run_dir):
    """history.csv without the wall-clock columns (a measurement, not a result)."""
    with open(f"{run_dir}/history.csv") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k not in ("rss_mb", "epoch_seconds")} for r in rows]


def resume_run(cfg, arrays, info, run_dir):
    recorded = schema.from_dict(json.loads((run_dir / "config.json").read_text()))
    return Trainer(recorded, arrays, info, plan=recorded_plan(run_dir)).run(run_dir, resume=True)


class StopAt(keras.callbacks.Callback):
    """Ctrl-C (KeyboardInterrupt) at the end of the first execution of ``epoch`` (1-based)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch:
            raise KeyboardInterrupt
