"""Re-write a recorded sweep's results.md from its results.csv, by today's rules (the best entry chosen on
validation accuracy, test accuracy beside it), without its run folders.

    python docs/tools/sweep_tables.py docs/sweeps/*/          # each folder: results.csv in, results.md out

The sweep's name, task, description and target come from ``configs/sweeps/<folder name>.yaml``; every
figure comes from results.csv, which the sweep itself wrote.
"""

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tf_assign2 import config as schema  # noqa: E402
from tf_assign2 import runs  # noqa: E402
from tf_assign2.experiments import sweep  # noqa: E402

NUMBERS = {**{name: schema.SETTINGS[name].kind for name in sweep.SETTING_COLUMNS},
           **{name: float for name in sweep.SUMMARY_NUMBERS}, "epochs_completed": int, "parameters": int,
           "epochs_to_target": int, "seconds_to_target": float}


def value(name, text):
    """A results.csv cell as the type its column holds ('' is blank)."""
    if text in ("", None):
        return None
    kind = NUMBERS.get(name)
    if kind in (int, float):
        try:
            number = float(text)
        except ValueError:  # a word the table writes for a setting that is off (clipnorm: off)
            return text
        return int(number) if kind is int and number.is_integer() else number
    if kind is bool:
        return text == "True"
    return text


def rewrite(folder):
    folder = Path(folder)
    spec = sweep.load_sweep(ROOT / "configs" / "sweeps" / f"{folder.name}.yaml")
    with open(folder / "results.csv", newline="") as f:
        rows = [{k: value(k, v) for k, v in row.items()} for row in csv.DictReader(f)]
    for row in rows:
        row.setdefault("status", "pending")
        for name in (*sweep.SETTING_COLUMNS, *sweep.RESULT_COLUMNS):
            row.setdefault(name, None)
    spec["file"] = f"configs/sweeps/{folder.name}.yaml"
    runs.write_atomic(folder / "results.md", sweep.results_markdown(spec, rows))
    print(f"wrote {folder / 'results.md'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="recorded sweep folders holding results.csv")
    for folder in parser.parse_args().folders:
        rewrite(folder)


if __name__ == "__main__":
    main()
