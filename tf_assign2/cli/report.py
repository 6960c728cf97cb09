"""``python -m tf_assign2.report PATH...``: REPORT.md and its figures from finished runs (``api.report``)."""

import shlex
import sys

from tf_assign2 import api
from tf_assign2.cli import ArgumentParser, run_cli


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
    command = "python -m tf_assign2.report " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(f"wrote {api.report(args.paths, args.out, command)}")
    return 0


def main(argv=None):
    return run_cli(lambda: report(argv))
