"""Every accuracy the pages state to two decimals (README.md, derivations.md, docs/) is one that a
saved result holds: a run's metrics or a set's summary under results/. A number that no saved run
ever reached (a typo, or a run's number left behind when the run was made again) fails."""
import glob
import json
import os
import re

import pytest
from helpers import REPO

PAGES = ["README.md", "derivations.md",
         *sorted(os.path.relpath(path, REPO) for path in glob.glob(os.path.join(REPO, "docs",
                                                                                 "*.md")))]
# a percentage to two decimals; one with a spread (± ...) is a mean of several runs, which the
# generated tables compute
PERCENT = re.compile(r"(?<![\d.])(?<!± )(\d{1,3}\.\d\d) ?%")


def run_percentages(value):
    """The accuracies of every run in a JSON value (a metrics.json, or a summary holding runs'
    metrics), as the percentages to two decimals they read as: its test accuracy, its best
    validation accuracy, its kept model's on every --tta view."""
    found = set()
    if isinstance(value, dict):
        if "test_accuracy" in value:
            found |= {value.get("test_accuracy"), value.get("kept_val_accuracy"),
                      max(value.get("val_accuracy") or [None], key=lambda a: a or 0)}
        for each in value.values():
            found |= run_percentages(each)
    elif isinstance(value, list):
        for each in value:
            found |= run_percentages(each)
    return {f"{100 * share:.2f}" for share in found if isinstance(share, float)}


@pytest.fixture(scope="module")
def saved_percentages():
    found = set()
    for path in glob.glob(os.path.join(REPO, "results", "**", "*.json"), recursive=True):
        with open(path) as f:
            found |= run_percentages(json.load(f))
    return found


def stated_percentages(text):
    return [(text[:match.start()].count("\n") + 1, match.group(1))
            for match in PERCENT.finditer(text)]


def test_a_percentage_is_read_with_its_decimals_and_a_spread_is_not():
    text = "reached 75.60 % and 49.26 ± 0.33 %; 3.8 % to spare; 101.5 %\nthen 68.07%"
    assert stated_percentages(text) == [(1, "75.60"), (2, "68.07")]


@pytest.mark.parametrize("page", PAGES)
def test_every_accuracy_a_page_states_is_held_by_a_saved_result(page, saved_percentages):
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
        stated = stated_percentages(f.read())
    unheld = [f"line {line}: {number} %" for line, number in stated
              if number not in saved_percentages]
    assert not unheld, f"{page} states accuracies no saved result holds: {unheld}"
