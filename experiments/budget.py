"""The presets' budgets on this machine, and the search's verdict on a row: the one place where
minutes are held against a budget.

Each preset's budget (training.options.PRESET_BUDGET_MINUTES) is stated for the machine that ran
the best set, where its last run, the 61 % recipe, took PRESET_REFERENCE_MINUTES. The
budget-reference set times that run here; the ratio of the two scales every budget. A search
stage that builds a preset stores its verdict on each row in summary.json (kept, budget_minutes,
over_budget), which the report shows as it was decided."""
from safety.errors import UserError
from training.options import PRESET_BUDGET_MINUTES

REFERENCE_SET = "budget-reference"
# the minutes the budgets are stated against: what the best set's last run took on its machine
# (results/best/summary.json, to a tenth of a minute; tests/test_report.py checks it)
PRESET_REFERENCE_MINUTES = 8.8


def reference_minutes(reference):
    """The minutes the budget-reference set's one run took, from that set's summary."""
    if len(reference["runs"]) != 1:
        raise UserError(f"{REFERENCE_SET}/summary.json holds {len(reference['runs'])} runs, not "
                        f"its one: run `python -m experiments {REFERENCE_SET}` again")
    return reference["runs"][0]["metrics"]["wall_time_s"] / 60


def factor(reference):
    """How much slower this machine is than the one the budgets are stated for."""
    return reference_minutes(reference) / PRESET_REFERENCE_MINUTES


def factor_here(results):
    """This machine's factor, or None before the budget-reference set has run."""
    return factor(results.load(REFERENCE_SET)) if results.has(REFERENCE_SET) else None


def preset_budget(preset, machine_factor):
    """A preset's budget in minutes on a machine of that factor."""
    return PRESET_BUDGET_MINUTES[preset] * machine_factor


def stage_budget(experiment_set, results, measure_it=f"python -m experiments {REFERENCE_SET}"):
    """The minutes a row of the set may take here: its preset's budget where the set is a stage
    that builds one, else None; UserError where that budget is unknown on this machine, naming
    measure_it, the command that measures it."""
    preset = experiment_set.budget_preset
    if preset is None:
        return None
    machine_factor = factor_here(results)
    if machine_factor is None:
        raise UserError(f"{experiment_set.name} keeps no change past the budget of --preset "
                        f"{preset}, which is unknown on this machine: run `{measure_it}` first")
    return preset_budget(preset, machine_factor)


def greedy_decision(val_accuracy, kept_accuracy, minutes, budget, kept_over_budget=False):
    """A greedy row's decision as the summary records it: kept if its validation accuracy
    (store.validation_accuracy) is above the one kept so far and, where its stage has a budget,
    it took no more minutes than that. The starting row (no accuracy kept yet) is kept whatever
    it took: every row after it builds on it. Where the row kept so far took more than the
    budget (kept_over_budget), a row within it is kept whatever its accuracy: a preset keeps
    nothing past its budget."""
    kept = val_accuracy > kept_accuracy
    if budget is None:
        return {"kept": kept}
    over_budget = minutes > budget
    within = not over_budget and (kept or kept_over_budget)
    return {"kept": kept_accuracy < 0 or within, "budget_minutes": budget,
            "over_budget": over_budget}
