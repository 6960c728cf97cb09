"""Attribution: which pixels (or, for the recurrent classifiers, which rows) a decision rests on, and
how faithful each answer is (CLI: ``python -m tf_assign2.visualize RUN --methods ...``).

Every method takes a Keras model with **logits** out, float images ``(n, H, W, C)`` in [0, 1] and
the target classes ``(n,)``, and returns one map ``(n, H, W)`` per image: larger = more evidence
for the target class. Gradients are those of the target class **logit** (the pre-softmax score;
the softmax saturates, and Grad-CAM is defined on it).

* ``saliency``: ``max_c |d logit / d x|`` (Simonyan et al. 2014).
* ``smoothgrad``: the gradient averaged over ``samples`` copies of the image with Gaussian noise
  (std ``noise`` times the [0, 1] range), then its magnitude (Smilkov et al. 2017).
* ``integrated_gradients``: ``(x - x') * mean of d logit / d x`` along the straight path from the
  baseline ``x'`` (black by default) to ``x`` (Sundararajan et al. 2017), signed. Its completeness
  axiom, ``sum of attributions = logit(x) - logit(x')`` of the target class, is checked per image;
  the path integral is a trapezoid rule refined (steps doubled) until that holds to ``tolerance``.
* ``grad_cam``: ``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of ``d logit / d A_k``
  for the feature maps ``A_k`` of a conv layer (conv2, conv1), resized bilinearly to the image
  (Selvaraju et al. 2017); not defined for the recurrent models (no conv layer).
* ``occlusion``: ``P(c | x) - P(c | x with a square of the baseline value centred on the pixel)``,
  from ``zeiler_fergus.occlusion_maps`` (Zeiler & Fergus fig. 7, there with a grey square), signed.

For the recurrent classifiers (images read as 28 rows by the ``rows`` Reshape layer)
``row_scores`` turns a pixel map into one score per row: the sum of ``|map|`` over the row.

Faithfulness (``faithfulness``): deletion and insertion curves (Petsiuk et al. 2018, RISE). The
most important pixels (rows) first, a growing fraction of the image is replaced by a fill value
(deletion; the baseline value, black by default) or copied onto an image of that value (insertion); the curve is the
probability of the target class, and its area (fraction 0..1) is the score. A faithful map makes
the deletion curve fall fast (low AUC) and the insertion curve rise fast (high AUC). A random
order is scored beside the methods as the chance level.
"""

import weakref
from pathlib import Path

import numpy as np

from tf_assign2 import models
from tf_assign2.errors import UsageError

METHODS = ("saliency", "smoothgrad", "ig", "gradcam", "occlusion")
LABELS = {"saliency": "saliency", "smoothgrad": "SmoothGrad", "ig": "Integrated Gradients",
          "occlusion": "occlusion", "random": "random order"}
SIGNED = {"ig", "occlusion"}  # maps with both signs; the others are >= 0


def label(method):
    if method.startswith("gradcam_"):
        return f"Grad-CAM {method[len('gradcam_'):]}"
    return LABELS.get(method, method)


# --------------------------------------------------------------------------- the model


def float32_model(model):
    """The model computing in float32 (cuDNN-free), same weights: ``training.export.float32_model``.

    A run trained under a bfloat16 policy computes in 16 bits: gradients there are too coarse for
    Integrated Gradients' completeness to hold to 1 %.
    """
    from tf_assign2.training.export import float32_model as twin

    return twin(model)


def conv_layers(model):
    """Names of the Conv2D layers, last first (Grad-CAM's usual layer is the last one)."""
    import keras

    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][::-1]


def probabilities(model, images, batch_size=1024):
    """Softmax of the logits, batch by batch, float32 numpy."""
    import tensorflow as tf

    out = [tf.nn.softmax(tf.cast(model(images[s : s + batch_size], training=False), tf.float32)).numpy()
           for s in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output.shape[-1]), np.float32)


_GRADIENT_FNS = weakref.WeakKeyDictionary()


def _gradient_fn(model):
    """A compiled ``(images, targets) -> (d logit_target / d images, logit_target)``, one per model."""
    import tensorflow as tf

    fn = _GRADIENT_FNS.get(model)
    if fn is None:
        ref = weakref.ref(model)  # a strong reference in the value would keep the key alive for ever

        @tf.function(reduce_retracing=True)
        def fn(images, targets):
            with tf.GradientTape() as tape:
                tape.watch(images)
                logits = tf.cast(ref()(images, training=False), tf.float32)
                score = tf.gather(logits, targets, batch_dims=1)
            return tape.gradient(score, images), score

        _GRADIENT_FNS[model] = fn
    return fn


def gradients(model, images, targets, batch_size=512):
    """``d logit_target / d x`` (n, H, W, C) and the target logits (n,), float32 numpy."""
    import tensorflow as tf

    images = np.asarray(images, np.float32)
    targets = np.asarray(targets, np.int32)
    fn, grads, scores = _gradient_fn(model), [], []
    for s in range(0, len(images), batch_size):
        g, score = fn(tf.constant(images[s : s + batch_size]), tf.constant(targets[s : s + batch_size]))
        grads.append(g.numpy())
        scores.append(score.numpy())
    if not grads:
        return np.zeros_like(images), np.zeros((0,), np.float32)
    return np.concatenate(grads), np.concatenate(scores)


# --------------------------------------------------------------------------- the methods


def saliency(model, images, targets):
    """Vanilla gradient: ``max over channels of |d logit / d x|``, (n, H, W)."""
    grads, _ = gradients(model, images, targets)
    return np.abs(grads).max(axis=-1)


def smoothgrad(model, images, targets, samples=25, noise=0.15, seed=0):
    """SmoothGrad: ``|mean over noisy copies of d logit / d x|``, max over channels, (n, H, W).

    ``noise`` is the noise standard deviation as a fraction of the pixel range (1 for [0, 1]).
    """
    images = np.asarray(images, np.float32)
    rng = np.random.default_rng(seed)
    total = np.zeros_like(images)
    for _ in range(samples):
        noisy = images + rng.normal(0.0, noise, images.shape).astype(np.float32)
        total += gradients(model, noisy, targets)[0]
    return np.abs(total / samples).max(axis=-1)


def integrated_gradients(model, images, targets, baseline=0.0, steps=32, tolerance=0.01, max_steps=1024,
                         batch_size=512):
    """Integrated Gradients of the target logit from ``baseline`` (a value or an image) to each image.

    The path integral is the trapezoid rule on ``steps`` intervals; an image whose attributions
    miss completeness by more than ``tolerance`` (relative to ``logit(x) - logit(baseline)``) gets
    its intervals halved (the old points reused) until it holds or ``max_steps`` is reached
    (``tolerance=None``: exactly ``steps``). Returns (attributions (n, H, W, C), completeness):
    completeness holds per image ``sum`` (of the attributions), ``difference``
    (``logit(x) - logit(baseline)``), ``relative_error`` (``|sum - difference| / |difference|``)
    and ``steps`` (intervals used).
    """
    images = np.asarray(images, np.float32)
    targets = np.asarray(targets, np.int32)
    base = np.broadcast_to(np.asarray(baseline, np.float32), images.shape[1:]).astype(np.float32)
    delta = images - base
    n = len(images)

    def grads_at(which, alphas):
        """Sum over alphas of the gradients at base + alpha * delta, for images ``which`` (k,) and
        alphas (a,); and the target logits there (k, a)."""
        a, group = len(alphas), max(1, 8192 // len(alphas))
        sums, scores = [], []
        for s in range(0, len(which), group):
            part = which[s : s + group]
            points = base + alphas.reshape(1, a, *(1,) * (delta.ndim - 1)) * delta[part, None]
            g, score = gradients(model, points.reshape(-1, *images.shape[1:]), np.repeat(targets[part], a), batch_size)
            sums.append(g.reshape(len(part), a, *images.shape[1:]).sum(axis=1))
            scores.append(score.reshape(len(part), a))
        return np.concatenate(sums), np.concatenate(scores)

    everyone = np.arange(n)
    ends, end_scores = grads_at(everyone, np.array([0.0, 1.0], np.float32))
    f_base, f_x = end_scores[:, 0], end_scores[:, 1]
    difference = f_x - f_base
    total = ends / 2  # the trapezoid rule's weighted sum of gradients (ends weigh 1/2), per image
    m = np.ones(n, np.int64)  # intervals so far

    def attributions():
        return delta * (total / m.reshape(-1, *(1,) * (delta.ndim - 1)))

    def errors(attr):
        sums = attr.reshape(n, -1).sum(axis=1, dtype=np.float64)
        return sums, np.abs(sums - difference) / np.maximum(np.abs(difference), 1e-6)

    # Start at ``steps`` intervals: the interior points j/steps.
    interior = np.arange(1, steps, dtype=np.float32) / steps
    if len(interior):
        total = total + grads_at(everyone, interior)[0]
    m[:] = steps
    sums, rel = errors(attributions())
    while tolerance is not None:
        todo = np.flatnonzero((rel > tolerance) & (m * 2 <= max_steps))
        if not len(todo):
            break
        for size in np.unique(m[todo]):  # images at the same refinement level share the new points
            which = todo[m[todo] == size]
            mid = (np.arange(size, dtype=np.float32) + 0.5) / size
            total[which] = total[which] + grads_at(which, mid)[0]
            m[which] = size * 2
        sums, rel = errors(attributions())
    return attributions(), {"sum": sums, "difference": difference.astype(np.float64), "relative_error": rel,
                            "steps": m.copy(), "logit": f_x, "baseline_logit": f_base}


def grad_cam(model, images, targets, layer="conv2"):
    """Grad-CAM on conv layer ``layer``: ``ReLU(sum_k alpha_k A_k)`` resized to the image, (n, H, W) >= 0."""
    import keras
    import tensorflow as tf

    convs = conv_layers(model)
    if layer not in convs:
        raise UsageError(f"Grad-CAM layer {layer}: not a conv layer of this model "
                         f"(conv layers: {', '.join(convs) or 'none'})")
    images = np.asarray(images, np.float32)
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, model.outputs[0]])
    out = []
    for s in range(0, len(images), 512):
        x = tf.constant(images[s : s + 512])
        with tf.GradientTape() as tape:
            maps, logits = probe(x, training=False)
            maps = tf.cast(maps, tf.float32)
            score = tf.gather(tf.cast(logits, tf.float32), targets[s : s + 512], batch_dims=1)
        weights = tf.reduce_mean(tape.gradient(score, maps), axis=(1, 2), keepdims=True)  # alpha_k
        cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1, keepdims=True))
        out.append(tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0].numpy())
    return np.maximum(np.concatenate(out), 0.0) if out else np.zeros(images.shape[:3], np.float32)


def occlusion(model, images, targets, size=7, stride=1, value=0.5):
    """Occlusion sensitivity (``zeiler_fergus.occlusion_maps``): the drop of P(target) when a
    ``size`` square of ``value`` is centred on each pixel, (n, H, W) (signed; ``stride`` > 1 is
    spread over the pixels it stands for)."""
    from tf_assign2.analysis.zeiler_fergus import occlusion_maps

    images = np.asarray(images, np.float32)
    base = probabilities(model, images)[np.arange(len(images)), targets]

    def predict(batch):
        return probabilities(model, batch)

    h, w = images.shape[1:3]
    out = []
    for image, target, p in zip(images, targets, base):
        prob_map, _ = occlusion_maps(predict, image, int(target), size, stride, value)
        full = np.repeat(np.repeat(prob_map, stride, axis=0), stride, axis=1)[:h, :w]
        out.append(p - full)
    return np.array(out, np.float32).reshape(images.shape[:3])


def row_scores(maps):
    """A pixel map (n, H, W) -> one score per image row (n, H): the sum of ``|map|`` over the row."""
    return np.abs(np.asarray(maps)).sum(axis=2)


def attribute(model, images, targets, method, baseline=0.0, ig_tolerance=0.01, occluder=7, stride=1, seed=0):
    """One method's pixel maps (n, H, W); ``gradcam_<layer>`` names Grad-CAM on that layer.
    ``baseline``: Integrated Gradients' baseline and the occlusion square's value.

    For ``ig`` also returns its completeness record: (maps, completeness or None).
    """
    if method == "saliency":
        return saliency(model, images, targets), None
    if method == "smoothgrad":
        return smoothgrad(model, images, targets, seed=seed), None
    if method == "ig":
        attr, completeness = integrated_gradients(model, images, targets, baseline, tolerance=ig_tolerance)
        return attr.sum(axis=-1), completeness
    if method.startswith("gradcam_"):
        return grad_cam(model, images, targets, method[len("gradcam_"):]), None
    if method == "occlusion":
        return occlusion(model, images, targets, occluder, stride, baseline), None
    if method == "random":
        return np.random.default_rng(seed).random(np.shape(images)[:3]).astype(np.float32), None
    raise UsageError(f"--methods {method}: unknown method; choose from {', '.join(METHODS)}")


def resolve_methods(text, model, gradcam_layers=None):
    """``--methods`` text -> method names for this model (Grad-CAM expanded to ``gradcam_<layer>``).

    ``all``: every method that applies (Grad-CAM on every conv layer, last first); ``none``: [].
    An explicit ``gradcam`` on a model without conv layers is an error. With ``model=None`` only the
    names are checked (before TensorFlow starts).
    """
    words = [w.strip().lower() for w in str(text).split(",") if w.strip()]
    if words == ["none"]:
        return []
    if words == ["all"]:
        words = list(METHODS)
    bad = [w for w in words if w not in METHODS]
    if bad or not words:
        raise UsageError(f"--methods {text}: choose from {', '.join(METHODS)} (comma-separated), all or none")
    if model is None:
        return list(dict.fromkeys(words))
    convs = conv_layers(model)
    layers = list(gradcam_layers) if gradcam_layers else convs
    for name in layers:
        if name not in convs:
            raise UsageError(f"--gradcam-layers {name}: not a conv layer of this model "
                             f"(conv layers: {', '.join(convs) or 'none'})")
    methods = []
    for w in dict.fromkeys(words):
        if w != "gradcam":
            methods.append(w)
        elif not convs:
            if text.strip().lower() != "all":
                raise UsageError("--methods gradcam: Grad-CAM needs a conv layer; this model has none")
        else:
            methods += [f"gradcam_{name}" for name in layers]
    return methods


# --------------------------------------------------------------------------- faithfulness


def _trapezoid(y, x):
    integrate = getattr(np, "trapezoid", None) or np.trapz
    return integrate(y, x, axis=-1)


def perturbation_curves(model, images, targets, importance, fill=0.0, steps=28, seed=0, batch_size=1024):
    """Deletion and insertion curves of P(target).

    ``importance``: pixel maps (n, H, W) or row scores (n, H) (then whole rows are the units).
    At step k of ``steps`` the ``round(k * units / steps)`` most important units are set to
    ``fill`` (a value or an image; deletion) or are the only ones taken from the image, the rest
    being ``fill`` (insertion); ties are broken in a random order (``seed``).
    Returns (fractions (steps + 1,), deletion (n, steps + 1), insertion (n, steps + 1)).
    """
    images = np.asarray(images, np.float32)
    n, h, w = images.shape[:3]
    importance = np.asarray(importance, np.float64).reshape(n, -1)
    units = importance.shape[1]
    if units not in (h, h * w):
        raise ValueError(f"importance has {units} values per image; expected {h * w} pixels or {h} rows")
    rng = np.random.default_rng(seed)
    ranks = np.empty((n, units), np.int64)
    for i in range(n):
        order = np.lexsort((rng.random(units), -importance[i]))  # most important first, ties at random
        ranks[i, order] = np.arange(units)
    counts = np.round(np.arange(steps + 1) * units / steps).astype(np.int64)
    fractions = counts / units
    base = np.broadcast_to(np.asarray(fill, np.float32), images.shape[1:])
    deletion, insertion = np.empty((n, steps + 1)), np.empty((n, steps + 1))
    per_image = steps + 1
    chunk = max(1, batch_size // per_image)
    for s in range(0, n, chunk):
        x, r, t = images[s : s + chunk], ranks[s : s + chunk], np.asarray(targets)[s : s + chunk]
        taken = r[:, None, :] < counts[None, :, None]  # (k, steps+1, units): these units are the important ones
        taken = taken.reshape(*taken.shape[:2], h, -1)  # (k, steps+1, h, w or 1)
        taken = np.broadcast_to(taken[..., None], (*taken.shape[:2], h, w, images.shape[-1]))
        deleted = np.where(taken, base, x[:, None])
        inserted = np.where(taken, x[:, None], base)
        for out, batch in ((deletion, deleted), (insertion, inserted)):
            probs = probabilities(model, batch.reshape(-1, *images.shape[1:]).astype(np.float32), batch_size)
            out[s : s + chunk] = probs.reshape(len(x), per_image, -1)[np.arange(len(x)), :, t]
    return fractions, deletion, insertion


def faithfulness(curves):
    """Scores from {method: (fractions, deletion, insertion)}: per method the mean (and standard
    error) deletion and insertion AUC, and on how many images it was the best of the methods
    (``random`` is scored but does not compete). Returns (per-method dict, verdict dict)."""
    aucs = {m: (_trapezoid(d, f), _trapezoid(i, f)) for m, (f, d, i) in curves.items()}
    competing = [m for m in aucs if m != "random"]
    table = {}
    for m, (d, i) in aucs.items():
        n = len(d)
        table[m] = {"deletion_auc": float(d.mean()), "deletion_auc_sem": float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
                    "insertion_auc": float(i.mean()), "insertion_auc_sem": float(i.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
                    "reference": m == "random"}
    verdict = {}
    if competing:
        deletion = np.stack([aucs[m][0] for m in competing])  # (methods, n)
        insertion = np.stack([aucs[m][1] for m in competing])
        best_del, best_ins = deletion.argmin(axis=0), insertion.argmax(axis=0)
        for j, m in enumerate(competing):
            table[m]["deletion_wins"] = int((best_del == j).sum())
            table[m]["insertion_wins"] = int((best_ins == j).sum())
            table[m]["beats_random"] = ({"deletion": float((aucs[m][0] < aucs["random"][0]).mean()),
                                         "insertion": float((aucs[m][1] > aucs["random"][1]).mean())}
                                        if "random" in aucs else None)
        wins = {m: table[m]["deletion_wins"] + table[m]["insertion_wins"] for m in competing}
        verdict = {
            "best_deletion": min(competing, key=lambda m: table[m]["deletion_auc"]),
            "best_insertion": max(competing, key=lambda m: table[m]["insertion_auc"]),
            "most_often_best": max(competing, key=lambda m: wins[m]),
            "wins": wins,
            "n_images": int(deletion.shape[1]),
        }
    return table, verdict


def completeness_summary(record, tolerance=0.01):
    """Integrated Gradients' completeness over the images: relative error statistics and steps used."""
    rel, steps = np.asarray(record["relative_error"]), np.asarray(record["steps"])
    return {
        "checked": "sum of attributions vs logit(x) - logit(baseline) of the target class",
        "relative_error": {"mean": float(rel.mean()), "median": float(np.median(rel)), "max": float(rel.max()),
                           "under_1_percent": float((rel < 0.01).mean())},
        "abs_error_max": float(np.abs(np.asarray(record["sum"]) - record["difference"]).max()),
        "difference_mean": float(np.mean(record["difference"])),
        "steps": {"min": int(steps.min()), "median": float(np.median(steps)), "max": int(steps.max())},
        "tolerance": tolerance,
    }


# --------------------------------------------------------------------------- the whole report


def write_report(model, test_x, test_y, class_names, out, methods, figure_images=None, figure_count=6,
                 score_count=100, baseline=0.0, steps=28, occluder=7, stride=1, ig_tolerance=0.01, seed=0):
    """Every method's maps on test images, their deletion/insertion scores and IG's completeness.

    Writes into ``out``: ``attribution.png`` (image, each method's map, true and predicted class),
    ``attribution_curves.png`` (mean deletion/insertion curves) and ``attribution_scores.json``.
    The explained class is the predicted one. ``baseline`` is the value that stands for a missing
    pixel everywhere: Integrated Gradients' baseline image, the occlusion square, and removed pixels
    (rows) in the deletion/insertion curves, so the methods that perturb are scored on their own
    perturbation (``docs/visualisation.md`` shows what changes with it). Scores use ``score_count`` test images spread over
    the split (the test sets are sorted by class); the figure shows ``figure_images`` (indices) or
    ``figure_count`` images spread likewise. Returns ({file: what it is}, settings for visualize.json).
    """
    import time

    from tf_assign2 import runs
    from tf_assign2.analysis.training_visuals import as_float_images, spread_indices
    from tf_assign2.figures import attribution as plots

    model = float32_model(model)
    recurrent = bool(models.recurrent_layers(model))
    unit = "rows" if recurrent else "pixels"
    scored = spread_indices(len(test_x), score_count)
    shown = np.asarray(figure_images if figure_images else spread_indices(len(test_x), figure_count), np.int64)
    union = np.unique(np.concatenate([scored, shown]))
    x = as_float_images(test_x[union])
    probs = probabilities(model, x)
    predicted = probs.argmax(axis=1)
    where = {int(i): k for k, i in enumerate(union)}
    score_rows, shown_rows = [where[int(i)] for i in scored], [where[int(i)] for i in shown]

    maps, curves, seconds, completeness = {}, {}, {}, None
    for method in [*methods, "random"]:
        started = time.perf_counter()
        maps[method], record = attribute(model, x, predicted, method, baseline, ig_tolerance, occluder, stride, seed)
        seconds[method] = round(time.perf_counter() - started, 2)
        if record is not None:
            completeness = completeness_summary({k: np.asarray(v)[score_rows] for k, v in record.items()},
                                                ig_tolerance)
        importance = row_scores(maps[method]) if recurrent else maps[method]
        curves[method] = perturbation_curves(model, x[score_rows], predicted[score_rows], importance[score_rows],
                                             baseline, steps, seed)
    table, verdict = faithfulness(curves)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = {m: label(m) for m in maps}
    plots.plot_attribution_grid(
        x[shown_rows], {m: maps[m][shown_rows] for m in methods}, methods, labels, test_y[shown],
        predicted[shown_rows], probs[shown_rows, predicted[shown_rows]], class_names, out / "attribution.png",
        signed=SIGNED, rows={m: row_scores(maps[m][shown_rows]) for m in methods} if recurrent else None,
        title="attribution of the predicted class" + (" (bar: sum of |map| per row)" if recurrent else "")
              + ("; blue-red: signed, 0 white" if SIGNED & set(methods) else ""),
    )
    plots.plot_perturbation_curves(curves, labels, out / "attribution_curves.png", unit,
                                   title=f"faithfulness on {len(scored)} test images, removed {unit} set to {baseline:g}")
    scores = {
        "explained": "the predicted class",
        "gradients_of": "the target class logit",
        "unit": "row" if recurrent else "pixel",
        "steps": steps,
        "baseline": baseline,
        "images": [int(i) for i in scored],
        "n_images": len(scored),
        "accuracy_on_these_images": float((predicted[score_rows] == test_y[scored]).mean()),
        "methods": table,
        "verdict": verdict,
        "integrated_gradients_completeness": completeness,
        "seconds": seconds,
        "settings": {"occluder": occluder, "stride": stride, "smoothgrad": {"samples": 25, "noise": 0.15},
                     "ig_tolerance": ig_tolerance, "seed": seed},
    }
    runs.write_json(out / "attribution_scores.json", scores)
    for line in score_lines(scores):
        print(line)
    written = {"attribution.png": "attribution maps: image, each method, true and predicted class",
               "attribution_curves.png": f"deletion and insertion curves of each method ({unit})",
               "attribution_scores.json": "deletion/insertion AUC per method, IG completeness"}
    return written, {"attribution": {"methods": list(methods), "figure_images": [int(i) for i in shown],
                                     "score_images": len(scored)}}


def score_lines(scores):
    """The scores as printed: one line per method, then the verdict and IG's completeness."""
    lines = [f"faithfulness on {scores['n_images']} test images ({scores['unit']}s, removed = {scores['baseline']:g}): "
             "deletion AUC (lower better), insertion AUC (higher better), images where best"]
    for method, s in scores["methods"].items():
        wins = "" if s["reference"] else f"  wins {s['deletion_wins']}/{s['insertion_wins']}"
        lines.append(f"  {label(method):<22} deletion {s['deletion_auc']:.4f}  insertion {s['insertion_auc']:.4f}{wins}")
    verdict = scores["verdict"]
    if verdict:
        lines.append(f"  best: deletion {label(verdict['best_deletion'])}, insertion {label(verdict['best_insertion'])}, "
                     f"most often best {label(verdict['most_often_best'])}")
    c = scores["integrated_gradients_completeness"]
    if c:
        r = c["relative_error"]
        lines.append(f"  IG completeness (sum vs logit(x) - logit(baseline)): relative error mean {r['mean']:.2e}, "
                     f"max {r['max']:.2e}, {r['under_1_percent']:.0%} under 1 %; steps {c['steps']['min']}-{c['steps']['max']}")
    return lines
