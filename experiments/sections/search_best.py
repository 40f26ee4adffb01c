"""The greedy search's last stages, for --preset best alone: mixup, more views at test time,
then the other regularizers again with mixup on and an average of the weights, then
self-distillation, then the recipe brought within its budget, then wider hidden layers."""
from experiments import budget
from experiments.sections.search import (
    BUDGET_RULE,
    GREEDY_RULE,
    budget_line,
    kept_against_start,
    kept_labels,
    mean_epoch_seconds,
    next_step,
    start_fit,
    table_and_figure,
)
from experiments.sections.words import path_of
from experiments.store import validation_accuracy
from training.distillation import snapshot_epochs
from training.preprocessing import TTA_SHIFT


def section_search_mixup(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    return f"""The recipe the twelfth stage kept for `--preset {preset}` scored
{start_fit(entries[0]["metrics"])} at its last epoch: it fits its training images better than the
deformations alone make up for. Mixup blends each batch with a shuffled copy of itself, labels
too, at no cost in minutes; it is tried at two strengths, then the rest of the budget is spent
on epochs. The same rule: {GREEDY_RULE} {BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. {kept_against_start(entries)} {budget_line(entries, preset)}
{next_step(experiment_set)}"""


def section_search_averaging(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    start, views = (entry["metrics"] for entry in entries[:2])
    alone = 100 * start["val_accuracy"][start["best_epoch"] - 1]
    alike = ("" if start["train_loss_steps"] != views["train_loss_steps"] else " Both runs trained "
             "alike, step for step: their minutes differ by the views' evaluation and the machine.")
    return f"""The recipe the thirteenth stage kept for `--preset {preset}`, with more views. Its
kept model scored {alone:.2f} % on the validation images alone and
{100 * validation_accuracy(start):.2f} % on their 18 views. Here it is validated and tested on 50
(`--tta flip+wide-shift`: each image and its mirror moved by -{2 * TTA_SHIFT}, -{TTA_SHIFT}, 0,
{TTA_SHIFT} or {2 * TTA_SHIFT} pixels down and right), its training as it was, the minutes the
views take counting against the budget. The same rule: {GREEDY_RULE} {BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. {kept_against_start(entries)} {budget_line(entries, preset)}{alike}
{next_step(experiment_set)}"""


def section_search_with_mixup(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    *lighter, averaged = entries[1:]
    return f"""The recipe the fourteenth stage kept for `--preset {preset}`. Its deformations and
its weight decay were chosen before mixup joined them, so each is tried lighter with mixup on
({"; then ".join(entry["label"] for entry in lighter)}). Then the model validated, kept and
tested is made {averaged["label"]} (`--ema`, BatchNorm's statistics included), its updates
counting against the budget. At its last epoch the start scored
{start_fit(entries[0]["metrics"])}. The same rule:
{GREEDY_RULE} {BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. {kept_against_start(entries)} {budget_line(entries, preset)}
{next_step(experiment_set)}"""


def section_search_distillation(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    weights = " and then ".join(f'{entry["flags"]["distill"]:g}' for entry in entries[1:])
    epochs = entries[0]["flags"]["epochs"]
    return f"""The recipe the fifteenth stage kept for `--preset {preset}`, taught by itself: a
teacher trained inside the same minutes, made of the run's own checkpoints (`--distill BETA`,
`training/distillation.py`). After epochs {", ".join(map(str, snapshot_epochs(epochs)))} of
{epochs}, the model predicts each training image alone and unaugmented, and from the first of
these snapshots on each training image's target is 1 - BETA its label and BETA the snapshots'
mean probabilities for it, mixed as mixup mixes labels; BETA is {weights}. The passes over the
training images count against the budget. At its last epoch the start scored
{start_fit(entries[0]["metrics"])}. The same rule: {GREEDY_RULE} {BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. {kept_against_start(entries)} {budget_line(entries, preset)}
{next_step(experiment_set)}"""


def section_search_budget(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    start, fewer = entries
    minutes = [entry["metrics"]["wall_time_s"] / 60 for entry in entries]
    return f"""The recipe the sixteenth stage kept for `--preset {preset}` ran past its budget in
that stage. A preset keeps nothing past its budget: where the row kept so far took longer than
the budget, a row within it replaces it whatever its accuracy (`{path_of(budget)}`; the
sixteenth stage's saved decisions do not apply this clause, under which its first row within
the budget would be kept). The cheapest change is tried, {fewer["flags"]["epochs"]} epochs
instead of {start["flags"]["epochs"]}. Here the start took {minutes[0]:.2f} minutes,
{"past" if start["over_budget"] else "within"} the budget of {start["budget_minutes"]:.2f}, and
the row with fewer epochs {minutes[1]:.2f}. Otherwise the same rule: {GREEDY_RULE} {BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. {kept_against_start(entries)} {budget_line(entries, preset)}
{next_step(experiment_set)}"""


def section_search_width(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    widths = " and then ".join(entry["label"] for entry in entries[1:])
    start = entries[0]["metrics"]
    gap = 100 * (start["train_accuracy"][-1] - start["val_accuracy"][-1])
    return f"""The recipe the seventeenth stage kept for `--preset {preset}`, made wider. At its
last epoch the start scored {start_fit(start)}: it fits its deformed and blended training
images only about {gap:.0f} points better than images it never trained on, a sign that capacity
holds it back rather than overfitting. A wider layer's epoch costs more, so each row trains
fewer epochs: {widths}, each number of epochs chosen before the stage, from three-epoch runs of
each width on the same machine (not among the sets), to take at most the start's minutes. The
mean seconds of an epoch here: {mean_epoch_seconds(entries)}. The same rule: {GREEDY_RULE}
{BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. {kept_against_start(entries)} {budget_line(entries, preset)}
{next_step(experiment_set)}"""
