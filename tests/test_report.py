"""The report read back from the committed summaries: every section shown, and what its prose
states by hand checked against the runs it describes."""
import copy
import json
import math
import shutil
import subprocess

import pytest
from helpers import REPO, metrics, write_set

from experiments import budget, figures, report
from experiments.runs import EARLIER_BEST_PERCENT, PROJECTION_SEARCH_EPOCHS
from experiments.sections import presets, search
from experiments.sets import SETS
from experiments.store import Results, by_key
from training.options import LONG_SEARCH_RECIPE, PRESETS

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


# --- what the sections state, from summaries made for each statement ---
def section_text(results, name):
    return SETS[name].section(results.load(name), SETS[name], results)


def section_words(results, name):
    """The set's section as the report writes it, its lines joined into one."""
    return " ".join(section_text(results, name).split())


@pytest.mark.parametrize("reverse", [False, True])
def test_the_best_recipe_in_numpy_and_pytorch_is_compared_by_key(tmp_path, reverse):
    """Labels that name no trainer, in either order: the runs are found by key."""
    runs = [("numpy", "run A", "numpy", {}, metrics(test_accuracy=0.60, wall_time_s=120.0)),
            ("pytorch", "run B", "pytorch", {}, metrics(test_accuracy=0.55, wall_time_s=100.0))]
    results = write_set(tmp_path, "best-numpy-vs-torch", runs[::-1] if reverse else runs)
    assert "NumPy ends +5.00 points from PyTorch and takes 1.20x its time." in \
        section_words(results, "best-numpy-vs-torch")


def write_reference(folder, factor):
    """A budget-reference set whose run took factor times the minutes the budgets are stated
    for."""
    minutes = factor * budget.PRESET_REFERENCE_MINUTES
    return write_set(folder, "budget-reference", [
        ("earlier-best", "r", "pytorch", {}, metrics(wall_time_s=60 * minutes))])


def write_presets(folder, reverse=False):
    """The presets set: fast in 4 minutes (65 %), best in 19 (76 %), best by NumPy in 28.5 (70 %),
    with labels that name neither preset nor trainer."""
    runs = [("best", "run A", "pytorch", PRESETS["best"], metrics(0.76, wall_time_s=19 * 60.0)),
            ("fast", "run B", "pytorch", PRESETS["fast"], metrics(0.65, wall_time_s=4 * 60.0)),
            ("best-numpy", "run C", "numpy", PRESETS["best"],
             metrics(0.70, wall_time_s=28.5 * 60.0))]
    return write_set(folder, "presets", runs[::-1] if reverse else runs)


@pytest.mark.parametrize("reverse", [False, True])
def test_the_presets_are_held_to_their_own_budgets_and_numpy_compared_by_key(tmp_path, reverse):
    """On a machine twice as slow as the budgets' own, best's 10 minutes are 20 and fast's
    2.5 are 5: each row and verdict holds its preset to its own budget."""
    write_reference(tmp_path, 2.0)
    results = write_presets(tmp_path, reverse)
    rows = {line.split(" | ")[0]: line for line in section_text(results, "presets").splitlines()
            if line.startswith("| run ")}
    assert rows["| run A"].endswith("| 19.00 min | 20.00 min |")
    assert rows["| run B"].endswith("| 4.00 min | 5.00 min |")
    text = section_words(results, "presets")
    assert "`run B` **does not reach** its 68 % target within its budget (20.0 % to spare)" \
        in text
    assert "`run A` reaches its 75 % target within its budget (5.0 % to spare)" in text
    assert "70.00 % against PyTorch's 76.00 % (-6.00 points; target: within 0.3) in 1.50x " \
        "PyTorch's time" in text
    assert "Here, with no teacher, on a test machine: `python " \
        "train_mlp_pytorch.py --preset best` 76.00 % in 19.0 minutes; `python " \
        "train_mlp_pytorch.py --preset fast` 65.00 % in 4.0 minutes." in text


def test_the_budget_section_scales_each_preset_by_the_machine(tmp_path):
    text = section_words(write_reference(tmp_path, 1.5), "budget-reference")
    assert "a factor of 1.50, so the 10-minute budget of `--preset best` is 15.00 minutes here " \
        "and the 2.5-minute one of `--preset fast` 3.75." in text


def test_a_search_names_the_changes_it_kept_never_its_starting_row(tmp_path):
    rows = [("start", "the start", True), ("a", "change a", True), ("b", "change b", False),
            ("c", "change c", True)]
    write_set(tmp_path, "search", [(key, label, "pytorch", {"epochs": 15}, metrics(),
                                    {"kept": kept}) for key, label, kept in rows])
    assert "Kept, in order: change a; change c." in section_words(Results(tmp_path), "search")
    write_set(tmp_path / "only-start", "search", [
        ("start", "the start", "pytorch", {"epochs": 15}, metrics(), {"kept": True}),
        ("a", "change a", "pytorch", {"epochs": 15}, metrics(), {"kept": False})])
    assert "Kept, in order: nothing." in section_words(Results(tmp_path / "only-start"), "search")


def test_a_greedy_figures_legend_shows_labels_without_markdown(tmp_path, monkeypatch):
    """Labels are Markdown for the report's tables; a figure's legend shows them as plain text."""
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: drawn.append(fig))
    rows = [dict(label="start: `--preset best`", kept=True, budget_minutes=2.0,
                 metrics=metrics()),
            dict(label="a `--flag` change", kept=False, metrics=metrics())]
    figures.every_row_figure({"runs": rows}, tmp_path / "figure.png")
    (figure,) = drawn
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["start: --preset best", "a --flag change",
                      "the budget here (2.00 minutes)"]
