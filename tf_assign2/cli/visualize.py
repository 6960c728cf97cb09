"""``python -m tf_assign2.visualize RUN``: the Zeiler & Fergus figures of a finished run (``analysis.zeiler_fergus``)
and, with ``--methods``, attribution maps and their faithfulness scores (``analysis.attribution``)."""

from pathlib import Path

from tf_assign2 import config as settings
from tf_assign2 import runs
from tf_assign2.analysis import attribution
from tf_assign2.analysis.zeiler_fergus import load_run_model, visualize
from tf_assign2.cli import (
    ArgumentParser,
    add_data_flags,
    any_int,
    check_data_location,
    checked,
    flag_values,
    positive_int,
    run_cli,
    start_tensorflow,
)
from tf_assign2.errors import UsageError

unit_float = checked(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def parser():
    p = ArgumentParser(
        prog="python -m tf_assign2.visualize",
        description="Zeiler & Fergus visualisations of a finished run: top-9 patches and deconvnet projections "
        "of a conv layer's feature maps, occlusion sensitivity, activation statistics and filters.",
    )
    p.add_argument("run_dir", help="a finished run directory (with model.keras and config.json)")
    add_data_flags(p)
    p.add_argument("--layer", default=None, help="conv layer for the top-9 patches and deconvnet (default conv2)")
    p.add_argument("--maps", type=positive_int, default=16, help="feature maps in the deconvnet figure (16)")
    p.add_argument("--images", type=any_int, nargs="+", default=None,
                   help="test image indices for occlusion (default: the first correct one of 5 classes)")
    p.add_argument("--occluder", type=positive_int, default=7, help="side of the grey square in pixels (7)")
    p.add_argument("--stride", type=positive_int, default=1, help="occluder step in pixels (1)")
    p.add_argument("--shared-scale", action="store_true", help="draw filters on one scale (grey = 0)")
    a = p.add_argument_group("attribution", "saliency, SmoothGrad, Integrated Gradients, Grad-CAM and occlusion "
                             "maps of the predicted class, scored by deletion/insertion curves")
    a.add_argument("--methods", default="none", metavar="LIST",
                   help="comma-separated: saliency,smoothgrad,ig,gradcam,occlusion; all; or none (the default: "
                   "only the Zeiler & Fergus set). Writes attribution.png, attribution_curves.png, "
                   "attribution_scores.json")
    a.add_argument("--gradcam-layers", default=None, metavar="LIST",
                   help="conv layers for Grad-CAM (default: every conv layer, last first: conv2,conv1)")
    a.add_argument("--score-images", type=positive_int, default=100,
                   help="test images (spread over the split) for the deletion/insertion scores (100)")
    a.add_argument("--figure-images", type=positive_int, default=6,
                   help="rows of attribution.png, spread over the split; --images picks them instead (6)")
    a.add_argument("--baseline", type=unit_float, default=0.0,
                   help="the pixel value that stands for 'missing': Integrated Gradients' baseline, the occlusion "
                   "square of the attribution maps, removed pixels/rows in the scores (0: black)")
    p.add_argument("--out", default=None, help="output folder (default: a new visualize-<timestamp>/ in the run)")
    return p


def visualize_run(argv=None):
    args = parser().parse_args(argv)
    run_dir = Path(args.run_dir)
    if not runs.is_run_dir(run_dir):
        raise UsageError(f"{run_dir}: not a run directory (no config.json)")
    if not (run_dir / "model.keras").is_file():
        raise UsageError(f"{run_dir}: no model.keras (did the run diverge or get interrupted?)")
    attribution.resolve_methods(args.methods, None)  # unknown names: before TensorFlow starts
    values = runs.read_json(run_dir / "config.json")
    values.update(flag_values(args))
    cfg = settings.from_dict(values, f"{run_dir}/config.json")
    check_data_location(cfg)
    start_tensorflow()

    from tf_assign2 import data

    model = load_run_model(run_dir)
    test_x, test_y, info = data.load_test_split(cfg)
    if tuple(model.input.shape[1:]) != tuple(test_x.shape[1:]):
        raise UsageError(f"{run_dir}: model expects images of shape {tuple(model.input.shape[1:])}, "
                         f"the data has {tuple(test_x.shape[1:])}")
    layers = [name.strip() for name in args.gradcam_layers.split(",") if name.strip()] if args.gradcam_layers else None
    methods = attribution.resolve_methods(args.methods, model, layers)  # bad input fails before any file
    if methods and not attribution.conv_layers(model):  # --methods all on a recurrent model
        print("Grad-CAM: not applicable, the model has no conv layer")
    out = Path(args.out) if args.out else runs.timestamped_subdir(run_dir, "visualize")
    written = visualize(model, test_x, test_y, info.class_names, out, run_dir=run_dir, layer=args.layer,
                        maps=args.maps, images=args.images, occluder=args.occluder, stride=args.stride,
                        shared_scale=args.shared_scale)
    if methods:
        more, record = attribution.write_report(
            model, test_x, test_y, info.class_names, out, methods, figure_images=args.images,
            figure_count=args.figure_images, score_count=args.score_images, baseline=args.baseline,
            occluder=args.occluder, stride=args.stride)
        written.update(more)
        listing = runs.read_json(out / "visualize.json")
        listing["files"].update(more)
        runs.write_json(out / "visualize.json", {**listing, **record})
    print(f"wrote {len(written)} files to {out}: {', '.join(written)}")
    return 0


def main(argv=None):
    """Entry point: UsageError -> one stderr line, exit 2."""
    return run_cli(lambda: visualize_run(argv))
