"""The report read back from the committed summaries: every section shown, and what its prose
states by hand checked against the runs it describes."""
import copy
import io
import math
import os
import re
import shutil
import subprocess
import tokenize

import numpy as np
import pytest
from helpers import REPO, metrics, write_set

from experiments import budget, figures, report
from experiments.runs import LADDER_RECIPE_KEY, LADDER_RECIPE_PERCENT
from experiments.sections import presets, questions, search, words
from experiments.sets import SETS
from experiments.store import Results, by_key
from training.options import PRESETS

COMMITTED = Results()


def test_every_section_is_shown_from_the_committed_summaries(tmp_path):
    shutil.copytree(COMMITTED.folder, tmp_path / "results")
    report.write_report(Results(tmp_path / "results"))
    text = (tmp_path / "results" / "README.md").read_text()
    assert "Not shown" not in text and "Not run yet" not in text
    for title, _ in report.SECTIONS.values():
        assert text.count(f"\n## {title}\n") == 1
    assert text == open(COMMITTED.path("README.md")).read()


# words that tell what happened before rather than what is; a report sentence says what its runs
# show, and where a stage comes before another, it says so by the stage's number
TIME_WORDS = re.compile(r"\b(earlier|later|no longer|used to|formerly|previously|older)\b",
                        re.IGNORECASE)


def test_the_committed_report_tells_what_is_not_what_was():
    """The committed report (the one the summaries give, as the test above checks): no word of a
    time before it, and no sentence about a benchmark or a preset that is not there."""
    with open(COMMITTED.path("README.md")) as f:
        text = f.read()
    assert TIME_WORDS.findall(text) == []
    for stale in ("top-level README's benchmark", "first benchmark", "the preset |",
                  "The recipe of `--preset best` (BatchNorm"):
        assert stale not in text


# a part of a name that tells when it was written; old and new only in constants' names, where
# they cannot mean a file or folder a run makes now
WHEN = re.compile(r"(?:^|_)(?:EARLIER|LATER|OLDER|NEWER|PREVIOUS|FORMER)(?:_|$)", re.IGNORECASE)
WHEN_IN_CONSTANTS = re.compile(r"(?:^|_)(?:OLD|NEW)(?:_|$)")


def names_telling_when(source):
    """The identifiers of Python source that name a time, sorted; a test's name is a sentence
    about what happens while it runs, and is left to its reader."""
    names = {token.string for token in tokenize.generate_tokens(io.StringIO(source).readline)
             if token.type == tokenize.NAME}
    return sorted(name for name in names if "_" in name.strip("_")
                  and not name.startswith("test_")
                  and (WHEN.search(name) or WHEN_IN_CONSTANTS.search(name)))


def test_no_identifier_names_a_time():
    """Names say what a thing is, never when it was made: EARLIER_BEST, RECORDED_LATER, OLD_X."""
    found = {}
    for path in subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.split():
        with open(os.path.join(REPO, path), encoding="utf-8") as f:
            found.update({f"{path}: {name}": True for name in names_telling_when(f.read())})
    assert sorted(found) == []


@pytest.mark.parametrize("name", ["EARLIER_BEST", "RECORDED_LATER", "earlier_ladder", "OLD_PRESET",
                                  "PRESETS_NEW"])
def test_a_name_telling_when_is_found(name):
    assert names_telling_when(f"{name} = 1\n") == [name]
    assert names_telling_when("new_folder = old_file = previous = 1  # EARLIER_BEST\n") == []


@pytest.mark.parametrize("name, key", [("best", LADDER_RECIPE_KEY),
                                       ("best-numpy-vs-torch", "numpy"),
                                       ("best-numpy-vs-torch", "pytorch"),
                                       ("budget-reference", LADDER_RECIPE_KEY)])
def test_the_ladder_recipe_is_named_for_the_accuracy_its_runs_reach(name, key):
    test_accuracy = by_key(COMMITTED.load(name))[key]["metrics"]["test_accuracy"]
    assert math.floor(100 * test_accuracy) == LADDER_RECIPE_PERCENT


def test_the_budgets_are_stated_for_the_minutes_the_best_set_took():
    """PRESET_REFERENCE_MINUTES is what the ladder's last run took on the machine that ran the
    best set, to the tenth of a minute the report shows."""
    ladder = by_key(COMMITTED.load("best"))[LADDER_RECIPE_KEY]["metrics"]
    assert round(ladder["wall_time_s"] / 60, 1) == budget.PRESET_REFERENCE_MINUTES
    text = section_words(COMMITTED, "budget-reference")
    assert f"took {budget.PRESET_REFERENCE_MINUTES} minutes" in text
    assert COMMITTED.load("best")["machine"] in text


@pytest.mark.parametrize("change, label", [({}, "declared"), ({"lr": 0.5}, "saved")])
def test_a_row_shows_the_label_its_set_declares_for_the_run_it_was(change, label):
    """A row takes the label the code declares for its key where the declared run is the one
    trained (a greedy row: its change is in the flags trained); otherwise the one saved."""
    (start, zca, *_) = SETS["search"].runs
    summary = {"runs": [dict(key="start", label="saved", flags=dict(start.flags, **change)),
                        dict(key=zca.key, label="saved", flags=dict(start.flags, **zca.flags)),
                        dict(key="not-declared", label="saved", flags={})]}
    labels = [e["label"] for e in report.declared_labels(summary, SETS["search"])["runs"]]
    assert labels == [start.label if label == "declared" else "saved", zca.label, "saved"]


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
     "it was trained on turned, zoomed, shifted and mirrored copies"),
    (lambda runs: runs["best-mlp"]["metrics"]["test_confusion_matrix"][1].__setitem__(9, 400),
     "it cuts the automobile/truck confusions by more than half")])
def test_learned_notes_that_do_not_hold_are_left_out_saying_which(stale, fact):
    summary = copy.deepcopy(COMMITTED.load("learned"))
    stale(by_key(summary))
    text = presets.learned_notes(summary)
    assert "do not hold" in text and fact in text and "chevrons" not in text


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
        (LADDER_RECIPE_KEY, "r", "pytorch", {}, metrics(wall_time_s=60 * minutes))])


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
    best, fast = (f"{100 * presets.PRESET_TARGETS[key]:.0f} %" for key in ("best", "fast"))
    assert f"`run B` **does not reach** its {fast} target within its budget (20.0 % to spare)" \
        in text
    assert f"`run A` **does not reach** its {best} target within its budget (5.0 % to spare)" \
        in text
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
                      "the budget when the stage ran (2.00 minutes)"]


# --- each comparison a sentence makes, at the edge where its words stop being true ---
@pytest.mark.parametrize("above, seconds, words", [
    (0.0, 600.0, "reaches its {} % target within its budget (0.0 % to spare)"),
    (-1e-4, 600.0, "**does not reach** its {} % target within"),
    (1e-4, 601.2, "reaches its {} % target but runs **past** its budget (0.2 % over)"),
    (-1e-4, 601.2, "**does not reach** its {} % target and runs **past** its budget (0.2 % over)"),
])
def test_a_presets_verdict_at_its_target_and_its_budget(above, seconds, words):
    """On a machine of factor 1, best's budget is 10 minutes: 600 s is exactly within it."""
    target = presets.PRESET_TARGETS["best"]
    entry = dict(key="best", label="run A", metrics=metrics(target + above, wall_time_s=seconds))
    assert presets.preset_verdict(entry, 1.0).startswith(
        f"`run A` {words.format(f'{100 * target:.0f}')}")


def learned_runs(best_cat, course_trucks, best_trucks):
    """The course's model (every class 50 %) and the best (60 %, but best_cat on cats), with
    their automobile/truck confusions; cat/dog the most confused pair of both."""
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    entries = []
    for accuracy, cat, trucks in ((0.5, 0.5, course_trucks), (0.6, best_cat, best_trucks)):
        confusion = np.zeros((10, 10), int)
        confusion[3, 5], confusion[1, 9] = 50, trucks
        entries.append(dict(flags=dict(normalize="zca", projection=40, augment="deform+flip"),
                            metrics=dict(class_names=names, test_confusion_matrix=confusion,
                                         test_per_class_accuracy=dict(
                                             {name: accuracy for name in names}, cat=cat))))
    return entries


@pytest.mark.parametrize("best_cat, best_trucks, wrong", [
    (0.55, 9, []),
    (0.55, 10, ["it cuts the automobile/truck confusions by more than half"]),  # half: not more
    (0.5, 9, ["it gains on every class"]),  # as good as before on one class is no gain
])
def test_the_learned_notes_at_the_edge_of_each_fact(best_cat, best_trucks, wrong):
    facts = presets.learned_facts(*learned_runs(best_cat, 20, best_trucks))
    assert [fact for fact, holds in facts.items() if not holds] == wrong


@pytest.mark.parametrize("hits, resolved", [(5, True), (4, False)])
def test_a_goe_size_is_resolved_from_its_minimum_of_hits_on(hits, resolved):
    """θ is estimated around n where n and its neighbours each have goe_min_hits (5) or more."""
    goe = [dict(n=n, hits=count, samples=1000, low=0.0, high=1.0)
           for n, count in ((1, 500), (2, 150), (3, hits))] + [
               dict(n=4, hits=5, samples=1000, low=0.0, high=1.0)]
    theta = questions.goe_rows(goe, 5).splitlines()[2].split("|")[-2].strip()  # n = 3's
    assert (theta != "") == resolved


def test_counts_are_spelled_as_prose_spells_them():
    assert [words.number_word(count) for count in (0, 12, 19, 20, 22, 40, 49)] == \
        ["zero", "twelve", "nineteen", "twenty", "twenty-two", "forty", "forty-nine"]


def test_the_seeds_spread_is_held_against_every_decided_search_row(tmp_path):
    """The presets' run at seed 42 and three more: validation 78, 79, 80 and 81 % has a standard
    deviation of 1.29 points, so two runs differ by 1.83 (√2 times) as a rule. Of the search's
    three rows after its start, the one past its budget was decided on minutes; of the other two,
    only the one 1.5 points from the recipe kept before it is that close."""
    write_set(tmp_path, "presets", [
        ("best", "b", "pytorch", dict(PRESETS["best"], seed=42),
         metrics(0.77, kept_val_accuracy=0.78))])
    write_set(tmp_path, "preset-seeds", [
        ("best", "b", "pytorch", dict(PRESETS["best"], seed=seed),
         metrics(test, kept_val_accuracy=validation))
        for seed, validation, test in ((0, 0.79, 0.76), (1, 0.80, 0.78), (2, 0.81, 0.79))])
    rows = [("start", 0.70, True, {}), ("a", 0.75, True, {}), ("b", 0.765, False, {}),
            ("c", 0.60, False, {"over_budget": True})]
    write_set(tmp_path, "search", [(key, key, "pytorch", {}, metrics(kept_val_accuracy=accuracy),
                                    {"kept": kept, **more}) for key, accuracy, kept, more in rows])
    text = section_words(Results(tmp_path), "preset-seeds")
    assert "seeds 0, 1 and 2" in text and "| 42 | 78.00 | 77.00 |" in text
    assert "validation accuracy is 79.50 ± 1.29 % (mean ± standard deviation; 78.00 to 81.00)" \
        in text
    assert "a standard deviation of about 1.83 points" in text
    assert "of the 2 rows the search stages decided on validation accuracy, 1 differed" in text
    assert "target lies +0.50 points from the mean test accuracy (+0.4 standard deviations)" \
        in text
    assert "The run at seed 42, the seed every stage chose on, comes fourth of these 4 on " \
        "validation accuracy and third on test accuracy." in text


def test_the_seed_the_stages_chose_on_is_placed_among_the_others():
    entries = [{"flags": {"seed": 42}}, {"flags": {"seed": 0}}, {"flags": {"seed": 1}}]
    best = presets.chosen_seed_rank(entries, [78.0, 77.0, 76.0], [77.0, 77.5, 76.0])
    assert "comes first of these 3 on validation accuracy and second on test accuracy. A " \
        "recipe chosen on its best validation accuracy at one seed scores lower" in best
    middle = presets.chosen_seed_rank(entries, [77.0, 78.0, 76.0], [76.0, 77.0, 76.5])
    assert middle.endswith("comes second of these 3 on validation accuracy and third on test "
                           "accuracy.")
