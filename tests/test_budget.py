"""The presets' budgets on this machine, and the verdict a budgeted search stage stores."""
import json
import re

import pytest

from experiments import budget
from experiments.sets import SETS
from experiments.store import Results
from safety.errors import UserError
from training.options import PRESET_BUDGET_MINUTES


def write_reference(folder, minutes, runs=1):
    """A budget-reference set whose run took minutes, listed runs times in its summary."""
    (folder / "budget-reference" / "runs" / "r").mkdir(parents=True)
    run = {"key": "ladder-recipe", "label": "r", "trainer": "pytorch", "flags": {},
           "run_dir": "runs/r"}
    (folder / "budget-reference" / "summary.json").write_text(json.dumps(
        {"command": "c", "date": "d", "machine": "m", "data": "s", "runs": [run] * runs}))
    (folder / "budget-reference" / "runs" / "r" / "metrics.json").write_text(json.dumps(
        {"test_accuracy": 0.6, "val_accuracy": [0.6], "train_loss": [1.0], "best_epoch": 1,
         "wall_time_s": 60 * minutes, "epoch_seconds": [50.0]}))
    return Results(folder)


def test_the_budget_here_scales_each_preset_by_the_reference_run(tmp_path):
    results = write_reference(tmp_path, 2 * budget.PRESET_REFERENCE_MINUTES)
    assert budget.factor_here(results) == pytest.approx(2.0)
    assert budget.stage_budget(SETS["search-fast"], results) == \
        pytest.approx(2 * PRESET_BUDGET_MINUTES["fast"])
    assert budget.stage_budget(SETS["search-projection"], results) == \
        pytest.approx(2 * PRESET_BUDGET_MINUTES["best"])
    assert budget.stage_budget(SETS["search-long"], results) is None  # builds no preset


@pytest.mark.parametrize("runs, minutes, named", [
    (0, 10.0, "budget-reference/summary.json holds 0 runs, not its one"),
    (2, 10.0, "budget-reference/summary.json holds 2 runs, not its one"),
    (1, "ten", "wall_time_s must be a number, not 'ten'")])
def test_a_damaged_reference_stops_a_budgeted_stage_in_one_line(tmp_path, runs, minutes, named):
    """Never a traceback: a stage that builds a preset cannot start on a budget it cannot read."""
    results = write_reference(tmp_path, 1.0, runs)
    metrics = tmp_path / "budget-reference" / "runs" / "r" / "metrics.json"
    metrics.write_text(json.dumps(dict(json.loads(metrics.read_text()), wall_time_s=minutes)))
    with pytest.raises(UserError, match=re.escape(named)):
        budget.stage_budget(SETS["search-fast"], results)


def test_the_budget_is_unknown_before_the_reference_has_run(tmp_path):
    results = Results(tmp_path)
    assert budget.factor_here(results) is None
    assert budget.stage_budget(SETS["search"], results) is None
    with pytest.raises(UserError, match="run `python -m experiments budget-reference` first"):
        budget.stage_budget(SETS["search-fast"], results)


@pytest.mark.parametrize("validation, kept_accuracy, minutes, verdict", [
    (0.5, -1.0, 9.0, dict(kept=True, over_budget=True)),  # the start: kept whatever it took
    (0.7, 0.6, 3.0, dict(kept=True, over_budget=False)),  # exactly the budget is within it
    (0.7, 0.6, 3.01, dict(kept=False, over_budget=True)),
    (0.6, 0.6, 1.0, dict(kept=False, over_budget=False)),  # no gain in validation accuracy
])
def test_a_budgeted_row_is_kept_on_validation_accuracy_within_the_budget(
        validation, kept_accuracy, minutes, verdict):
    decided = budget.greedy_decision(validation, kept_accuracy, minutes, 3.0)
    assert decided == dict(verdict, budget_minutes=3.0)


@pytest.mark.parametrize("minutes, kept", [(2.0, True), (3.0, True), (3.01, False)])
def test_a_row_within_the_budget_replaces_a_kept_row_past_it_whatever_its_accuracy(minutes, kept):
    decided = budget.greedy_decision(0.4, 0.6, minutes, 3.0, kept_over_budget=True)
    assert decided == dict(kept=kept, over_budget=not kept, budget_minutes=3.0)


def test_a_row_of_a_stage_without_budget_is_kept_on_validation_accuracy_alone():
    assert budget.greedy_decision(0.7, 0.6, 1e9, None) == {"kept": True}
    assert budget.greedy_decision(0.5, 0.6, 0.0, None) == {"kept": False}
