"""``python -m tf_assign2.sweep FILE``: every entry of a sweep file as a normal training run (``api.sweep``);
with ``--chief``/``--worker``, one sweep over several machines."""

from tf_assign2 import api
from tf_assign2.cli import ArgumentParser, flag_values, positive_int, run_cli, training_parser
from tf_assign2.errors import UsageError
from tf_assign2.experiments.sweep import MAX_ENTRIES, load_sweep

NOT_WITH_A_SWEEP = ("--runs-dir", "--resume", "--config")


def parser():
    p = ArgumentParser(
        prog="python -m tf_assign2.sweep", allow_abbrev=False,
        description="Run every entry of a sweep file as a normal training run (resumable: re-run the same "
                    "command), then write results.csv, results.md and overlay.png. Other flags (e.g. --epochs 5) "
                    "are training flags applied to every entry.")
    p.add_argument("sweep_file", help="a sweep YAML, e.g. configs/sweeps/cifar_optimizers.yaml")
    p.add_argument("--out", default=None, help="sweep folder (default runs/sweeps/<sweep name>); re-use it to resume")
    p.add_argument("--dry-run", action="store_true", help="check the sweep and list its entries; run nothing")
    p.add_argument("--max-entries", type=positive_int, default=MAX_ENTRIES,
                   help=f"refuse sweeps with more entries than this ({MAX_ENTRIES})")
    g = p.add_argument_group(
        "several machines (keras-tuner chief/worker over gRPC; --out on a filesystem every machine shares)")
    g.add_argument("--chief", metavar="HOST:PORT", default=None,
                   help="the chief's address; alone: run as the chief, which hands out the entries and writes the "
                        "results, listening on this machine only (127.0.0.1:PORT; workers elsewhere reach it through "
                        "an SSH tunnel, docs/experiments.md)")
    g.add_argument("--worker", metavar="ID", default=None,
                   help="run as a worker with this ID (e.g. w0): train the entries the chief hands out")
    return p


def training_overrides(task, flags):
    """The training flags given to the sweep, checked by the training parser, as settings."""
    for flag in flags:
        if flag.split("=")[0] in NOT_WITH_A_SWEEP:
            raise UsageError(f"{flag.split('=')[0]}: not allowed with a sweep (each entry's run goes to "
                             "runs/<entry>/ under --out; re-run the sweep to resume it)")
    return flag_values(training_parser(task).parse_args(list(flags)))


def sweep(argv=None):
    args, flags = parser().parse_known_args(argv)
    task = load_sweep(args.sweep_file, args.max_entries)["task"]
    results = api.sweep(args.sweep_file, out=args.out, dry_run=args.dry_run, max_entries=args.max_entries,
                        chief=args.chief, worker=args.worker, **training_overrides(task, flags))
    if args.dry_run:
        for i, ((name, values), row) in enumerate(zip(results.entries, results.rows), 1):
            listed = ", ".join(f"{k}={v}" for k, v in values.items())
            print(f"[{i}/{len(results.rows)}] {name}: {listed or 'base settings'} ({row['status']})")
        print(f"{len(results.rows)} entries; outputs in {results.path}")
    return 130 if results.interrupted else 0


def main(argv=None):
    return run_cli(lambda: sweep(argv))
