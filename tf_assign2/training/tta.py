"""Test-time augmentation: the views of the test images whose class probabilities a run's final test
figures (``Trainer``) and ``evaluate`` average (``--tta``), and the metrics of those probabilities."""

import numpy as np

from tf_assign2.config import TTA


def probability_metrics(probs, labels):
    """(mean cross-entropy, accuracy) of class probabilities, in float64 (probabilities clipped at 1e-12)."""
    labels = np.asarray(labels)
    picked = np.asarray(probs)[np.arange(len(labels)), labels].astype(np.float64)
    loss = float(-np.log(np.clip(picked, 1e-12, None)).mean())
    return loss, float((np.asarray(probs).argmax(axis=1) == labels).mean())


def tta_views(images, tta):
    """The (weight, images) views that test-time augmentation ``tta`` averages, plain images first.

    ``none``: the images. ``flip``: the images and their left-right mirror, 1/2 each.
    ``flip-shift`` (airbench's): those two at 1/4 each, and each of them moved by one pixel
    diagonally down-right and up-left (the edge filled by reflection), 1/8 each: six views.
    Works on whole batches of (N, H, W, C) images and of RNN rows (N, 28, 28) alike: the width is
    axis 2 in both. Flips and shifts move pixels only, so uint8 images stay exact.
    """
    if tta not in TTA:
        raise ValueError(f"tta must be one of {TTA}, got {tta!r}")
    images = np.asarray(images)
    if tta == "none":
        return [(1.0, images)]
    mirrored = images[:, :, ::-1]
    if tta == "flip":
        return [(0.5, images), (0.5, mirrored)]
    views = [(0.25, images), (0.25, mirrored)]
    for view in (images, mirrored):
        views += [(0.125, moved) for moved in one_pixel_shifts(view)]
    return views


def one_pixel_shifts(images):
    """The images moved one pixel down-right and one pixel up-left, the uncovered edge filled by
    reflection (airbench's translate views: crops of the reflect-padded image at (0, 0) and (2, 2))."""
    pad = [(0, 0), (1, 1), (1, 1)] + [(0, 0)] * (images.ndim - 3)
    padded = np.pad(images, pad, mode="reflect")
    height, width = images.shape[1:3]
    return [padded[:, :height, :width], padded[:, 2:height + 2, 2:width + 2]]


def view_probabilities(predict, images, tta):
    """[(weight, class probabilities)] of ``predict`` (images -> probabilities) on each view of ``tta``."""
    return [(weight, np.asarray(predict(view), np.float64)) for weight, view in tta_views(images, tta)]


def average(views):
    """The weighted mean of the views' probabilities (the weights sum to 1)."""
    return sum(weight * probs for weight, probs in views)
