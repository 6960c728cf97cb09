"""Every number in the README's results table is the one in the record its row cites.

A row's last cell cites its record: a sweep's results.csv with the entries the number comes from
(one entry: its test accuracy, or "diverges in epoch N"; several: their mean, and where the row gives
a range, their lowest and highest; groups separated by " / " as the numbers are), a tuning project's
trials.csv (the best validation accuracy), or benchmark records (each ratio is a cell of one of their
tables). The students' figures quoted beside ours come from the assignment, not from a record.
"""

import csv
import re
import statistics

import pytest
from conftest import ROOT

HEADER = "| what | result | command | record |"
NUMBER = re.compile(r"(?<![\d.])0\.\d{3}(?!\d)")
RATIO = re.compile(r"\d+\.\d{2}x")
LINK = re.compile(r"\[[^\]]*\]\(([^)]+)\)")


def result_rows():
    """(what, result, command, record) of each row of the README's results table."""
    text = (ROOT / "README.md").read_text()
    assert HEADER in text, "the README's results table needs its record column"
    table = text[text.index(HEADER):].split("\n\n")[0].splitlines()[2:]
    return [tuple(cell.strip() for cell in line.strip().strip("|").split(" | ")) for line in table]


def ours(result):
    """The result cell without the students' figures it quotes."""
    return re.sub(r"\(students:[^)]*\)", "", result)


def sweep_expectations(path, groups):
    """For each group of entries: (texts the row must show, numbers it may show)."""
    with (ROOT / path).open() as f:
        rows = {row["entry"]: row for row in csv.DictReader(f)}
    texts, numbers = [], []
    for group in groups:
        names = [name.strip() for name in group.split(",") if name.strip()]
        missing = [name for name in names if name not in rows]
        assert not missing, f"{path} has no entry {missing[0]!r}"
        picked = [rows[name] for name in names]
        if len(picked) == 1 and picked[0]["status"] == "diverged":
            texts.append(f"diverges in epoch {picked[0]['epochs_completed']}")
            continue
        assert all(row["status"] == "completed" for row in picked), f"{path}: {names} did not all complete"
        values = [float(row["test_accuracy"]) for row in picked]
        numbers.append([f"{statistics.fmean(values):.3f}"] +
                       ([f"{min(values):.3f}", f"{max(values):.3f}"] if len(values) > 1 else []))
    return texts, numbers


def check_sweep_row(result, path, cited):
    texts, numbers = sweep_expectations(path, cited.split(" / "))
    for text in texts:
        assert text in result, (result, text)
    shown = NUMBER.findall(ours(result))
    plain = [group[0] for group in numbers]
    with_ranges = [n for group in numbers for n in group]
    assert shown in (plain, with_ranges), f"{result!r} shows {shown}; {path} gives {plain} (ranges {with_ranges})"


def check_tuning_row(result, path):
    with (ROOT / path).open() as f:
        best = max(float(row["val_accuracy"]) for row in csv.DictReader(f) if row["val_accuracy"])
    assert NUMBER.findall(ours(result)) == [f"{best:.3f}"], (result, best)


def check_bench_row(result, paths):
    cells = set()
    for path in paths:
        for line in (ROOT / path).read_text().splitlines():
            if line.startswith("|"):
                cells |= {cell.strip() for cell in line.strip("|").split("|")}
    ratios = RATIO.findall(result)
    assert ratios, result
    for ratio in ratios:
        assert ratio in cells, f"{ratio} is in no table of {', '.join(paths)}"


@pytest.mark.parametrize("row", result_rows(), ids=lambda row: row[0][:40])
def test_each_readme_result_is_the_number_of_the_record_it_cites(row):
    what, result, command, record = row
    paths = LINK.findall(record)
    assert paths, f"{what!r}: no record cited"
    for path in paths:
        assert (ROOT / path).is_file(), f"{what!r} cites {path}, which does not exist"
    if paths[0].endswith("results.csv"):
        check_sweep_row(result, paths[0], LINK.sub("", record).strip().strip("`"))
    elif paths[0].endswith("trials.csv"):
        check_tuning_row(result, paths[0])
    else:
        check_bench_row(result, paths)


def test_the_checks_fail_on_a_number_the_record_does_not_give():
    """A row that disagrees with its record is caught (the check can fail)."""
    record = "docs/sweeps/cifar_recipe_confirm/before/results.csv"
    check_sweep_row("test 0.681 (0.671-0.687)", record, "3, 4, 5")
    for wrong in ("test 0.682 (0.671-0.687)", "test 0.681 (0.671-0.686)", "test 0.681 (0.671-0.687), 0.500"):
        with pytest.raises(AssertionError):
            check_sweep_row(wrong, record, "3, 4, 5")
    with pytest.raises(AssertionError):
        check_bench_row("9.99x", ["docs/bench/2026-11-26-epyc-avx2.md"])
