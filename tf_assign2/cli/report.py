"""``python -m tf_assign2.report PATH...``: REPORT.md and its figures from finished runs (``experiments.report``)."""

import shlex
import sys

from tf_assign2.cli import ArgumentParser, run_cli, start_tensorflow
from tf_assign2.experiments.report import build_report


def parser():
    p = ArgumentParser(prog="python -m tf_assign2.report",
                       description="Write REPORT.md and its figures from finished runs and sweeps.")
    p.add_argument("paths", nargs="+", metavar="RUNS_DIR",
                   help="a sweep folder, a folder holding run directories, or a run directory")
    p.add_argument("--out", default=None,
                   help="folder for REPORT.md and figures/ (default: a new reports/report-<timestamp>/)")
    return p


def report(argv=None):
    args = parser().parse_args(argv)
    start_tensorflow()  # reading histories imports it; keep its start-up chatter quiet
    command = "python -m tf_assign2.report " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    path = build_report(args.paths, args.out, command)
    print(f"wrote {path}")
    return 0


def main(argv=None):
    return run_cli(lambda: report(argv))
