"""Figures of ``analysis.attribution``: the attribution grid and the deletion/insertion curves.

Pure functions from arrays to PNG files, like the rest of ``tf_assign2.figures`` (whose helpers they use).
"""

import numpy as np

from tf_assign2 import figures


def _colour(values, signed):
    """Values -> RGBA: signed maps on a blue-white-red scale symmetric about 0, others 0..max on inferno."""
    values = np.nan_to_num(np.asarray(values, np.float64))
    scale = np.abs(values).max() or 1.0
    if signed:
        return figures.colormap("RdBu_r")((values / scale + 1) / 2)
    return figures.colormap("inferno")(np.clip(values / scale, 0, 1))


def map_with_rows(pixel_map, rows, signed, gap=1, bar=4):
    """RGBA panel: the pixel map, a white gap and a bar of the row scores (>= 0) at its right."""
    left = _colour(pixel_map, signed)
    h = left.shape[0]
    space = np.ones((h, gap, 4))
    strip = np.repeat(_colour(np.asarray(rows)[:, None], signed=False), bar, axis=1)
    return np.concatenate([left, space, strip], axis=1)


def plot_attribution_grid(images, maps, methods, labels, true, predicted, confidence, class_names, path,
                          signed=(), rows=None, title=""):
    """One row per image: the image, then each method's map.

    ``maps``: {method: (n, h, w)}; ``labels``: {method: column title}; ``true``/``predicted``
    (n,) classes and ``confidence`` (n,) P(predicted); ``signed``: methods drawn on a diverging scale;
    ``rows``: {method: (n, h)} row scores, drawn as a bar beside each map (recurrent models).
    """
    n, cols = len(images), 1 + len(methods)
    fig, axes = figures.subplots(n, cols, figsize=(1.55 * cols, 1.7 * n + 0.5), squeeze=False)
    for i in range(n):
        figures._show(axes[i, 0], images[i])
        mark = "" if true[i] == predicted[i] else "  (wrong)"
        axes[i, 0].set_title(f"true {class_names[true[i]]}\npred {class_names[predicted[i]]} "
                             f"{confidence[i]:.2f}{mark}", fontsize=7)
        for j, method in enumerate(methods, start=1):
            ax = axes[i, j]
            is_signed = method in signed
            if rows is not None and method in rows:
                ax.imshow(map_with_rows(maps[method][i], rows[method][i], is_signed), interpolation="nearest")
            else:
                ax.imshow(_colour(maps[method][i], is_signed), interpolation="nearest")
            if not np.any(maps[method][i]):  # e.g. Grad-CAM whose weighted sum is negative everywhere
                ax.text(0.5, 0.5, "all 0", color="white", ha="center", va="center", fontsize=8,
                        transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(labels[method], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return figures._save(fig, path)


def plot_perturbation_curves(curves, labels, path, unit="pixels", title=""):
    """Mean deletion and insertion curves per method; ``curves``: {method: (fractions, deletion, insertion)}."""
    fig, (a_del, a_ins) = figures.subplots(1, 2, figsize=(10, 4))
    integrate = getattr(np, "trapezoid", None) or np.trapz
    for method, (fractions, deletion, insertion) in curves.items():
        style = {"color": "grey", "linestyle": "--"} if method == "random" else {}
        for ax, values in ((a_del, deletion), (a_ins, insertion)):
            auc = float(integrate(values, fractions, axis=-1).mean())
            ax.plot(fractions, values.mean(axis=0), label=f"{labels[method]} ({auc:.3f})", **style)
    a_del.set_title(f"deletion: most important {unit} removed first (lower AUC is better)", fontsize=9)
    a_ins.set_title(f"insertion: most important {unit} inserted first (higher AUC is better)", fontsize=9)
    for ax, verb in ((a_del, "removed"), (a_ins, "inserted")):
        ax.set_xlabel(f"fraction of {unit} {verb}")
        ax.set_ylabel("P(predicted class), mean over images")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="method (mean AUC)", title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return figures._save(fig, path)
