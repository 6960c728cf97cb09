"""Matplotlib figures: pure functions from arrays and tables to a Figure, written as a PNG when given a path.

Figures are made without pyplot: no backend is chosen or changed and no figure is kept in
pyplot's registry, so a command on a server draws into files and a notebook keeps its own
backend. Each function returns its Figure, which Jupyter shows inline when a cell returns it.

Every figure of the package is drawn here: a run's curves, filters and confusion matrix, the Zeiler &
Fergus figures, sweeps and searches (this module), and attribution maps and curves (``figures.attribution``).
"""

import io

import matplotlib
import matplotlib.patches
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

DPI = 110


class InlineFigure(Figure):
    """A Figure that Jupyter shows as a PNG when a cell returns it, whatever matplotlib backend is active."""

    def _repr_png_(self):
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=DPI)
        return buffer.getvalue()


def subplots(nrows=1, ncols=1, figsize=None, **kwargs):
    """``pyplot.subplots`` without pyplot: (figure, axes)."""
    fig = InlineFigure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def colormap(name, count=None):
    cmap = matplotlib.colormaps[name]
    return cmap.resampled(count) if count else cmap


def _save(fig, path):
    """Lay ``fig`` out, write it to ``path`` (when given) and return it."""
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=DPI)
    return fig


def plot_curves(history, path=None, title=""):
    """The assignment's plots: train loss, and train/validation/test accuracy per epoch.

    ``history`` maps column names (as in history.csv) to lists of per-epoch values.
    """
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    fig, (ax_loss, ax_acc) = subplots(1, 2, figsize=(10, 4))
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
    return _save(fig, path)


def plot_confusion_matrix(matrix, class_names, path=None, title=""):
    """Row-normalised confusion matrix (rows: true class), counts written in each cell."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5, 0.55 * len(class_names) + 2)
    fig, ax = subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    return _save(fig, path)


# --------------------------------------------------------------------------- visualisation figures
#
# Filter grids, Zeiler & Fergus mosaics, occlusion maps and recurrent heatmaps. Every
# function takes NumPy arrays; the numbers are computed in ``callbacks`` and ``visualize``.


def filter_tiles(kernel, shared_scale=False):
    """A conv kernel (kh, kw, in, n) -> n display tiles (n, kh, kw, c) in [0, 1].

    Per-filter normalisation (the default) stretches each filter's own min..max to 0..1,
    so every filter's pattern is visible. ``shared_scale`` maps all filters on one symmetric
    scale, ``w / (2 max|W|) + 0.5``: mid-grey is 0, so filters can be compared in strength.
    Tiles are grayscale (c = 1) except for 3 input channels (RGB); other channel counts are
    averaged to grayscale. Non-finite weights show as 0.
    """
    w = np.nan_to_num(np.asarray(kernel, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if w.ndim != 4:
        raise ValueError(f"expected a conv kernel (kh, kw, in, out), got shape {w.shape}")
    if w.shape[2] not in (1, 3):
        w = w.mean(axis=2, keepdims=True)
    tiles = np.moveaxis(w, 3, 0)  # (n, kh, kw, c)
    if shared_scale:
        scale = np.abs(tiles).max()
        return tiles / (2 * scale) + 0.5 if scale > 0 else np.full_like(tiles, 0.5)
    low = tiles.min(axis=(1, 2, 3), keepdims=True)
    span = tiles.max(axis=(1, 2, 3), keepdims=True) - low
    return np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1), 0.5)


def grid_shape(n, cols=None):
    """(rows, cols) of the grid ``tile_grid`` lays ``n`` tiles out on.

    By default a full rectangle when ``n`` has a divisor between sqrt(n) and 2 sqrt(n)
    (32 -> 4 x 8, 64 -> 8 x 8), else near-square.
    """
    if not cols:
        root = np.sqrt(max(n, 1))
        full = [c for c in range(int(np.ceil(root)), int(2 * root) + 1) if n % c == 0]
        cols = full[0] if full else int(np.ceil(root))
    return max(1, int(np.ceil(n / cols))), cols


def tile_grid(tiles, cols=None, pad=1, background=1.0):
    """Tiles (n, h, w[, c]) -> one image, row-major, ``pad`` pixels of ``background`` between."""
    tiles = np.asarray(tiles, dtype=np.float64)
    if tiles.ndim == 3:
        tiles = tiles[..., None]
    n, h, w, c = tiles.shape
    rows, cols = grid_shape(n, cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), background, dtype=np.float64)
    for i, tile in enumerate(tiles):
        r, k = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[top : top + h, left : left + w] = tile
    return grid


def _show(ax, image):
    """imshow a [0, 1] image (h, w, 1 or 3) without axes; gray for one channel."""
    image = np.clip(image, 0, 1)
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _grid_size(image, unit=0.035, minimum=3.0):
    return max(minimum, image.shape[1] * unit), max(minimum * 0.5, image.shape[0] * unit)


def plot_filters(kernel, path=None, title="", shared_scale=False):
    """The first layer's filters as a grid of (rows, cols) = ``grid_shape``, one tile per filter."""
    tiles = filter_tiles(kernel, shared_scale)
    grid = tile_grid(tiles, grid_shape(len(tiles))[1])
    w, h = _grid_size(grid, unit=0.09)
    fig, ax = subplots(figsize=(w, h + 0.5))
    _show(ax, grid)
    scale = "shared scale, grey = 0" if shared_scale else "each filter scaled to its own range"
    ax.set_title(f"{title}\n{len(tiles)} filters, {scale}" if title else f"{len(tiles)} filters, {scale}", fontsize=9)
    return _save(fig, path)


def plot_filter_change(snapshots, kernel, name, path, shared_scale=False):
    """filters_change.png: final minus initial (epoch 0) filters, i.e. what training added.

    With the starter's initialisation (truncated normal, stddev 0.1) the random start still
    dominates the filters after a few epochs of Adam at 1e-3; the change shows the learned
    structure. Written only when the epoch-0 snapshot exists.
    """
    if not snapshots or snapshots[0][0] != 0:
        return False
    initial = snapshots[0][1]
    last = snapshots[-1][0]
    plot_filters(kernel - initial, path, shared_scale=shared_scale,
                 title=f"{name}: change since initialisation (epoch 0 -> {last})")
    return True


def plot_filter_evolution(snapshots, path, shared_scale=False, max_rows=12):
    """Filters across training: one row per saved epoch, one column per filter.

    ``snapshots``: list of (epoch, kernel), oldest first; at most ``max_rows`` evenly
    spaced rows are drawn (always the first and the last).
    """
    if not snapshots:
        return
    if len(snapshots) > max_rows:
        keep = np.unique(np.linspace(0, len(snapshots) - 1, max_rows).round().astype(int))
        snapshots = [snapshots[i] for i in keep]
    rows = [filter_tiles(kernel, shared_scale) for _, kernel in snapshots]
    n, h = rows[0].shape[0], rows[0].shape[1]
    grid = tile_grid(np.concatenate(rows), cols=n)
    w, height = _grid_size(grid, unit=0.06)
    fig, ax = subplots(figsize=(w + 0.8, height + 0.5))
    _show(ax, grid)
    ax.set_yticks([1 + i * (h + 1) + h / 2 - 0.5 for i in range(len(snapshots))],
                  [f"epoch {epoch}" for epoch, _ in snapshots], fontsize=7)
    ax.set_title(f"first-layer filters during training ({n} filters; columns are filters)", fontsize=9)
    return _save(fig, path)


def _labelled_mosaic(blocks, labels, path, title, cols=None, unit=0.03):
    """Equal-sized blocks (n, h, w, c) on one grid, each with a small label above it."""
    blocks = np.asarray(blocks)
    rows, cols = grid_shape(len(blocks), cols)
    pad = max(2, blocks.shape[1] // 8)
    grid = tile_grid(blocks, cols, pad=pad)
    w, h = _grid_size(grid, unit=unit)
    fig, ax = subplots(figsize=(w, h + 0.4))
    _show(ax, grid)
    bh, bw = blocks.shape[1:3]
    for i, label in enumerate(labels):
        r, k = divmod(i, cols)
        ax.text(pad + k * (bw + pad), pad + r * (bh + pad) - 0.5, label, fontsize=6, va="bottom", ha="left")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_top_patches(patches, map_ids, path, title=""):
    """Zeiler & Fergus fig. 2 (right half): for each feature map, its top-9 image patches as 3x3.

    ``patches``: (maps, 9, h, w, c) in [0, 1], strongest first.
    """
    blocks = [tile_grid(p, cols=3, background=1.0) for p in patches]
    return _labelled_mosaic(blocks, [f"map {m}" for m in map_ids], path, title or "top-9 test patches per feature map")


def plot_deconv_pairs(projections, patches, map_ids, path, title=""):
    """Zeiler & Fergus fig. 2: each feature map's top-9 deconvnet projections (left) beside the patches.

    ``projections`` and ``patches``: (maps, 9, h, w, c) in [0, 1] (projections: grey = 0).
    """
    blocks = []
    for proj, patch in zip(projections, patches):
        left, right = tile_grid(proj, cols=3), tile_grid(patch, cols=3)
        gap = np.ones((left.shape[0], max(2, left.shape[1] // 10), left.shape[2]))
        blocks.append(np.concatenate([left, gap, right], axis=1))
    return _labelled_mosaic(blocks, [f"map {m}: projections | patches" for m in map_ids], path,
                     title or "deconvnet projections of the strongest activations, and their patches",
                     cols=4 if len(blocks) > 4 else None)


def plot_occlusion(images, occluded, prob_maps, class_maps, labels, class_names, path, title="", base=None):
    """Zeiler & Fergus fig. 7: image, one occluded example, P(true class) map, most probable class map.

    ``images``/``occluded``: (n, h, w, c) in [0, 1]; ``prob_maps``: (n, mh, mw) probabilities of the
    true class with the occluder centred there; ``class_maps``: (n, mh, mw) argmax classes;
    ``base``: the unoccluded probabilities of the true class, shown in the titles.
    """
    n = len(images)
    num = len(class_names)
    cmap_classes = colormap("tab10" if num <= 10 else "tab20", num)
    fig, axes = subplots(n, 4, figsize=(10, 2.4 * n), squeeze=False)
    for i in range(n):
        a_img, a_occ, a_prob, a_cls = axes[i]
        _show(a_img, images[i])
        unoccluded = f"\nP = {base[i]:.2f} unoccluded" if base is not None else ""
        a_img.set_title(f"test image: {class_names[labels[i]]}{unoccluded}", fontsize=8)
        _show(a_occ, occluded[i])
        a_occ.set_title("grey square slid over it", fontsize=8)
        extent = (-0.5, images[i].shape[1] - 0.5, images[i].shape[0] - 0.5, -0.5)
        im = a_prob.imshow(prob_maps[i], cmap="jet", vmin=0, vmax=1, extent=extent, interpolation="nearest")
        a_prob.set_title(f"P({class_names[labels[i]]}) with square here", fontsize=8)
        fig.colorbar(im, ax=a_prob, fraction=0.046, pad=0.04)
        a_cls.imshow(class_maps[i], cmap=cmap_classes, vmin=-0.5, vmax=num - 0.5, extent=extent,
                     interpolation="nearest")
        a_cls.set_title("most probable class", fontsize=8)
        present = np.unique(class_maps[i])
        handles = [matplotlib.patches.Rectangle((0, 0), 1, 1, color=cmap_classes(int(c))) for c in present]
        a_cls.legend(handles, [class_names[int(c)] for c in present], fontsize=6, loc="upper left",
                     bbox_to_anchor=(1.0, 1.0), frameon=False)
        for ax in (a_prob, a_cls):
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def heatmap_rgb(matrix):
    """A matrix -> RGB image (h, w, 3) in [0, 1], diverging colours symmetric about 0 (for TensorBoard)."""
    matrix = np.nan_to_num(np.asarray(matrix, dtype=np.float64))
    scale = np.abs(matrix).max() or 1.0
    return colormap("RdBu_r")((matrix / scale + 1) / 2)[..., :3]


def plot_recurrent_kernels(kernels, path):
    """Heatmaps of recurrent kernels: ``kernels`` maps a layer name to (kernel (units, g*units), gate names)."""
    fig, axes = subplots(len(kernels), 1, figsize=(10, 2.8 * len(kernels)), squeeze=False)
    for ax, (name, (kernel, gates)) in zip(axes[:, 0], kernels.items()):
        scale = float(np.nanmax(np.abs(kernel))) or 1.0
        im = ax.imshow(kernel, cmap="RdBu_r", vmin=-scale, vmax=scale, aspect="auto", interpolation="nearest")
        units = kernel.shape[0]
        for g in range(1, len(gates)):
            ax.axvline(g * units - 0.5, color="black", lw=0.8)
        ax.set_xticks([(g + 0.5) * units for g in range(len(gates))], gates)
        ax.set(ylabel="from hidden unit", title=f"{name} recurrent kernel ({kernel.shape[0]} x {kernel.shape[1]})")
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    return _save(fig, path)


def plot_hidden_states(layers, path):
    """Hidden-state statistics over the time steps, per recurrent layer.

    ``layers`` maps a layer name to a dict with per-step lists ``mean``, ``std``,
    ``mean_abs``, ``saturated_fraction`` and ``unit_means`` (steps, units).
    """
    fig, axes = subplots(len(layers), 2, figsize=(11, 3.2 * len(layers)), squeeze=False)
    for (ax_line, ax_map), (name, s) in zip(axes, layers.items()):
        steps = np.arange(1, len(s["mean"]) + 1)
        mean, std = np.asarray(s["mean"]), np.asarray(s["std"])
        ax_line.plot(steps, mean, label="mean h")
        ax_line.fill_between(steps, mean - std, mean + std, alpha=0.25, label="± std")
        ax_line.plot(steps, s["mean_abs"], label="mean |h|")
        ax_line.plot(steps, s["saturated_fraction"], label="fraction |h| > 0.9")
        ax_line.set(xlabel="time step (image row)", title=f"{name}: hidden state over the steps")
        ax_line.grid(alpha=0.3)
        ax_line.legend(fontsize=7)
        units = np.asarray(s["unit_means"]).T
        scale = float(np.abs(units).max()) or 1.0
        im = ax_map.imshow(units, cmap="RdBu_r", vmin=-scale, vmax=scale, aspect="auto", interpolation="nearest",
                           extent=(0.5, len(steps) + 0.5, units.shape[0] - 0.5, -0.5))
        ax_map.set(xlabel="time step", ylabel="unit", title=f"{name}: mean h per unit and step")
        fig.colorbar(im, ax=ax_map, fraction=0.046, pad=0.04)
    return _save(fig, path)


# --------------------------------------------------------------------------- sweeps and reports


def plot_sweep_overlay(series, path=None, title=""):
    """Train loss (log scale) and test accuracy per epoch of several runs on one figure.

    ``series``: list of (label, history, status), ``history`` as in history.csv. Non-finite
    values are left out; a diverged run ends in an ``x`` at its last finite point. Test
    accuracy falls back to validation accuracy for runs recorded without a test curve.
    """
    fig, (ax_loss, ax_acc) = subplots(1, 2, figsize=(12, 4.6))
    colors = colormap("tab10").colors
    acc_key = "test_accuracy" if any(h.get("test_accuracy") for _, h, _ in series) else "val_accuracy"
    for i, (label, history, status) in enumerate(series):
        style = {"color": colors[i % 10], "linestyle": ("-", "--", ":")[i // 10 % 3]}
        name = label + (f" ({status})" if status not in ("completed", None) else "")
        for ax, key in ((ax_loss, "loss"), (ax_acc, acc_key)):
            values = np.asarray(history.get(key, []), dtype=np.float64)
            if ax is ax_loss:
                values = np.where(values > 0, values, np.nan)  # log scale
            epochs = np.arange(1, len(values) + 1)
            ok = np.isfinite(values)
            if not ok.any():
                continue
            ax.plot(epochs[ok], values[ok], marker="o", markersize=3, label=name, **style)
            if status == "diverged":
                last = np.flatnonzero(ok)[-1]
                ax.plot(epochs[last], values[last], marker="x", markersize=10, color=style["color"])
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy (log scale)", title="train loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=acc_key.replace("_", " "))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.get_major_locator().set_params(integer=True)
    legend = {}
    for ax in (ax_loss, ax_acc):  # every run once, even one with no finite loss or accuracy
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if legend:
        ax_acc.legend(legend.values(), legend.keys(), fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5),
                      frameon=False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


# --------------------------------------------------------------------------- tuning


def plot_search(points, path, marker_by, color_by="optimizer", title=""):
    """The tuner's search.png: best validation accuracy against learning rate, one point per trial.

    ``points`` are dicts with ``lr``, ``val_accuracy`` (None for failed trials) and the
    ``marker_by`` (units or cell) and ``color_by`` values. Failed (diverged) trials are red
    crosses on the bottom edge, so a learning rate that blows up is visible too; the best
    trial is ringed. Written through a temporary file, so the PNG is never half-written.
    """
    import os
    from pathlib import Path

    from matplotlib.patches import Patch

    path = Path(path)
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    marker_values = sorted({p[marker_by] for p in points}, key=lambda v: (isinstance(v, str), v))
    color_values = sorted({p[color_by] for p in points}, key=lambda v: (isinstance(v, str), v))
    colors = colormap("tab10")
    fig, ax = subplots(figsize=(7.5, 4.8))
    done = [p for p in points if p["val_accuracy"] is not None]
    for p in done:
        ax.scatter(p["lr"], p["val_accuracy"], s=60, alpha=0.85, edgecolors="black", linewidths=0.5,
                   marker=markers[marker_values.index(p[marker_by]) % len(markers)],
                   color=colors(color_values.index(p[color_by]) % 10))
    low = min([p["val_accuracy"] for p in done] or [0.0])
    floor = max(0.0, low - 0.05)
    failed = [p for p in points if p["val_accuracy"] is None]
    if failed:
        ax.scatter([p["lr"] for p in failed], [floor] * len(failed), marker="x", s=70, color="red",
                   label=f"failed / diverged ({len(failed)})", clip_on=False, zorder=3)
    if done:
        best = max(done, key=lambda p: p["val_accuracy"])
        ax.scatter(best["lr"], best["val_accuracy"], s=260, facecolors="none", edgecolors="red", linewidths=1.5,
                   label=f"best: trial {best['trial_id']} ({best['val_accuracy']:.3f})")
    for i, value in enumerate(marker_values):  # legend: shapes in grey, colours as patches
        ax.scatter([], [], marker=markers[i % len(markers)], color="grey", label=f"{marker_by} {value}")
    handles, labels = ax.get_legend_handles_labels()
    for i, value in enumerate(color_values):
        handles.append(Patch(color=colors(i % 10)))
        labels.append(f"{color_by} {value}")
    ax.set_xscale("log")
    # Ticks at 1, 2, 5 x 10^k labelled plainly: less than a decade of lr would otherwise get
    # crowded minor labels that overlap.
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.0e}".replace("e-0", "e-")))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(bottom=floor)
    ax.set(xlabel="learning rate (log scale)", ylabel="best validation accuracy", title=title or "search")
    ax.grid(alpha=0.3, which="both")
    ax.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        _save(fig, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return fig
