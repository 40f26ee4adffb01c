"""How the presets' recipes were found: the greedy search's stages from the 61 % recipe to the
twelfth, each row's verdict as the search stored it, and the words every stage's section shares
(search_best.py has the three stages after them, for --preset best alone)."""
import numpy as np

from dataset.cifar10 import PIXEL_VALUES
from experiments import budget
from experiments.runs import (
    EPOCHS_SEARCH_EPOCHS,
    FAST_SEARCH_EPOCHS,
    HORIZON_SEARCH_EPOCHS,
    LADDER_RECIPE_NAME,
    PROJECTION_SEARCH_EPOCHS,
    SEARCH_EPOCHS,
)
from experiments.sections.words import number_word, path_of
from experiments.store import by_key, flags_of, validation_accuracy
from training.options import PRESET_BUDGET_MINUTES
from training.preprocessing import TTA_SHIFT


def kept_labels(entries):
    """The changes a greedy search kept, in order, its starting row left out."""
    return "; ".join(e["label"] for e in entries[1:] if e["kept"]) or "nothing"


def mean_epoch_seconds(entries):
    return "; ".join(f"row {i}: {np.mean(e['metrics']['epoch_seconds']):.1f} s"
                     for i, e in enumerate(entries))


def decision(entry):
    """A greedy row's decision in words, as the search stored it: a row it did not keep for
    taking longer than its stage's budget says so."""
    if not entry["kept"] and entry.get("over_budget"):
        return f"not kept: over the budget of {entry['budget_minutes']:.2f} min"
    return "kept" if entry["kept"] else "not kept"


def greedy_table(entries):
    """A greedy search set's rows as a markdown table."""
    rows = "\n".join(
        f"| {i} | {e['label']} | {decision(e)} | "
        f"{100 * validation_accuracy(e['metrics']):.2f} | {100 * e['metrics']['test_accuracy']:.2f}"
        f" | {e['metrics']['wall_time_s'] / 60:.1f} | `{e['command']}` |"
        for i, e in enumerate(entries))
    return f"""| # | change | decision | validation % | test % | minutes | command |
|---|---|---|---|---|---|---|
{rows}"""


def table_and_figure(entries, name):
    """A greedy stage's table, then its figure of validation accuracy against minutes."""
    return f"{greedy_table(entries)}\n\n![Validation accuracy against minutes]({name}/{name}.png)"


GREEDY_RULE = f"""\
each row tries one change on top of every change kept so far, and keeps it only if it
raises the **validation accuracy** of the model its run keeps (the best epoch's; with
`--tta flip+shift` or `flip+wide-shift`, that model's on all its views); otherwise the next row
starts again from the last kept one. The rule is in `{path_of(budget)}` and decides by itself:
the test set is evaluated once per row, for this table, and never looked at to choose. Rows
that were not kept stay in the table."""
BUDGET_RULE = """A change also has to keep to the budget of the preset its stage builds, scaled
to the machine that ran the stage by its budget-reference run as that stood when the stage ran (the
stage's summary records the budget, the dashed line of its figure shows it, and the budget section
below gives the one of the presets' runs): a row whose whole run took longer is not kept, however
accurate, and its decision says so. The starting row is kept whatever it took, as every row after
it builds on it."""


def greedy_section(summary, folder, origin, note):
    """The table and the validation-against-minutes figure of a greedy search set whose rows
    all train for the same number of epochs."""
    entries = summary["runs"]
    epochs = entries[0]["flags"]["epochs"]
    return f"""A greedy search from {origin}, every row at {epochs} epochs so that rows compare at
equal cost: {GREEDY_RULE}

{table_and_figure(entries, folder)}

Kept, in order: {kept_labels(entries)}. {note}"""


def section_search(summary, experiment_set, results):
    return greedy_section(summary, "search", LADDER_RECIPE_NAME, """The
minutes column is each whole run in-process; other work shared this 2-core machine during parts
of this stage, so its minutes are upper bounds.""")


def built_on(entries, key):
    """(the row of key, the last row kept before it: the one its change was tried on)"""
    index = [e["key"] for e in entries].index(key)
    return entries[index], [e for e in entries[:index] if e["kept"]][-1]


def section_search_long(summary, experiment_set, results):
    wider, narrower = built_on(summary["runs"], "first-2048")
    cost = (np.mean(wider["metrics"]["epoch_seconds"])
            / np.mean(narrower["metrics"]["epoch_seconds"]))
    short = SEARCH_EPOCHS
    note = f"""The first stage's recipe overfits when trained longer (training
accuracy near 99 % at 75 epochs, validation falling after its middle), so this stage, run with
the machine otherwise idle, spends twice the epochs and tries again what trades epochs for less
overfitting. Random crops, not kept at {short} epochs, are tried here again: an MLP has to learn
every shifted position of a pattern separately, which costs epochs before it pays. The rule
compares rows at equal epochs, not equal minutes: the wider first layer was kept although its
epochs cost about {cost:.1f} times as much. The stages after this one compare rows at the minutes
of a preset's budget instead, starting with the third at the {PROJECTION_SEARCH_EPOCHS} epochs of
the kept recipe that fit the budget of `--preset best`."""
    return greedy_section(summary, "search-long", "the first stage's recipe", note)


def budget_line(entries, preset):
    """What the dashed line of a budgeted stage's figure is: the budget its rows were held to."""
    return (f"The dashed line is the {PRESET_BUDGET_MINUTES[preset]}-minute budget of `--preset "
            f"{preset}` as it stood when this stage ran: {entries[0]['budget_minutes']:.2f} "
            "minutes on its machine.")


def projection_saving(results, start):
    """What an epoch of the second stage's kept recipe took there, against the projected start
    row's here, in a sentence."""
    projected = (f"projected onto {flags_of(start)['projection']} principal components, it took "
                 f"{np.mean(start['metrics']['epoch_seconds']):.1f} s here")
    if not results.has("search-long"):
        return (f"Its first row is the second stage's recipe {projected} (that stage is not run "
                "here).")
    second = results.load("search-long")
    kept = [e for e in second["runs"] if e["kept"]][-1]
    return (f"An epoch of the second stage's kept recipe, with its validation pass, took "
            f"{np.mean(kept['metrics']['epoch_seconds']):.1f} s in that stage (on "
            f"{second['machine']}, {second['date']}); {projected}.")


def section_search_projection(summary, experiment_set, results):
    entries = summary["runs"]
    pixels, units = PIXEL_VALUES, flags_of(entries[0])["hidden_dims"][0]
    seconds, line = mean_epoch_seconds(entries), budget_line(entries, experiment_set.budget_preset)
    return f"""A greedy search from the second stage's recipe, by the same rule, except that rows
compare at the minutes they take rather than at equal epochs: {GREEDY_RULE} {BUDGET_RULE}

The second stage's first hidden layer, {pixels} x {units} weights, is about three quarters of every
step's work. Here each whitened image, after its crop and flip, is projected onto the top K
principal components that the ZCA whitening found in the training split (`--projection K`: a
fixed first layer, `ProjectionModule` in modules.py), so that the first hidden layer reads K
numbers instead of {pixels}. The projection costs one ({pixels} x K) product per image and has no
backward pass.

{table_and_figure(entries, "search-projection")}

Kept, in order: {kept_labels(entries)}. An epoch with its validation pass took, on
average, {seconds}. {projection_saving(results, entries[0])} {line} The fourth and fifth stages
start from the kept recipe."""


def section_search_fast(summary, experiment_set, results):
    entries, preset, rows = summary["runs"], experiment_set.budget_preset, by_key(summary)
    horizon = f"{number_word(FAST_SEARCH_EPOCHS).capitalize()} epochs"
    budget_text = f"{PRESET_BUDGET_MINUTES[preset]:g} minutes"
    narrow, wide = (flags_of(rows[key])["hidden_dims"][0] for key in ("first-1024", "start"))
    layers, best_epochs = f"{narrow} units instead of {wide}", EPOCHS_SEARCH_EPOCHS
    seconds, line = mean_epoch_seconds(entries), budget_line(entries, preset)
    return f"""A greedy search from the third stage's recipe at the horizon of `--preset fast`, by
the same rule, rows compared at about the same minutes: {GREEDY_RULE} {BUDGET_RULE}

{horizon} of the third stage's recipe are as many as fit {budget_text} on a 2-core CPU, against
the {best_epochs} that the budget of `--preset best` holds. Each row therefore makes an
epoch cheaper and spends what that saves on more epochs, so that every row takes about the minutes
of the first: a first hidden layer of {layers}, fewer principal components, and
batches twice as large with the learning rate doubled (the step count halves, so each step moves
further).

{table_and_figure(entries, "search-fast")}

Kept, in order: {kept_labels(entries)}. An epoch with its validation pass took, on average,
{seconds}. {line} The seventh stage for `--preset fast` goes on from the kept recipe."""


def epochs_gain(results):
    """What the third stage's longer horizon gained, in a sentence."""
    longer = (f"In the third stage, {EPOCHS_SEARCH_EPOCHS} epochs instead of "
              f"{PROJECTION_SEARCH_EPOCHS}")
    if not results.has("search-projection"):
        return f"{longer} raised the best validation accuracy (that stage is not run here),"
    third = by_key(results.load("search-projection"))
    gain = 100 * (validation_accuracy(third["70-epochs"]["metrics"])
                  - validation_accuracy(third["start"]["metrics"]))
    return f"{longer} raised the best validation accuracy by {gain:.1f} points,"


def section_search_epochs(summary, experiment_set, results):
    entries, preset = summary["runs"], experiment_set.budget_preset
    seconds, line = mean_epoch_seconds(entries), budget_line(entries, preset)
    return f"""A greedy search from the third stage's recipe at the minutes of `--preset best`, by
the same rule, rows compared at about the same minutes: {GREEDY_RULE} {BUDGET_RULE}

{epochs_gain(results)} so epochs are what this stage buys: each row
makes an epoch cheaper and spends what that saves on more epochs, so that every row takes about the
minutes of the first. The last row adds cutout (`--augment crop+flip+cutout`), which costs nothing
in minutes, against what a longer horizon may overfit.

{table_and_figure(entries, "search-epochs")}

Kept, in order: {kept_labels(entries)}. An epoch with its validation pass took, on average,
{seconds}. {line} The sixth stage goes on from the kept recipe."""


def unused_share(entry):
    """The share of its stage's budget that a budgeted row left unused."""
    return 1 - entry["metrics"]["wall_time_s"] / 60 / entry["budget_minutes"]


def section_search_horizon(summary, experiment_set, results):
    entries, preset = summary["runs"], experiment_set.budget_preset
    spare = unused_share(entries[0])
    return f"""The fifth stage's recipe at its {HORIZON_SEARCH_EPOCHS} epochs left
{100 * spare:.0f} % of the budget of `--preset {preset}` unused here; this stage spends it on
epochs, by the same rule: {GREEDY_RULE} {BUDGET_RULE}

{table_and_figure(entries, "search-horizon")}

Kept, in order: {kept_labels(entries)}. {budget_line(entries, preset)} The seventh stage goes on
from the kept recipe."""


def seconds_outside_and_in_epochs(metrics):
    """(what a run took besides its epochs: set-up and the kept model's test, what its epochs
    took with their validation), in seconds."""
    epochs = sum(metrics["epoch_seconds"])
    return metrics["wall_time_s"] - epochs, epochs


def section_search_views(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    start, views = entries[0]["metrics"], entries[1]["metrics"]
    outside, inside = np.subtract(seconds_outside_and_in_epochs(views),
                                  seconds_outside_and_in_epochs(start))
    gain = 100 * (validation_accuracy(views) - validation_accuracy(start))
    rest = (" The last row spends what is left of the budget on epochs." if len(entries) > 2
            else "")
    return f"""The recipe the stages before this one kept for `--preset {preset}`, its kept model
then validated and tested on more views of each image: the 2 of `--tta flip` (the image and its
mirror) or the 18 of `--tta flip+shift`, which also moves each of those by -{TTA_SHIFT}, 0 or
{TTA_SHIFT} pixels down and right, zeros coming in behind as at the edge of a training crop. The
model sees the same batches in the first two rows; with the 18 views each epoch is validated on
the image alone, the cheapest pass, as all it decides is which epoch is kept. The star is the
kept model's validation accuracy on all 18 views, and the minutes they take count against the
budget.{rest}
The same rule: {GREEDY_RULE} {BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. The views changed validation accuracy by {gain:+.2f} points. What
the run did outside its epochs (its set-up and the kept model's evaluation) took {outside:+.0f} s
against the start; its epochs {inside:+.0f} s, each now validated on one view instead of two, on
a machine whose timings are noisy. {budget_line(entries, preset)} The eighth stage goes on from
the kept recipe."""


def section_search_deform(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    start, deformed = entries[0]["metrics"], entries[1]["metrics"]
    gain = 100 * (validation_accuracy(deformed) - validation_accuracy(start))
    return f"""The recipe the stages before this one kept for `--preset {preset}`, its training
images deformed as Lin, Memisevic & Konda (2015) deformed theirs: each turned by a random angle
within 10 degrees and zoomed by a random factor within 10 % about its centre, then moved and
mirrored as the crop moves and mirrors it (`--augment deform+flip`). Each pixel is the nearest one
of its source, one gather per batch, which costs what the crop costs; the rows train the same
epochs. The same rule: {GREEDY_RULE} {BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. The deformations changed validation accuracy by {gain:+.2f} points.
{budget_line(entries, preset)} {next_step(experiment_set)}"""


def section_search_residual(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    start = validation_accuracy(entries[0]["metrics"])
    best_block = max(entries[1:], key=lambda entry: validation_accuracy(entry["metrics"]))
    gain = 100 * (validation_accuracy(best_block["metrics"]) - start)
    return f"""The recipe the stages before this one kept for `--preset {preset}`, with residual
blocks as Bachmann, Anagnostidis & Hofmann (2023) stack them in their MLPs: each block adds
W₂ σ(W₁ LN(x)) to its input x (`--blocks`, `--block_width`), LayerNorm's backward written by hand
in `modules.py`. A block costs more than its multiply-adds, LayerNorm, the activation and dropout
over every unit among them, so each row trains fewer epochs: as many as a few epochs timed with
the block and without said would take its start's minutes; the table gives the minutes each took.
The same rule: {GREEDY_RULE} {BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. The best row with a block changed validation accuracy by
{gain:+.2f} points. {budget_line(entries, preset)} {next_step(experiment_set)}"""


def section_search_dropout(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    start, dropped = (entries[i]["metrics"] for i in (0, 1))
    gain = 100 * (validation_accuracy(dropped) - validation_accuracy(start))
    step = np.mean(dropped["epoch_seconds"]) / np.mean(start["epoch_seconds"])
    return f"""The recipe the stages before this one kept for `--preset {preset}`, without
dropout: its training images are moved and mirrored (for `--preset best` also turned and
zoomed) anew at every epoch, and the preset's runs score about as well on them, dropout on, as on
the validation images: a model held back by its capacity more than by overfitting. The last row
spends what is left of the budget on epochs. The same rule:
{GREEDY_RULE} {BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. No dropout changed validation accuracy by {gain:+.2f} points, each
epoch taking {step:.2f} times as long. {budget_line(entries, preset)} {next_step(experiment_set)}"""


def last_stage(preset):
    """The name of the last greedy stage held to the preset's budget: what the preset trains."""
    from experiments.sets import SETS  # here, not above: sets.py imports this module
    return [one.name for one in SETS.values() if one.greedy and one.budget_preset == preset][-1]


def next_step(experiment_set):
    """What follows a stage: the next stage where one goes on from it, else the preset."""
    if last_stage(experiment_set.budget_preset) != experiment_set.name:
        return "The next stage goes on from the kept recipe."
    return f"`--preset {experiment_set.budget_preset}` trains the kept recipe."


def section_search_rest(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    spare = unused_share(entries[0])
    return f"""The recipe the stages before this one kept for `--preset {preset}` left
{100 * spare:.0f} % of its budget unused here, its epochs without dropout being cheaper than the
tenth stage reckoned; this stage spends it on epochs, by the same rule: {GREEDY_RULE}
{BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. {budget_line(entries, preset)} {next_step(experiment_set)}"""


def start_fit(start):
    """The start's accuracy on its augmented training images and on validation, last epoch."""
    return (f"{100 * start['train_accuracy'][-1]:.1f} % on its augmented training images and "
            f"{100 * start['val_accuracy'][-1]:.1f} % on the validation images (one view each)")


def kept_against_start(entries):
    """How far the kept recipe moved validation and test accuracy from the start's."""
    start, kept = entries[0]["metrics"], [entry for entry in entries if entry["kept"]][-1]
    validation = 100 * (validation_accuracy(kept["metrics"]) - validation_accuracy(start))
    test = 100 * (kept["metrics"]["test_accuracy"] - start["test_accuracy"])
    return (f"Against the start, the kept recipe's validation accuracy moved by {validation:+.2f} "
            f"points and its test accuracy by {test:+.2f} (which the rule does not look at), one "
            f"seed each.")


def section_search_regularization(summary, experiment_set, results):
    entries, preset, name = summary["runs"], experiment_set.budget_preset, experiment_set.name
    return f"""The recipe the stages before this one kept for `--preset {preset}`, regularized
less: its label smoothing and weight decay were chosen with dropout on and at fewer epochs, so
without dropout each is tried lower, then a higher peak learning rate, each at the same epochs.
At its last epoch the start scored {start_fit(entries[0]["metrics"])}. The same rule:
{GREEDY_RULE} {BUDGET_RULE}

{table_and_figure(entries, name)}

Kept: {kept_labels(entries)}. {kept_against_start(entries)} {budget_line(entries, preset)}
{next_step(experiment_set)}"""
