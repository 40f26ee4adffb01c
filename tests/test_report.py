"""The report read back from the committed summaries: every section shown, and what its prose
states by hand checked against the runs it describes."""
import copy
import json
import math
import shutil
import subprocess

import pytest
from helpers import REPO

from experiments import report
from experiments.runs import EARLIER_BEST_PERCENT, PROJECTION_SEARCH_EPOCHS
from experiments.sections import presets, search
from experiments.store import Results, by_key
from training.options import LONG_SEARCH_RECIPE

COMMITTED = Results()


def test_every_section_is_shown_from_the_committed_summaries(tmp_path):
    shutil.copytree(COMMITTED.folder, tmp_path / "results")
    report.write_report(Results(tmp_path / "results"))
    text = (tmp_path / "results" / "README.md").read_text()
    assert "Not shown" not in text and "Not run yet" not in text
    for title, _ in report.SECTIONS.values():
        assert text.count(f"\n## {title}\n") == 1
    assert text == open(COMMITTED.path("README.md")).read()


@pytest.mark.parametrize("name, key", [("best", "earlier-best"), ("best-numpy-vs-torch", "numpy"),
                                       ("best-numpy-vs-torch", "pytorch"),
                                       ("budget-reference", "earlier-best")])
def test_the_earlier_recipe_is_named_for_the_accuracy_its_runs_reach(name, key):
    test_accuracy = by_key(COMMITTED.load(name))[key]["metrics"]["test_accuracy"]
    assert math.floor(100 * test_accuracy) == EARLIER_BEST_PERCENT


def test_the_unprojected_best_is_the_run_it_copies():
    """The numbers the third stage's section quotes from a run no longer in results/."""
    shown = subprocess.run(["git", "show", f"{search.UNPROJECTED_BEST_COMMIT}:"
                            f"{search.UNPROJECTED_BEST_RUN}"], cwd=REPO, capture_output=True,
                           text=True)
    if shown.returncode != 0:
        pytest.skip(f"the repository's history is not here: {shown.stderr.strip()}")
    metrics = json.loads(shown.stdout)
    # the second stage's recipe, unprojected (an older run's config has no projection at all)
    assert dict(metrics["config"], projection=metrics["config"].get("projection", 0)) == dict(
        metrics["config"], **LONG_SEARCH_RECIPE, epochs=PROJECTION_SEARCH_EPOCHS, projection=0)
    assert search.UNPROJECTED_BEST == dict(
        validation=round(100 * max(metrics["val_accuracy"]), 2),
        test=round(100 * metrics["test_accuracy"], 2),
        minutes=round(metrics["wall_time_s"] / 60, 2), date=search.UNPROJECTED_BEST["date"])


def test_the_learned_notes_hold_for_the_runs_they_describe():
    summary = COMMITTED.load("learned")
    runs = by_key(summary)
    facts = presets.learned_facts(runs["course-numpy"], runs["best-mlp"])
    assert all(facts.values()), facts
    assert presets.learned_notes(summary) == presets.LEARNED_NOTES.format(k=512)


@pytest.mark.parametrize("stale, fact", [
    (lambda runs: runs["best-mlp"]["metrics"]["test_per_class_accuracy"].update(cat=0.1),
     "it gains on every class"),
    (lambda runs: runs["best-mlp"]["flags"].update(augment="flip"),
     "it was trained on shifted and mirrored copies"),
    (lambda runs: runs["best-mlp"]["metrics"]["test_confusion_matrix"][1].__setitem__(9, 400),
     "it halves the automobile/truck confusions")])
def test_learned_notes_that_no_longer_hold_are_left_out_saying_which(stale, fact):
    summary = copy.deepcopy(COMMITTED.load("learned"))
    stale(by_key(summary))
    text = presets.learned_notes(summary)
    assert "no longer hold" in text and fact in text and "chevrons" not in text


def test_a_row_is_described_as_the_search_decided_it():
    """The report formats the stored verdict; it never holds minutes against the budget again."""
    over = {"kept": False, "over_budget": True, "budget_minutes": 3.0}
    assert search.decision(over) == "not kept: over the budget of 3.00 min"
    assert search.decision(dict(over, over_budget=False)) == "not kept"
    assert search.decision({"kept": True}) == "kept"
