"""``python -m tf_assign2.visualize RUN``: the Zeiler & Fergus figures of a finished run (``analysis.zeiler_fergus``)."""

from pathlib import Path

from tf_assign2 import config as settings
from tf_assign2 import runs
from tf_assign2.analysis.zeiler_fergus import load_run_model, visualize
from tf_assign2.cli import (
    ArgumentParser,
    add_data_flags,
    any_int,
    check_data_location,
    flag_values,
    positive_int,
    run_cli,
    start_tensorflow,
)
from tf_assign2.errors import UsageError


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
    p.add_argument("--out", default=None, help="output folder (default: a new visualize-<timestamp>/ in the run)")
    return p


def visualize_run(argv=None):
    args = parser().parse_args(argv)
    run_dir = Path(args.run_dir)
    if not runs.is_run_dir(run_dir):
        raise UsageError(f"{run_dir}: not a run directory (no config.json)")
    if not (run_dir / "model.keras").is_file():
        raise UsageError(f"{run_dir}: no model.keras (did the run diverge or get interrupted?)")
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
    out = Path(args.out) if args.out else runs.timestamped_subdir(run_dir, "visualize")
    written = visualize(model, test_x, test_y, info.class_names, out, run_dir=run_dir, layer=args.layer,
                        maps=args.maps, images=args.images, occluder=args.occluder, stride=args.stride,
                        shared_scale=args.shared_scale)
    print(f"wrote {len(written)} files to {out}: {', '.join(written)}")
    return 0


def main(argv=None):
    """Entry point: UsageError -> one stderr line, exit 2."""
    return run_cli(lambda: visualize_run(argv))
