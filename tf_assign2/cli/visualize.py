"""``python -m tf_assign2.visualize RUN``: the Zeiler & Fergus figures of a finished run and, with ``--methods``,
attribution maps and their faithfulness scores, through ``api.visualize``."""

from tf_assign2 import api
from tf_assign2.cli import (
    TEST_DATA_SETTINGS,
    ArgumentParser,
    add_data_flags,
    any_int,
    checked,
    flag_values,
    positive_int,
    run_cli,
)

unit_float = checked(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def parser():
    p = ArgumentParser(
        prog="python -m tf_assign2.visualize",
        description="Zeiler & Fergus visualisations of a finished run: top-9 patches and deconvnet projections "
        "of a conv layer's feature maps, occlusion sensitivity, activation statistics and filters.",
    )
    p.add_argument("run_dir", help="a finished run directory (with model.keras and config.json)")
    add_data_flags(p, names=TEST_DATA_SETTINGS)
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
    written = api.visualize(args.run_dir, methods=args.methods, out=args.out, layer=args.layer, maps=args.maps,
                            images=args.images, occluder=args.occluder, stride=args.stride,
                            shared_scale=args.shared_scale, gradcam_layers=args.gradcam_layers,
                            score_images=args.score_images, figure_images=args.figure_images,
                            baseline=args.baseline, **flag_values(args))
    print(f"wrote {len(written)} files to {written.out}: {', '.join(written)}")
    return 0


def main(argv=None):
    """Entry point: UsageError -> one stderr line, exit 2."""
    return run_cli(lambda: visualize_run(argv))
