"""``python -m tf_assign2.sweep FILE``: every entry of a sweep file as a normal training run (``experiments.sweep``);
with ``--chief``/``--worker``, one sweep over several machines (``experiments.sweep_cluster``)."""

import os
from pathlib import Path

from tf_assign2.cli import ArgumentParser, flag_values, positive_int, run_cli, start_tensorflow, training_parser
from tf_assign2.cli.train import train
from tf_assign2.errors import UsageError
from tf_assign2.experiments import sweep_cluster
from tf_assign2.experiments.sweep import (
    MAX_ENTRIES,
    check_out,
    default_out,
    entry_runs,
    load_sweep,
    plan,
    run_status,
    run_sweep,
)
from tf_assign2.experiments.tune import distribution

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
                        "results (bind a private address, e.g. 10.0.0.1:8000, or 127.0.0.1 with SSH tunnels)")
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
    loaded = load_sweep(args.sweep_file, args.max_entries)
    out = Path(args.out) if args.out else default_out(loaded)
    overrides = training_overrides(loaded["task"], flags)
    role, env = distribution(args.chief, args.worker)
    if args.dry_run:
        planned = plan(loaded, out, overrides)
        check_out(out, loaded, planned)
        for i, entry in enumerate(planned, 1):
            made = entry_runs(out, entry["name"])
            status = run_status(made[-1]) if made else "pending"
            values = ", ".join(f"{k}={v}" for k, v in dict(loaded["entries"])[entry["name"]].items())
            print(f"[{i}/{len(planned)}] {entry['name']}: {values or 'base settings'} ({status})")
        print(f"{len(planned)} entries; outputs in {out}")
        return 0
    start_tensorflow()  # import it quietly now; each run seeds it again
    if role == "standalone":
        return run_sweep(loaded, out, train, flags, overrides)
    os.environ.update(env)  # keras-tuner reads its KERASTUNER_* variables
    if role == "chief":
        return sweep_cluster.run_chief(loaded, out, flags, overrides)
    return sweep_cluster.run_worker(loaded, out, train, flags, overrides)


def main(argv=None):
    return run_cli(lambda: sweep(argv))
