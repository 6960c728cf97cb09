"""Zeiler & Fergus tools for a finished run (CLI: ``cli.visualize``): what the feature maps respond to, and where the model looks.

    python -m tf_assign2.visualize runs/<run>                  # writes runs/<run>/visualize-<timestamp>/
    python -m tf_assign2.visualize runs/<run> --layer conv1 --maps 32 --images 0 100 200

Works from the run's ``model.keras`` and the test split named in its ``config.json``
(data flags override it, as for ``evaluate``). Writes, for a CNN:

* ``top9_<layer>.png``: for every feature map of ``--layer`` (conv2), the 9 test image
  patches that activate it most (its receptive field around the strongest position), fig. 2 style;
* ``deconv_<layer>.png``: for the ``--maps`` strongest maps, the deconvnet projection of each
  of those 9 activations back to pixel space, beside the patches. A deconvnet runs the network
  backwards: one activation is kept, all others zeroed, then at each layer down it is unpooled
  with the max-pool switches recorded on the way up, rectified (ReLU) and filtered with the
  transposed filters of the conv layer;
* ``occlusion.png``: a grey square slid over test images, the probability of the correct
  class and the most probable class with the square at each place (fig. 7);
* ``activation_stats.json``, ``filters.png``, ``filters_evolution.png`` and ``filters_change.png``
  regenerated (the last two from the run's ``filters/history.npz``);

for an RNN, occlusion and ``hidden_state_stats.json``, ``hidden_states.png``, ``recurrent_kernel.png``.
``visualize.json`` lists what was written and with which settings.
"""

from pathlib import Path

import numpy as np

from tf_assign2.errors import UsageError

# --------------------------------------------------------------------------- the conv chain


def conv_chain(model, layer_name):
    """The layers from the input up to ``layer_name``, which must all be Conv2D or pooling layers."""
    import keras

    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        raise UsageError(f"--layer {layer_name}: no such layer; conv layers: {', '.join(convs) or 'none'}")
    chain = []
    for layer in model.layers[1 : names.index(layer_name) + 1]:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D)):
            raise UsageError(f"--layer {layer_name}: the deconvnet needs only conv and max-pool layers below it, "
                             f"found {layer.name} ({type(layer).__name__})")
        chain.append(layer)
    if not chain or not isinstance(chain[-1], keras.layers.Conv2D):
        raise UsageError(f"--layer {layer_name}: expected a conv layer")
    return chain


def forward(chain, images):
    """Run ``images`` up the chain; returns (each layer's input, the last layer's output)."""
    inputs, x = [], images
    for layer in chain:
        inputs.append(x)
        x = layer(x, training=False)
    return inputs, x


def unpool(signal, pool_input, layer):
    """Max-unpooling with switches: each pooled value goes back to where its maximum was.

    The switches (argmax positions) are recorded from the pooling layer's input on the way up.
    """
    import tensorflow as tf

    pool_input = tf.cast(pool_input, tf.float32)
    _, switches = tf.nn.max_pool_with_argmax(
        pool_input, ksize=layer.pool_size, strides=layer.strides, padding=layer.padding.upper(),
        include_batch_in_index=True,
    )
    size = int(np.prod(pool_input.shape))
    flat = tf.scatter_nd(tf.reshape(switches, [-1, 1]), tf.reshape(tf.cast(signal, tf.float32), [-1]), [size])
    return tf.reshape(flat, tf.shape(pool_input))


def transposed_conv(signal, layer, input_shape):
    """The conv layer's filters applied transposed (flipped, channels swapped): conv2d_transpose."""
    import tensorflow as tf

    return tf.nn.conv2d_transpose(
        tf.cast(signal, tf.float32), tf.cast(layer.kernel, tf.float32), output_shape=input_shape,
        strides=(1, *layer.strides, 1), padding=layer.padding.upper(), dilations=(1, *layer.dilation_rate, 1),
    )


def project_down(chain, inputs, signal):
    """Deconvnet: a signal at the top of ``chain`` -> pixel space (Zeiler & Fergus sec. 2.1).

    Going down, a conv layer's ReLU is applied to the signal (rectification), then its
    transposed filters; a max-pool layer is undone by unpooling with its switches.
    """
    import keras
    import tensorflow as tf

    for layer, layer_input in zip(reversed(chain), reversed(inputs)):
        if isinstance(layer, keras.layers.Conv2D):
            if keras.activations.serialize(layer.activation) == "relu":
                signal = tf.nn.relu(signal)
            signal = transposed_conv(signal, layer, tf.shape(layer_input))
        else:
            signal = unpool(signal, layer_input, layer)
    return signal.numpy()


def receptive_field(chain, image_size):
    """(size, jump, start) per axis: unit i of the top layer sees pixels [start + i*jump, ... + size)."""
    fields = []
    for axis in (0, 1):
        n, size, jump, start = image_size[axis], 1, 1, 0
        for layer in chain:
            if hasattr(layer, "kernel_size"):
                k = (layer.kernel_size[axis] - 1) * layer.dilation_rate[axis] + 1
            else:
                k = layer.pool_size[axis]
            s = layer.strides[axis]
            out = -(-n // s) if layer.padding == "same" else (n - k) // s + 1
            pad = max((out - 1) * s + k - n, 0) // 2 if layer.padding == "same" else 0
            start -= pad * jump
            size += (k - 1) * jump
            jump *= s
            n = out
        fields.append((size, jump, start))
    return fields


def patch(image, position, fields):
    """The receptive-field patch of ``image`` (h, w, c) around a top-layer position; outside is 0 (the padding)."""
    (size_r, jump_r, start_r), (size_c, jump_c, start_c) = fields
    top, left = start_r + position[0] * jump_r, start_c + position[1] * jump_c
    out = np.zeros((size_r, size_c, image.shape[-1]), dtype=np.float32)
    r0, r1 = max(top, 0), min(top + size_r, image.shape[0])
    c0, c1 = max(left, 0), min(left + size_c, image.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - top : r1 - top, c0 - left : c1 - left] = image[r0:r1, c0:c1]
    return out


# --------------------------------------------------------------------------- Zeiler & Fergus fig. 2


def strongest_activations(chain, images, k=9, batch_size=256):
    """For each feature map: the ``k`` test images activating it most, and where.

    Returns (values (maps, k), image indices (maps, k), positions (maps, k, 2)), strongest
    first; each image counts once per map, at its strongest position (as in the paper).
    """
    from tf_assign2.analysis.training_visuals import batches

    best, where = [], []
    for batch in batches(images, batch_size):
        _, acts = forward(chain, batch)
        acts = np.asarray(acts, dtype=np.float32)
        n, h, w, f = acts.shape
        flat = acts.reshape(n, h * w, f)
        arg = flat.argmax(axis=1)  # (n, maps)
        best.append(np.take_along_axis(flat, arg[:, None, :], axis=1)[:, 0])
        where.append(arg)
    best, where = np.concatenate(best), np.concatenate(where)
    k = min(k, len(best))
    order = np.argsort(-best, axis=0, kind="stable")[:k].T  # (maps, k)
    values = np.take_along_axis(best.T, order, axis=1)
    flat_pos = np.take_along_axis(where.T, order, axis=1)
    positions = np.stack(np.unravel_index(flat_pos, (h, w)), axis=-1)
    return values, order, positions


def deconv_projections(chain, images, maps, indices, positions, batch_size=128):
    """Pixel-space projections of single activations: one per (map, image, position).

    ``maps`` (m,), ``indices`` (m, k) image indices, ``positions`` (m, k, 2); returns (m, k, H, W, C).
    """
    import tensorflow as tf

    from tf_assign2.analysis.training_visuals import as_float_images

    jobs = [(f, i, tuple(p)) for f, row_i, row_p in zip(maps, indices, positions) for i, p in zip(row_i, row_p)]
    out = []
    for start in range(0, len(jobs), batch_size):
        part = jobs[start : start + batch_size]
        batch = as_float_images(images[[i for _, i, _ in part]])
        inputs, acts = forward(chain, batch)
        acts = np.asarray(acts, dtype=np.float32)
        signal = np.zeros_like(acts)
        for j, (f, _, (r, c)) in enumerate(part):
            signal[j, r, c, f] = acts[j, r, c, f]  # keep one activation, zero all others
        out.append(project_down(chain, inputs, tf.constant(signal)))
    projections = np.concatenate(out) if out else np.zeros((0, *images.shape[1:]), np.float32)
    return projections.reshape(len(maps), -1, *projections.shape[1:])


def grey_at_zero(array):
    """Signed values -> [0, 1] with 0 at mid-grey, scaled by the largest magnitude."""
    scale = np.abs(array).max()
    return array / (2 * scale) + 0.5 if scale > 0 else np.full_like(array, 0.5)


# --------------------------------------------------------------------------- occlusion (fig. 7)


def occlusion_maps(predict, image, label, size=7, stride=1, value=0.5, batch_size=512):
    """Slide a ``size`` square of ``value`` over ``image``; probability of ``label`` and argmax class per place.

    ``predict`` maps a float batch (n, h, w, c) to class probabilities. The square is centred
    on every ``stride``-th pixel (clipped at the borders). Returns (prob_map, class_map), each
    (ceil(h / stride), ceil(w / stride)).
    """
    image = np.asarray(image, dtype=np.float32)
    h, w = image.shape[:2]
    centres = [(r, c) for r in range(0, h, stride) for c in range(0, w, stride)]
    probs = []
    for start in range(0, len(centres), batch_size):
        batch = np.repeat(image[None], len(centres[start : start + batch_size]), axis=0)
        for j, (r, c) in enumerate(centres[start : start + batch_size]):
            top, left = r - size // 2, c - size // 2
            batch[j, max(top, 0) : max(top + size, 0), max(left, 0) : max(left + size, 0)] = value
        probs.append(np.asarray(predict(batch)))
    probs = np.concatenate(probs)
    shape = (-(-h // stride), -(-w // stride))
    return probs[:, label].reshape(shape), probs.argmax(axis=1).reshape(shape)


def occluded_example(image, size=7, value=0.5):
    """The image with the square in its centre (for the figure)."""
    out = np.array(image, dtype=np.float32)
    r, c = out.shape[0] // 2 - size // 2, out.shape[1] // 2 - size // 2
    out[max(r, 0) : r + size, max(c, 0) : c + size] = value
    return out


def probability_function(model):
    import tensorflow as tf

    def predict(batch):
        return tf.nn.softmax(tf.cast(model(batch, training=False), tf.float32)).numpy()

    return predict


def default_occlusion_images(predict, images, labels, count=5):
    """The first correctly classified test image of each class (the first image if none), ``count`` of them."""
    from tf_assign2.analysis.training_visuals import as_float_images

    chosen = []
    for c in np.unique(labels)[:count]:
        candidates = np.flatnonzero(labels == c)[:50]
        correct = predict(as_float_images(images[candidates])).argmax(axis=1) == c
        chosen.append(int(candidates[np.argmax(correct)] if correct.any() else candidates[0]))
    return chosen


# --------------------------------------------------------------------------- the whole tool


def default_layer(model):
    """conv2 if the model has it, else its last conv layer (None for a model without conv layers)."""
    import keras

    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    return "conv2" if "conv2" in convs else (convs[-1] if convs else None)


def visualize(model, test_x, test_y, class_names, out, run_dir=None, layer=None, maps=16, images=None,
              occluder=7, stride=1, grey=0.5, shared_scale=False, batch_size=256):
    """Write every figure and JSON file into ``out``; returns {file name: what it is}."""
    from tf_assign2 import figures, runs
    from tf_assign2.analysis import training_visuals as callbacks

    layer = layer or default_layer(model)
    chain = conv_chain(model, layer) if layer is not None else None  # bad input fails before any file
    bad = [i for i in images or () if not 0 <= i < len(test_x)]
    if bad:
        raise UsageError(f"--images {bad[0]}: the test split has {len(test_x)} images (0..{len(test_x) - 1})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    float_x = callbacks.as_float_images(test_x)

    # Statistics and filters, as the callback writes them at the end of training.
    stats = callbacks.activation_statistics(model, test_x, batch_size)
    if stats:
        callbacks.write_activation_stats(out / "activation_stats.json", stats, len(test_x))
        written["activation_stats.json"] = "conv/pool activation statistics on the test set"
        for name, s in stats.items():
            print(callbacks.stats_line(name, s))
    hidden = callbacks.hidden_state_statistics(model, test_x, batch_size)
    if hidden:
        callbacks.write_hidden_state_outputs(out, model, hidden, len(test_x))
        written.update({"hidden_state_stats.json": "hidden-state statistics per step",
                        "hidden_states.png": "hidden state over the steps",
                        "recurrent_kernel.png": "recurrent kernel heatmap"})
    first = callbacks.first_conv_kernel(model)
    if first is not None:
        figures.plot_filters(first[1], out / "filters.png", title=f"{first[0]} filters", shared_scale=shared_scale)
        written["filters.png"] = "first-layer filters"
        history = Path(run_dir) / "filters" / "history.npz" if run_dir else None
        if history is not None and history.is_file():
            with np.load(history) as saved:
                snapshots = sorted((int(key.split("_")[1]), saved[key]) for key in saved.files)
            figures.plot_filter_evolution(snapshots, out / "filters_evolution.png", shared_scale)
            written["filters_evolution.png"] = "first-layer filters per epoch"
            if figures.plot_filter_change(snapshots, first[1], first[0], out / "filters_change.png", shared_scale):
                written["filters_change.png"] = "first-layer filters minus their initialisation"

    # Zeiler & Fergus fig. 2: top-9 patches and deconvnet projections.
    settings = {"occluder": occluder, "stride": stride, "grey": grey}
    if chain is not None:
        fields = receptive_field(chain, test_x.shape[1:3])
        values, indices, positions = strongest_activations(chain, test_x, 9, batch_size)
        n_maps = values.shape[0]
        patches = np.array([[patch(float_x[i], p, fields) for i, p in zip(row_i, row_p)]
                            for row_i, row_p in zip(indices, positions)])
        labels = [f"{f}" if values[f, 0] > 0 else f"{f} (dead)" for f in range(n_maps)]
        figures.plot_top_patches(patches, labels, out / f"top9_{layer}.png",
                             title=f"{layer}: top-9 test patches ({fields[0][0]}x{fields[1][0]} receptive field) "
                                   f"for each of its {n_maps} feature maps")
        written[f"top9_{layer}.png"] = f"top-9 test patches for each {layer} feature map"

        strongest = np.argsort(-values[:, 0], kind="stable")[: min(maps, n_maps)]
        projections = deconv_projections(chain, test_x, strongest, indices[strongest], positions[strongest])
        crops = np.array([[grey_at_zero(patch(p, pos, fields)) for p, pos in zip(row, row_pos)]
                          for row, row_pos in zip(projections, positions[strongest])])
        figures.plot_deconv_pairs(crops, patches[strongest], [int(f) for f in strongest], out / f"deconv_{layer}.png",
                              title=f"{layer}: deconvnet projections of the top-9 activations of its "
                                    f"{len(strongest)} strongest maps (left) and the image patches (right)")
        written[f"deconv_{layer}.png"] = f"deconvnet projections of the strongest {layer} activations"
        settings.update({"layer": layer, "receptive_field": fields[0][0], "maps": [int(f) for f in strongest],
                         "top_activation": {str(f): float(values[f, 0]) for f in range(n_maps)}})

    # Zeiler & Fergus fig. 7: occlusion sensitivity.
    predict = probability_function(model)
    chosen = list(images) if images else default_occlusion_images(predict, test_x, test_y)
    prob_maps, class_maps, base = [], [], []
    for i in chosen:
        prob_map, class_map = occlusion_maps(predict, float_x[i], int(test_y[i]), occluder, stride, grey)
        prob_maps.append(prob_map)
        class_maps.append(class_map)
        base.append(float(predict(float_x[i : i + 1])[0, test_y[i]]))
    figures.plot_occlusion(float_x[chosen], [occluded_example(float_x[i], occluder, grey) for i in chosen],
                       prob_maps, class_maps, [int(test_y[i]) for i in chosen], class_names, out / "occlusion.png",
                       title=f"occlusion sensitivity: {occluder}x{occluder} grey square, stride {stride}", base=base)
    written["occlusion.png"] = "occlusion sensitivity maps"
    settings["occlusion"] = [
        {"image": i, "label": class_names[int(test_y[i])], "probability": p, "min_probability": float(m.min())}
        for i, p, m in zip(chosen, base, prob_maps)
    ]
    written["visualize.json"] = "this list and the settings"
    runs.write_json(out / "visualize.json", {"files": written, "n_test": len(test_x), **settings})
    return written
