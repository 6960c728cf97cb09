"""Matplotlib figures. Pure functions from arrays/tables to PNG files; nothing here trains."""

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history, path, title=""):
    """The assignment's plots: train loss, and train/validation/test accuracy per epoch.

    ``history`` maps column names (as in history.csv) to lists of per-epoch values.
    """
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "train loss"), ("val_loss", "validation loss")):
        if history.get(key):
            ax_loss.plot(epochs, history[key], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    for key, label in (("accuracy", "train"), ("val_accuracy", "validation"), ("test_accuracy", "test")):
        if history.get(key):
            ax_acc.plot(epochs, history[key], marker="o", label=label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    _save(fig, path)


def plot_confusion_matrix(matrix, class_names, path, title=""):
    """Row-normalised confusion matrix (rows: true class), counts written in each cell."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5, 0.55 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    _save(fig, path)
