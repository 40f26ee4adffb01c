"""results/README.md, written from the saved metrics alone: each experiment set's figures, tables
and text. Nothing here trains; `python -m experiments report` calls write_report."""
import json
import os
import statistics
import sys
import textwrap

import numpy as np

from questions import saddles, spectrum
from safety.errors import UserError
from safety.files import write_atomically
from training.options import DEFAULTS, PRESET_BUDGET_MINUTES, PRESETS, command_line
from training.plots import pyplot, save_figure

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPOSITORY, DEFAULTS["results_dir"])
PRESET_REFERENCE_MINUTES = 8.8  # the earlier --preset best on the Intel Xeon of the first report
# What the figures of the 'learned' set show, written after looking at them
LEARNED_NOTES = """What the accuracy alone does not say. The course's model learns colour and
layout: its first-layer templates are smooth blobs, a green or blue centre against a contrasting
surround, and its confident mistakes are images whose colours belong to another class (a bird
against blue sky taken for an airplane, a green-brown cat for a frog). The best MLP reads
ZCA-whitened pixels through their top 512 principal components and was trained on shifted and
mirrored copies, and its templates (its first layer seen from the pixels, W Pᵀ) show it:
besides colour blobs, many units are oriented stripes, gratings and chevrons, local edge
detectors of the kind a convolution learns, here spread over whole images. It gains on every
class and halves the automobile/truck confusions, but cat/dog stays the most confused pair, and
its most confident mistakes are still judged by background: nearly every bird on a plain blue
sky is called an airplane."""


SUMMARY_KEYS = ("command", "date", "machine", "data", "runs")
ENTRY_KEYS = ("label", "trainer", "flags", "run_dir")
METRICS_KEYS = ("test_accuracy", "val_accuracy", "train_loss", "best_epoch", "wall_time_s")


def read_json(path, keys):
    """The JSON object in path, which must hold keys; UserError naming the file otherwise."""
    shown = os.path.relpath(path, RESULTS)
    try:
        with open(path) as f:
            content = json.load(f)
    except (OSError, ValueError) as error:
        raise UserError(f"{shown} cannot be read ({error})") from None
    missing = [key for key in keys if not isinstance(content, dict) or key not in content]
    if missing:
        raise UserError(f"{shown} lacks {', '.join(missing)}")
    return content


def load_set(name):
    folder = os.path.join(RESULTS, name)
    summary = read_json(os.path.join(folder, "summary.json"), SUMMARY_KEYS)
    for entry in summary["runs"]:
        if not isinstance(entry, dict) or not set(ENTRY_KEYS) <= set(entry):
            raise UserError(f"{name}/summary.json: a run lacks one of {', '.join(ENTRY_KEYS)}")
        entry["metrics"] = read_json(os.path.join(folder, entry["run_dir"], "metrics.json"),
                                     METRICS_KEYS)
        # the presets may have changed since the run
        entry["command"] = command_line(entry["trainer"], entry["flags"])
    return summary


def groups(summary):
    """Runs by label, in order of first appearance (seeds of one setting share a label)."""
    grouped = {}
    for entry in summary["runs"]:
        grouped.setdefault(entry["label"], []).append(entry)
    return grouped


def mean_std(values):
    values = [100 * v for v in values]
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.2f}{spread}"


def curves_figure(summary, path, title):
    """Validation accuracy and training loss per epoch: a thin line per run, a thick mean."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for color, (label, entries) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"],
                                       groups(summary).items()):
        for ax, key in zip(axes, ("val_accuracy", "train_loss")):
            series = np.array([e["metrics"][key] for e in entries])
            epochs = np.arange(1, series.shape[1] + 1)
            for line in series:
                ax.plot(epochs, line, color=color, lw=0.7, alpha=0.35)
            ax.plot(epochs, series.mean(axis=0), color=color, lw=2,
                    label=f"{label} (n={len(entries)})")
    axes[0].set(title="Validation accuracy", xlabel="epoch", ylabel="accuracy")
    axes[1].set(title="Training loss (epoch mean)", xlabel="epoch", ylabel="cross-entropy")
    for ax in axes:
        ax.legend()
    fig.suptitle(title)
    save_figure(fig, path)


def seeds_table(summary):
    lines = ["| setting | test accuracy % (mean ± std over seeds) | per seed | command of one "
             "run |", "|---|---|---|---|"]
    for label, entries in groups(summary).items():
        tests = [e["metrics"]["test_accuracy"] for e in entries]
        per_seed = ", ".join(f"{e['flags']['seed']}: {100 * t:.2f}" for e, t in zip(entries, tests))
        lines.append(f"| {label} | {mean_std(tests)} | {per_seed} | `{entries[0]['command']}` |")
    return "\n".join(lines)


def section_bn(summary):
    curves_figure(summary, os.path.join(RESULTS, "bn", "bn.png"),
                  "PyTorch MLP at the course's defaults, with and without BatchNorm")
    by_label = groups(summary)
    seeds = len(by_label["with BatchNorm"])
    means = {label: statistics.mean(e["metrics"]["test_accuracy"] for e in entries)
             for label, entries in by_label.items()}
    first_loss = {label: statistics.mean(e["metrics"]["train_loss"][0] for e in entries)
                  for label, entries in by_label.items()}
    gain = 100 * (means["with BatchNorm"] - means["without BatchNorm"])
    return f"""BatchNorm after each hidden Linear, everything else at the course's defaults (one
hidden layer of 128 ELU units, SGD with lr 0.1, 10 epochs), {seeds} seeds each.

![BatchNorm curves](bn/bn.png)

{seeds_table(summary)}

BatchNorm changes the mean test accuracy by {gain:+.2f} points here. Its clearest effect is in
the first epoch, whose mean training loss is {first_loss["with BatchNorm"]:.3f} with it and
{first_loss["without BatchNorm"]:.3f} without: normalizing each hidden unit over the batch keeps
the next layer's inputs at a stable scale while the first large SGD steps change the weights.
After that the curves run together; one hidden layer of 128 units gives BatchNorm little depth to
help with, and its batch-statistics noise costs about what it gains."""


def section_activations(summary):
    curves_figure(summary, os.path.join(RESULTS, "activations", "activations.png"),
                  "ELU vs Tanh vs ReLU at equal budget (course defaults otherwise)")
    best = max(groups(summary).items(),
               key=lambda item: statistics.mean(e["metrics"]["test_accuracy"] for e in item[1]))
    return f"""The same network and budget (128 hidden units, SGD lr 0.1, 10 epochs) with each
hidden nonlinearity, {len(best[1])} seeds each. **{best[0]}** has the best mean test accuracy.

![Activation curves](activations/activations.png)

{seeds_table(summary)}

ELU and ReLU keep an identity-like slope for positive inputs, so gradients pass undamped; Tanh
saturates at ±1, where its slope vanishes, and its outputs are bounded, which slows learning from
the normalized pixels at this learning rate."""


def section_numpy_vs_torch(summary):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for entry in summary["runs"]:
        metrics = entry["metrics"]
        steps = np.array(metrics["train_loss_steps"])
        per_epoch = len(steps) / len(metrics["train_loss"])
        axes[0].plot(np.arange(1, len(steps) + 1) / per_epoch, steps, lw=0.4, alpha=0.6,
                     label=f"{entry['label']} (per step)")
        axes[1].plot(np.arange(1, len(metrics["val_accuracy"]) + 1), metrics["val_accuracy"],
                     "o-", label=f"{entry['label']} validation")
        axes[1].plot(np.arange(1, len(metrics["train_accuracy"]) + 1),
                     metrics["train_accuracy"], "--", label=f"{entry['label']} train")
    axes[0].set(title="Training loss", xlabel="epoch", ylabel="cross-entropy")
    axes[1].set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in axes:
        ax.legend()
    fig.suptitle("NumPy and PyTorch trainers at the course's defaults")
    save_figure(fig, os.path.join(RESULTS, "numpy-vs-torch", "numpy-vs-torch.png"))
    rows = "\n".join(
        f"| {e['label']} | {100 * e['metrics']['test_accuracy']:.2f} | "
        f"{sum(e['metrics']['epoch_seconds']):.1f} s | {e['metrics']['wall_time_s']:.1f} s | "
        f"`{e['command']}` |" for e in summary["runs"])
    return f"""Both trainers at the course's defaults on the same data and split. They start from
different random weights (NumPy's and PyTorch's generators differ), so the curves agree in shape
and level, not number for number; `tests/test_pytorch.py` proves that with identical weights the
two give the same loss and gradients to 1e-10.

![NumPy vs PyTorch](numpy-vs-torch/numpy-vs-torch.png)

| trainer | test accuracy % | 10 training epochs (incl. validation) | whole run in-process (data, training, test) | command |
|---|---|---|---|---|
{rows}

Whole-process times, imports and plots included, are in the top-level README's benchmark."""


def section_dead_neurons(summary):
    plt = pyplot()
    entries = summary["runs"]
    layers = len(entries[0]["dead_fraction"])
    width = 0.8 / len(entries)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for i, entry in enumerate(entries):
        ax.bar(np.arange(layers) + (i - (len(entries) - 1) / 2) * width,
               100 * np.array(entry["dead_fraction"]), width, label=entry["label"])
    ax.set_xticks(range(layers), [f"hidden layer {i + 1}" for i in range(layers)])
    ax.set(title="ReLU units that never activate on the 5,000 validation images",
           ylabel="dead units (%)")
    ax.legend()
    save_figure(fig, os.path.join(RESULTS, "dead-neurons", "dead-neurons.png"))
    rows = "\n".join(
        f"| {e['label']} | " + " | ".join(f"{100 * d:.1f}" for d in e["dead_fraction"])
        + f" | {100 * e['metrics']['test_accuracy']:.2f} | `{e['command']}` |" for e in entries)
    header = " | ".join(f"layer {i + 1} dead %" for i in range(layers))
    overall = "; ".join(f"{e['label']}: {100 * np.mean(e['dead_fraction']):.1f} %" for e in entries)
    return f"""A ReLU unit is dead on a data set when its pre-activation is negative for every
input: its output and its gradient are 0 everywhere, so gradient descent can never revive it.
Measured on the 5,000 validation images with the best-validation model of three hidden ReLU
layers (512, 256, 128), 10 epochs, with and without BatchNorm, under the course's SGD at lr 0.1
and under Adam at lr 0.01.

![Dead ReLU units](dead-neurons/dead-neurons.png)

| run | {header} | test accuracy % | command |
|---|{'---|' * layers}---|---|
{rows}

Dead units, averaged over the layers: {overall}. Plain SGD at lr 0.1 takes steps small enough
that no unit is pushed below zero for every input. Adam's steps have about the size of its
learning rate for every weight, whatever its gradient, so early in training it can shift a unit's
weights and bias until the unit is negative everywhere, after which it gets no gradient again.
BatchNorm re-centres each pre-activation over the batch before the ReLU, so a unit can only die
when BatchNorm's own learned shift and scale put it below zero for every input, which is far
rarer: compare the rows with and without it above."""


def accuracy_panel(ax, metrics, title):
    """Train and validation accuracy per epoch, and the test accuracy of the kept epoch."""
    epochs = np.arange(1, len(metrics["val_accuracy"]) + 1)
    ax.plot(epochs, metrics["train_accuracy"], label="train (augmented, dropout)")
    ax.plot(epochs, metrics["val_accuracy"], label="validation")
    ax.axhline(metrics["test_accuracy"], color="gray", ls="--",
               label=f"test (best epoch) {metrics['test_accuracy']:.3f}")
    ax.set(title=title, xlabel="epoch", ylabel="accuracy")


def section_best(summary):
    entries = summary["runs"]
    final = entries[-1]["metrics"]
    fig, ax = pyplot().subplots(figsize=(8, 4.2))
    accuracy_panel(ax, final, "The best MLP: accuracy per epoch")
    ax.legend()
    save_figure(fig, os.path.join(RESULTS, "best", "best.png"))
    rows = "\n".join(
        f"| {i} | {e['label']} | {100 * e['metrics']['test_accuracy']:.2f} | "
        f"{e['metrics']['wall_time_s'] / 60:.1f} min | `{e['command']}` |"
        for i, e in enumerate(entries))
    return f"""How the earlier best recipe (61 %) was found, on the machine named above; the
search below starts from it. Each row adds one change to the row before; the wall time is
the whole run in-process (data, training with a validation pass per epoch, test).

| # | change | test accuracy % | wall time | command |
|---|---|---|---|---|
{rows}

![Best MLP](best/best.png)

The final row reached {100 * final['test_accuracy']:.2f} % test accuracy in
{final['wall_time_s'] / 60:.1f} minutes on {summary['machine']}. Random crops hurt at
10 epochs: a pixel's meaning to an MLP is tied to its position, and crops move every pixel, so the
network has to learn each shifted copy of a pattern on its own. The search's second stage below
shows that they pay off once the runs are long enough. How far the recipes go on a GPU is
unmeasured: these runs used no GPU."""


def section_best_numpy_vs_torch(summary):
    entries = summary["runs"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for entry in entries:
        metrics = entry["metrics"]
        minutes = np.cumsum(metrics["epoch_seconds"]) / 60
        ax.plot(minutes, metrics["val_accuracy"], label=f"{entry['label']} validation")
    ax.set(title="The 61 % recipe, trained by each trainer", xlabel="training minutes",
           ylabel="validation accuracy")
    ax.legend()
    save_figure(fig, os.path.join(RESULTS, "best-numpy-vs-torch", "best-numpy-vs-torch.png"))
    numpy_run, torch_run = (e["metrics"] for e in entries)
    rows = "\n".join(
        f"| {e['label']} | {100 * e['metrics']['test_accuracy']:.2f} | "
        f"{100 * max(e['metrics']['val_accuracy']):.2f} | "
        f"{e['metrics']['wall_time_s'] / 60:.1f} min | `{e['command']}` |" for e in entries)
    gap = 100 * (numpy_run["test_accuracy"] - torch_run["test_accuracy"])
    ratio = numpy_run["wall_time_s"] / torch_run["wall_time_s"]
    return f"""The recipe of `--preset best` (BatchNorm, dropout, AdamW, cosine schedule, label
smoothing, flips) trained once by the NumPy trainer, whose every gradient and optimizer step is
written by hand, and once by the PyTorch trainer, with autograd and torch.optim, on the same
machine one after the other. The two start from different random weights and draw different
dropout masks, so they agree in level, not number for number; the tests prove that with the
same weights and masks they compute the same gradients and steps to 1e-10.

| trainer | test accuracy % | best validation accuracy % | wall time | command |
|---|---|---|---|---|
{rows}

![Best recipe in NumPy and PyTorch](best-numpy-vs-torch/best-numpy-vs-torch.png)

NumPy ends {gap:+.2f} points from PyTorch and takes {ratio:.2f}x its time."""


def minutes_axis(metrics):
    """Minutes since the run started at the end of each epoch: its set-up (data, preprocessing)
    first, then the epochs, validation included."""
    epochs = np.asarray(metrics["epoch_seconds"])
    setup = metrics["wall_time_s"] - epochs.sum()
    return (setup + np.cumsum(epochs)) / 60


def greedy_figure(entries, folder, every_row=False, budget_minutes=None):
    """Validation accuracy against wall-clock minutes: of the rows that were kept, or of every
    row; with the budget the rows share as a vertical line where one is given."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for entry in entries:
        if entry["kept"] or every_row:
            ax.plot(minutes_axis(entry["metrics"]), entry["metrics"]["val_accuracy"],
                    ".-" if entry["kept"] else ".:", label=textwrap.fill(entry["label"], 60))
    if budget_minutes:
        ax.axvline(budget_minutes, color="gray", linestyle="--",
                   label=f"the budget here ({budget_minutes:.2f} minutes)")
    ax.set(title="Validation accuracy against wall-clock minutes, "
           + ("every row (dotted: not kept)" if every_row else "the rows that were kept"),
           xlabel="minutes since the run started", ylabel="validation accuracy")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, os.path.join(RESULTS, folder, f"{folder}.png"))


def kept_labels(entries):
    """The changes a greedy search kept, in order, its starting row left out."""
    return "; ".join(e["label"] for e in entries[1:] if e["kept"]) or "nothing"


def mean_epoch_seconds(entries):
    return "; ".join(f"row {i}: {np.mean(e['metrics']['epoch_seconds']):.1f} s"
                     for i, e in enumerate(entries))


def decision(entry):
    """A greedy row's decision in words: a row over its stage's budget says so."""
    budget = entry.get("budget_minutes")
    if not entry["kept"] and budget and entry["metrics"]["wall_time_s"] / 60 > budget:
        return f"not kept: over the budget of {budget:.2f} min"
    return "kept" if entry["kept"] else "not kept"


def greedy_table(entries):
    """A greedy search set's rows as a markdown table."""
    rows = "\n".join(
        f"| {i} | {e['label']} | {decision(e)} | "
        f"{100 * max(e['metrics']['val_accuracy']):.2f} | {100 * e['metrics']['test_accuracy']:.2f}"
        f" | {e['metrics']['wall_time_s'] / 60:.1f} | `{e['command']}` |"
        for i, e in enumerate(entries))
    return f"""| # | change | decision | best validation % | test % | minutes | command |
|---|---|---|---|---|---|---|
{rows}"""


GREEDY_RULE = """each row tries one change on top of every change kept so far, and keeps it only if it
raises the **best validation accuracy**; otherwise the next row starts again from the last kept
one. The rule is in `experiments.py` and decides by itself: the test set is evaluated once per
row, for this table, and never used to choose. Rows that were not kept stay in the table."""
BUDGET_RULE = """A change also has to keep to the budget of the preset its stage builds, scaled
to this machine (the budget section below): a row whose whole run took longer is not kept, however
accurate, and its decision says so. The starting row is kept whatever it took, as every later row
builds on it."""


def greedy_section(summary, folder, origin, note):
    """The table and the validation-against-minutes figure of a greedy search set whose rows
    all train for the same number of epochs."""
    entries = summary["runs"]
    epochs = entries[0]["flags"]["epochs"]
    greedy_figure(entries, folder)
    return f"""A greedy search from {origin}, every row at {epochs} epochs so that rows compare at
equal cost: {GREEDY_RULE}

{greedy_table(entries)}

![Validation accuracy against minutes]({folder}/{folder}.png)

Kept, in order: {kept_labels(entries)}. {note}"""


def section_search(summary):
    return greedy_section(summary, "search", "the earlier 61 % recipe", """The
minutes column is each whole run in-process; other work shared this 2-core machine during parts
of this stage, so its minutes are upper bounds.""")


def section_search_long(summary):
    return greedy_section(summary, "search-long", "the first stage's recipe",
                          """The first stage's recipe overfits when trained longer (training
accuracy near 99 % at 75 epochs, validation falling after its middle), so this stage, run with
the machine otherwise idle, spends twice the epochs and tries again what trades epochs for less
overfitting. Random crops, not kept at 15 epochs, are tried here again: an MLP has to learn
every shifted position of a pattern separately, which costs epochs before it pays. The rule
compares rows at equal epochs, not equal minutes: the wider first layer was kept although its
epochs cost about 1.8 times as much, and `--preset best` trains the kept recipe for as many
epochs as the budget then allows (40).""")


# --preset best before the third stage (the second stage's recipe at 40 epochs, no projection),
# as the presets set of 2026-11-23 measured it on a 2-core AMD EPYC
UNPROJECTED_BEST = dict(validation=69.12, test=68.83, minutes=13.64, epochs=40)


def budget_line(preset):
    """What the dashed line of a budgeted stage's figure is, or why there is none."""
    budget = budget_here(preset)
    if budget is None:
        return ("The budget on this machine is unknown: run `python -m experiments "
                "budget-reference`.")
    return (f"The dashed line is the {PRESET_BUDGET_MINUTES[preset]}-minute budget of `--preset "
            f"{preset}` on this machine ({budget:.2f} minutes, from the budget section below).")


def section_search_projection(summary):
    entries = summary["runs"]
    greedy_figure(entries, "search-projection", every_row=True,
                  budget_minutes=budget_here("best"))
    before = UNPROJECTED_BEST
    return f"""A greedy search from the second stage's recipe, by the same rule, except that rows
compare at the minutes they take rather than at equal epochs: {GREEDY_RULE} {BUDGET_RULE}

The second stage's first hidden layer, 3072 x 2048 weights, is about three quarters of every
step's work. Here each whitened image, after its crop and flip, is projected onto the top K
principal components that the ZCA whitening found in the training split (`--projection K`: a
fixed first layer, `ProjectionModule` in modules.py), so that the first hidden layer reads K
numbers instead of 3072. The projection costs one (3072 x K) product per image and has no
backward pass.

{greedy_table(entries)}

![Validation accuracy against minutes](search-projection/search-projection.png)

Kept, in order: {kept_labels(entries)}. An epoch with its validation pass took, on
average, {mean_epoch_seconds(entries)}. {budget_line("best")} Before this stage, `--preset best` (the second stage's recipe at
{before['epochs']} epochs with no projection) reached {before['validation']:.2f} % validation and
{before['test']:.2f} % test accuracy in {before['minutes']:.1f} minutes on the same kind of
machine (the presets set of 2026-11-23). `--preset best` now trains the kept recipe."""


def section_search_fast(summary):
    entries = summary["runs"]
    greedy_figure(entries, "search-fast", every_row=True, budget_minutes=budget_here("fast"))
    return f"""A greedy search from the third stage's recipe at the horizon of `--preset fast`, by
the same rule, rows compared at about the same minutes: {GREEDY_RULE} {BUDGET_RULE}

Sixteen epochs of the third stage's recipe are as many as fit 2.5 minutes on a 2-core CPU, against
the {PRESETS['best']['epochs']} that `--preset best` trains it for. Each row therefore makes an
epoch cheaper and spends what that saves on more epochs, so that every row takes about the minutes
of the first: a first hidden layer of 1024 units instead of 2048, fewer principal components, and
batches twice as large with the learning rate doubled (the step count halves, so each step moves
further).

{greedy_table(entries)}

![Validation accuracy against minutes](search-fast/search-fast.png)

Kept, in order: {kept_labels(entries)}. An epoch with its validation pass took, on average,
{mean_epoch_seconds(entries)}. {budget_line("fast")} `--preset fast` trains the kept recipe."""


def budget_factor():
    """(minutes of the earlier --preset best on this machine, that / its reference minutes),
    or None before the budget-reference set has run."""
    if not os.path.exists(os.path.join(RESULTS, "budget-reference", "summary.json")):
        return None
    minutes = load_set("budget-reference")["runs"][0]["metrics"]["wall_time_s"] / 60
    return minutes, minutes / PRESET_REFERENCE_MINUTES


def budget_here(preset):
    """A preset's budget in minutes on this machine, or None before budget-reference has run."""
    factor = budget_factor()
    return factor and PRESET_BUDGET_MINUTES[preset] * factor[1]


def section_budget_reference(summary):
    minutes, factor = budget_factor()
    return f"""The budgets of the presets below are stated for the Intel Xeon of the README's first
benchmark, where the earlier `--preset best` (the 61 % recipe, `{summary['runs'][0]['command']}`)
took {PRESET_REFERENCE_MINUTES} minutes. Here, with the machine otherwise idle, it took {minutes:.1f} minutes and reached
{100 * summary['runs'][0]['metrics']['test_accuracy']:.2f} % test accuracy: a factor of
{factor:.2f}, so the {PRESET_BUDGET_MINUTES['best']}-minute budget of `--preset best` is
{budget_here('best'):.2f} minutes here and the {PRESET_BUDGET_MINUTES['fast']}-minute one of
`--preset fast` {budget_here('fast'):.2f}. The search stages that build the presets keep no change
past these budgets, so this set runs before them."""


PRESET_TARGETS = {"--preset best": (0.72, PRESET_BUDGET_MINUTES["best"]),
                  "--preset fast": (0.64, PRESET_BUDGET_MINUTES["fast"])}


def preset_row(e, factor):
    metrics = e["metrics"]
    target, budget = PRESET_TARGETS.get(e["label"], (None, None))
    return (f"| {e['label']} | `{e['command']}` | {100 * metrics['test_accuracy']:.2f} | "
            f"{f'{100 * target:.0f}' if target else ''} | "
            f"{100 * max(metrics['val_accuracy']):.2f} | {metrics['best_epoch']} of "
            f"{len(metrics['val_accuracy'])} | {metrics['wall_time_s'] / 60:.2f} min | "
            f"{f'{budget * factor:.2f} min' if budget else ''} |")


def preset_verdict(e, factor):
    target, budget = PRESET_TARGETS[e["label"]]
    reached = e["metrics"]["test_accuracy"] >= target
    spare = 1 - e["metrics"]["wall_time_s"] / 60 / (budget * factor)
    return (f"`{e['label']}` {'reaches' if reached else '**does not reach**'} its "
            f"{100 * target:.0f} % target {'within' if spare >= 0 else '**outside**'} its budget "
            f"({100 * abs(spare):.1f} % {'to spare' if spare >= 0 else 'over'})")


def section_presets(summary):
    entries = summary["runs"]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(entries), figsize=(5.5 * len(entries), 4.2), squeeze=False)
    for ax, entry in zip(axes[0], entries):
        accuracy_panel(ax, entry["metrics"], entry["label"])
        ax.legend(fontsize=8)
    save_figure(fig, os.path.join(RESULTS, "presets", "presets.png"))
    budget = budget_factor()
    if budget is None:
        return "The budgets are unknown here: run `python -m experiments budget-reference`."
    factor = budget[1]
    verdicts = "; ".join(preset_verdict(e, factor) for e in entries if e["label"] in PRESET_TARGETS)
    by_label = {e["label"]: e["metrics"] for e in entries}
    numpy_run, torch_run = by_label["--preset best, NumPy"], by_label["--preset best"]
    gap = 100 * (numpy_run["test_accuracy"] - torch_run["test_accuracy"])
    ratio = numpy_run["wall_time_s"] / torch_run["wall_time_s"]
    return f"""The presets, each trained once, on {summary['machine']}, one after the other with the
machine otherwise idle; budgets are scaled by the factor of the section above.

| preset | command | test % | target % | best validation % | best epoch | wall time (in-process) | budget here |
|---|---|---|---|---|---|---|---|
{chr(10).join(preset_row(e, factor) for e in entries)}

![The presets' curves](presets/presets.png)

{verdicts}. Wall time is the run
in-process: data, preprocessing, training with a validation pass per epoch, test, plots;
starting Python and importing torch add about 2 s more. `--preset best` trains the third search
stage's recipe and `--preset fast` the fourth's.

The same `--preset best` by the NumPy trainer, every gradient and optimizer step written by hand:
{100 * numpy_run['test_accuracy']:.2f} % against PyTorch's {100 * torch_run['test_accuracy']:.2f} %
({gap:+.2f} points; target: within 1) in {ratio:.2f}x PyTorch's time (target: at most 1.3x). The two
start from different random weights and draw different dropout masks and crops, so they
agree in level, not number for number; the tests prove that with the same weights and masks they
compute the same gradients and steps to 1e-10."""


def section_learned(summary):
    parts = []
    for entry in summary["runs"]:
        folder = os.path.join("learned", entry["figures"])
        confusion = np.array(entry["metrics"]["test_confusion_matrix"])
        names = entry["metrics"]["class_names"]
        pairs = sorted(((confusion[i, j] + confusion[j, i], names[i], names[j])
                        for i in range(len(names)) for j in range(i + 1, len(names))),
                       reverse=True)[:3]
        per_class = {name: accuracy for name, accuracy
                     in entry["metrics"]["test_per_class_accuracy"].items()
                     if accuracy is not None}  # None: no test image of that class
        worst, best = min(per_class, key=per_class.get), max(per_class, key=per_class.get)
        parts.append(f"""### {entry['label']}: {100 * entry['metrics']['test_accuracy']:.2f} % test

`{entry['command']}`, then `--evaluate` of its model. Most confused pairs (test images of either
class given the other): {', '.join(f'{a}/{b} ({n})' for n, a, b in pairs)}. Hardest class:
{worst} ({100 * per_class[worst]:.1f} %); easiest: {best} ({100 * per_class[best]:.1f} %).

![confusion]({folder}/confusion.png)
![per class]({folder}/per_class.png)
![first-layer weights]({folder}/weights.png)
![confident mistakes]({folder}/mistakes.png)
""")
    return "\n".join(parts) + f"""
{LEARNED_NOTES}"""


def slq_rules(found, scale=1.0):
    """The saved SLQ rules of a Hessian as (nodes / scale, weights) arrays, one pair a probe."""
    return [(np.array(r["nodes"]) / scale, np.array(r["weights"])) for r in found["slq"]]


def share(rules, where):
    """The share of the spectrum on the nodes where(nodes) holds: the mean over the probes."""
    return np.mean([weights[where(nodes)].sum() for nodes, weights in rules])


def tail_masses(rules, threshold):
    """(share below -threshold, share within ±threshold, share above threshold)."""
    below = share(rules, lambda nodes: nodes < -threshold)
    above = share(rules, lambda nodes: nodes > threshold)
    return below, 1 - below - above, above


def hessian_figure(entries, path):
    """Each point's SLQ density against λ / λ_max, smoothed, on a log scale; and the share of
    its spectrum beyond ±x."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    grid = np.linspace(-0.25, 1.05, 2000)
    for entry, color in zip(entries, plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        found = entry["hessian"]
        largest = found["largest"]["value"]
        rules = slq_rules(found, largest)
        density = spectrum.smoothed_density(rules, grid, 0.01)
        axes[0].semilogy(grid, np.maximum(density, 1e-8), color=color,
                         label=f"{entry['label']} (λ_max {largest:.3g})")
        reach = np.geomspace(1e-3, 1, 200)
        axes[1].loglog(reach, [share(rules, lambda nodes: nodes > x) for x in reach],
                       color=color, label=f"{entry['label']}: λ > x λ_max")
        axes[1].loglog(reach, [share(rules, lambda nodes: nodes < -x) for x in reach],
                       "--", color=color, label=f"{entry['label']}: λ < −x λ_max")
    axes[0].axvline(0, color="gray", lw=0.5)
    axes[0].set(title="Eigenvalue density of the Hessian (SLQ, smoothed by 1 % of λ_max)",
                xlabel="eigenvalue λ / λ_max", ylabel="density (log scale)", ylim=(1e-8, None))
    axes[1].set(title="Share of the spectrum beyond ±x λ_max", xlabel="x",
                ylabel="share of eigenvalues", ylim=(1e-6, 1))
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=7)
    save_figure(fig, path)


def section_hessian(summary):
    entries = summary["runs"]
    hessian_figure(entries, os.path.join(RESULTS, "hessian", "hessian.png"))
    first, settings = entries[0]["hessian"], entries[0]["hessian"]["settings"]
    rows = []
    for entry in entries:
        found, metrics = entry["hessian"], entry["metrics"]
        smallest, largest = found["smallest"], found["largest"]
        below, near, above = tail_masses(slq_rules(found), 0.01 * largest["value"])
        rows.append(
            f"| {entry['label']} | {100 * metrics['test_accuracy']:.2f} | {found['loss']:.4f} | "
            f"{found['gradient_norm']:.3f} | {largest['value']:.4g} ({largest['residual']:.0g}) | "
            f"{smallest['value']:.4g} ({smallest['residual']:.0g}) | "
            f"{found['curvature_along_smallest']:.4g} | "
            f"{abs(smallest['value']) / largest['value']:.4f} | {100 * below:.2f} | "
            f"{100 * near:.2f} | {100 * above:.2f} | {found['autograd_relative_error']:.0e} | "
            f"{found['seconds']:.0f} s |")
    return f"""Question 4 asks what the Hessian says about critical points. Here is the Hessian of
the course's own MLP (`train_mlp_numpy.py` at its defaults: one hidden layer of 128 ELU units,
{first['parameters']:,} parameters), at its initial weights, after one epoch and at the epoch with
the best validation accuracy of the default 10. The loss is the mean cross-entropy on a fixed
subset: the first {settings['images']:,} images of the 45,000-image training
split. Every Hessian-vector product comes from the hand-written NumPy backward pass (central
differences of two gradients in float64, `hessian.py`); on each model one product was also
computed by torch's double backward, and the relative difference is in the table. The extreme
eigenvalues are Lanczos's ({settings['lanczos_steps']} steps, with the residual bound ‖Hy − θy‖ in
brackets: an eigenvalue lies that close); the density is stochastic Lanczos quadrature
({settings['probes']} random sign vectors, {settings['slq_steps']} steps each; `spectrum.py`).
The curvature along the smallest eigenvalue's vector u is measured again from loss values alone,
(L(θ + tu) − 2L(θ) + L(θ − tu)) / t² with t = {settings['curvature_step']:g}.

![Hessian spectrum](hessian/hessian.png)

| weights | test % | loss on the subset | ‖∇L‖ | λ_max (residual) | λ_min (residual) | curvature along u, from losses | abs(λ_min) / λ_max | % of spectrum below −1 % of λ_max | % within ±1 % of λ_max | % above +1 % of λ_max | autograd rel. difference | time |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{hessian_text(entries)}"""


def hessian_text(entries):
    """What the table shows, said from its numbers."""
    found = [entry["hessian"] for entry in entries]
    ratios = [abs(f["smallest"]["value"]) / f["largest"]["value"] for f in found]
    negative_everywhere = all(f["smallest"]["value"] < 0 and f["curvature_along_smallest"] < 0
                              for f in found)
    verdict = ("At every point the most negative eigenvalue is confirmed by loss values alone: "
               "the loss curves downward along its vector. By Question 4a a point whose Hessian "
               "has a negative eigenvalue is not a local minimum, so none of these weights is "
               "one, the best epoch's included; their gradient is not zero either (SGD stops "
               "when its epochs run out, not at a critical point)." if negative_everywhere else
               "Not every point has a negative eigenvalue that the loss values confirm: see the "
               "table.")
    below_zero = [spectrum.mass_below(slq_rules(f), 0.0) for f in found]
    below_zero = ", ".join(f"{100 * m.mean():.1f} ± {100 * m.std(ddof=1) / np.sqrt(len(m)):.1f} %"
                           for m in below_zero)
    return f"""Most of the spectrum is flat: at every point nearly all of the density lies within
±1 % of λ_max, the bulk near zero that the smoothed density shows as one tall peak, with
both signs in it. Counted directly below zero, SLQ gives
{below_zero}
(mean ± standard error over the probes) at the three points: mostly that bulk, split across
zero by the quadrature nodes nearest it, which is why the table counts only what lies beyond
±1 % of λ_max. Outside it, the positive side reaches λ_max, and the negative side reaches
{', '.join(f'{100 * r:.1f} %' for r in ratios)} of that at the three points. {verdict}
The proof of 4a, not this measurement, answers the question (derivations.md); the measurement
shows what the statement means for this network. The set took {set_minutes(entries, 'hessian'):.1f}
minutes, training included."""


def set_minutes(entries, measured):
    """Minutes a set took: its runs' wall time and what was measured on each."""
    return sum(e["metrics"]["wall_time_s"] + e[measured]["seconds"] for e in entries) / 60


def goe_rows(goe, min_hits):
    """Per n: the measured fraction and its interval, the coin flips' 2⁻ⁿ, the anchored law,
    and θ estimated from the second difference of log P around n where all three are resolved
    (min_hits or more)."""
    fractions = [row["hits"] / row["samples"] for row in goe]
    lines = []
    for i, row in enumerate(goe):
        theta = ""
        if 0 < i < len(goe) - 1 and all(goe[j]["hits"] >= min_hits for j in (i - 1, i, i + 1)):
            logs = np.log(fractions[i - 1:i + 2])
            theta = f"{-0.5 * (logs[2] - 2 * logs[1] + logs[0]):.3f}"
        lines.append(f"| {row['n']} | {row['hits']:,} / {row['samples']:,} | {fractions[i]:.3g} | "
                     f"{row['low']:.4g} to {row['high']:.4g} | {2.0 ** -row['n']:.3g} | "
                     f"{float(saddles.anchored_law(row['n'])):.3g} | {theta} |")
    return "\n".join(lines)


def saddles_figure(summary, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    goe = summary["goe"]
    n = np.array([row["n"] for row in goe])
    fractions = np.array([row["hits"] / row["samples"] for row in goe])
    low, high = np.array([row["low"] for row in goe]), np.array([row["high"] for row in goe])
    resolved = np.array([row["hits"] for row in goe]) >= summary["settings"]["goe_min_hits"]
    axes[0].errorbar(n[resolved], fractions[resolved],
                     [(fractions - low)[resolved], (high - fractions)[resolved]], fmt="o",
                     capsize=3, label="measured (95 % interval)")
    axes[0].plot(n[~resolved], high[~resolved], "v", color="C0", label="not resolved: upper bound")
    span = np.arange(1, n.max() + 2)
    axes[0].semilogy(span, 2.0 ** -span, "--", label="independent coin flips: 2⁻ⁿ")
    axes[0].semilogy(span, saddles.anchored_law(span), "-",
                     label="exp(−n² ln3/4 − bn + c) (Dean–Majumdar)")
    axes[0].set(title="Random symmetric matrices with all eigenvalues > 0", xlabel="n",
                ylabel="fraction (log scale)")
    axes[0].legend(fontsize=8)
    settings = summary["settings"]
    panels = [(axes[1], summary["quadratic"], settings["lr"], 1.0,
               "f(x, y) = ½(x² − y²): steps to distance 1"),
              (axes[2], summary["network"], settings["network_lr"], summary["network_curvature"],
               "2-layer linear network: steps to halfway down")]
    for ax, rows, lr, rate, title in panels:
        epsilons = np.array([row["epsilon"] for row in rows])
        steps = [np.array(row["steps"], float) for row in rows]
        ax.fill_between(epsilons, [np.percentile(s, 10) for s in steps],
                        [np.percentile(s, 90) for s in steps], alpha=0.3,
                        label="measured, 10th to 90th percentile")
        ax.semilogx(epsilons, [np.median(s) for s in steps], "o-", label="measured, median")
        ax.semilogx(epsilons, saddles.predicted_escape_steps(epsilons, lr, rate), "k--",
                    label=f"log(1/ε) / log(1 + η·{rate:.3g}), η = {lr:g}")
        ax.set(title=title, xlabel="starting distance ε from the saddle",
               ylabel="gradient-descent steps")
        ax.legend(fontsize=8)
    save_figure(fig, path)


def slope_ratio(rows, lr, rate):
    """The measured median steps per unit of log(1/ε), against the closed form's 1/log(1+ηλ)."""
    epsilons = np.array([row["epsilon"] for row in rows])
    medians = [np.median(row["steps"]) for row in rows]
    slope = np.polyfit(np.log(1 / epsilons), medians, 1)[0]
    return slope * np.log(1 + lr * rate)


def section_saddles(summary):
    saddles_figure(summary, os.path.join(RESULTS, "saddles", "saddles.png"))
    settings, goe = summary["settings"], summary["goe"]
    last = goe[-1]
    resolved = [row["n"] for row in goe if row["hits"] >= settings["goe_min_hits"]]
    quadratic = slope_ratio(summary["quadratic"], settings["lr"], 1.0)
    network = slope_ratio(summary["network"], settings["network_lr"],
                          summary["network_curvature"])
    shape = settings["network"]
    return f"""**4b: why saddle points outnumber minima.** At a critical point the Hessian decides:
a minimum needs every eigenvalue positive. Modelled as a random symmetric matrix (GOE:
(A + Aᵀ)/2, A of independent standard normals), how often is that so? {settings['goe_samples']:,}
matrices per size n, counted until a size where fewer than {settings['goe_min_hits']} of them had
only positive eigenvalues: with that many samples a share below about
{settings['goe_min_hits'] / settings['goe_samples']:.0e} is an
interval, not a value: at n = {last['n']}, {last['hits']} of them had (the 95 % interval's top
is drawn as an upper bound). Sizes n = {resolved[0]} to {resolved[-1]} are resolved.

![4b and 4c](saddles/saddles.png)

| n | matrices with all eigenvalues > 0 | fraction | 95 % interval | 2⁻ⁿ (coin flips) | exp(−n² ln3/4 − bn + c) | θ from −½ Δ² log P |
|---|---|---|---|---|---|---|
{goe_rows(goe, settings['goe_min_hits'])}

The hint's coin flips give 2⁻ⁿ, a straight line on the log axis. The measured fraction bends down
from it: log P falls like −θ n², and its second differences (last column) estimate θ near
Dean and Majumdar's large-deviation value ln 3 / 4 = {saddles.DEAN_MAJUMDAR_THETA:.4f} (2006; coin
flips would give 0). The curve with that θ, completed by a linear term and a constant fixed by the
exact P(1) = 1/2 and P(2) = (1 − 1/√2)/2 (derivations.md), predicts the measurements at n ≥ 3
without any fitted parameter. The coin flips overestimate because the signs are not independent:
eigenvalues repel one another while the Gaussian weight holds them near zero, so they spread over
an interval of width about 2√(2n) around it (Wigner's semicircle). All n positive means the whole
repelling crowd pushed to one side of zero at once, a collective move whose log-probability
scales like the crowd's energy, n charges each feeling the other n: of order n², not n. So among
the critical points of a loss in many dimensions almost all are saddles.

**4c: why gradient descent stalls near a saddle.** Near the saddle of f(x, y) = ½(x² − y²), one
gradient step multiplies the downhill coordinate y by 1 + η, so a start at distance ε needs about
log(1/ε) / log(1 + η) steps to get to distance 1: the gradient is as small as the distance, and
the steps are too. Measured from {settings['starts']} starts in random directions at each ε
(η = {settings['lr']:g}), the median follows the closed form with a constant offset: the random
direction's downhill part is ε·|sin φ|, not ε. The same holds at the zero weights of a two-layer
linear network Ŷ = W₂W₁X ({shape['inputs']} inputs, {shape['hidden']} hidden, {shape['outputs']}
outputs, {shape['samples']} samples, loss ‖Ŷ − Y‖²/2N), a saddle whose most negative Hessian
eigenvalue is −s₁ = −{summary['network_curvature']:.3f} (s₁: the largest singular value of YXᵀ/N),
escaped at the rate 1 + η s₁ (η = {settings['network_lr']:g}; {settings['network_starts']} random
starts per ε; "away" means halfway down from the saddle's loss to the lowest one). Steps per
factor e of 1/ε, measured over closed form: {quadratic:.3f} for the quadratic, {network:.3f} for
the network. Every factor of ten closer to the saddle costs the same number of extra steps, and a
network started at exactly zero weights would never move. These ran in
{summary['seconds']:.0f} s."""


def batch_statistics_figure(entry, path):
    plt = pyplot()
    found = entry["batch_statistics"]
    names = found["class_names"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4), gridspec_kw={"width_ratios": [3, 1.3, 3]})
    sizes = [int(size) for size in found["accuracy"]]
    axes[0].semilogx(sizes, [100 * a for a in found["accuracy"].values()], "o-",
                     label="each test batch's own statistics")
    axes[0].axhline(100 * found["running_accuracy"], color="gray", ls="--",
                    label="running statistics (how the trainers test)")
    one = found["classes_at_batch_of_one"]
    if one and "1" in found["accuracy"]:
        at_one = 100 * found["accuracy"]["1"]
        axes[0].annotate(f"batch of 1: every image is\ncalled {names[int(np.argmax(one))]}",
                         (1, at_one), xytext=(1.3, at_one + 8), fontsize=8,
                         arrowprops=dict(arrowstyle="->"))
    axes[0].set(title="Test accuracy against test batch size", xlabel="test batch size",
                ylabel="test accuracy (%)", xticks=sizes, xticklabels=[str(s) for s in sizes])
    axes[0].legend(fontsize=8)
    image = np.array(found["shown_pixels"], np.uint8).transpose(1, 2, 0)
    axes[1].imshow(image, interpolation="nearest")
    axes[1].set_title(f"test image {found['shown_index']}: {names[found['shown_label']]}",
                      fontsize=9)
    axes[1].axis("off")
    counts = np.bincount(found["shown_classes"], minlength=len(names))
    colors = ["C2" if i == found["shown_label"] else "C0" for i in range(len(names))]
    axes[2].bar(range(len(names)), counts, color=colors)
    axes[2].set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes[2].set(title=f"Its class in {len(found['shown_classes'])} random batches of "
                      f"{found['settings']['companions']} (true class in green)\nwith running "
                      f"statistics: {names[found['shown_running_class']]}, in any batch",
                ylabel="batches")
    save_figure(fig, path)


def section_bn_test_time(summary):
    entry = summary["runs"][0]
    found, names = entry["batch_statistics"], entry["batch_statistics"]["class_names"]
    batch_statistics_figure(entry, os.path.join(RESULTS, "bn-test-time", "bn-test-time.png"))
    settings = found["settings"]
    rows = "\n".join(f"| {size} | {found['images'][size]:,} | {100 * accuracy:.2f} |"
                     for size, accuracy in found["accuracy"].items())
    one = found["classes_at_batch_of_one"]
    taken = np.array(found["classes_taken"])
    shown = np.bincount(found["shown_classes"], minlength=len(names))
    same = ("the same as" if found["running_accuracy"] == entry["metrics"]["test_accuracy"]
            else "**not** the same as")
    called = [f"{names[i]} ({n:,})" for i, n in enumerate(one or []) if n]
    batch_of_one = (f"With a batch of one, the {sum(one):,} test images are called "
                    f"{called[0].split(' (')[0] if len(called) == 1 else ', '.join(called)}: "
                    f"every pre-activation minus its batch mean is 0, so every BatchNorm output "
                    f"is β and the network's output is one constant." if one else "")
    return f"""Question 5c: why BatchNorm cannot normalize with the test batch's own statistics.
`{entry['command']}` trained the model; the trainers test it with the running statistics
(evaluation mode): {100 * found['running_accuracy']:.2f} % here, through the trainers' own
`evaluate_model`, {same} the {100 * entry['metrics']['test_accuracy']:.2f} % the run recorded. The
same model was then tested with every BatchNorm layer normalizing each test batch with that
batch's own mean and variance (`batch_statistics.py`; the images in the test set's order, the
remainder that fills no whole batch left out), through the same prediction code.

| test batch size | images | accuracy with batch statistics % |
|---|---|---|
{rows}

![BatchNorm at test time](bn-test-time/bn-test-time.png)

{batch_of_one} With batch statistics, a prediction depends on the other images of the batch: of
the first {len(taken)} test images, each put in {settings['draws']} random batches of
{settings['companions']}, {np.mean(taken > 1) * 100:.1f} % were given more than one class, up to
{taken.max()} different classes. Test image {found['shown_index']} (a {names[found['shown_label']]},
the first of those given the most) was given {np.count_nonzero(shown)} different classes in
{len(found['shown_classes'])} random batches of {settings['companions']}, its own in
{shown[found['shown_label']]} of them; with the running statistics it is called
{names[found['shown_running_class']]}, whatever it is batched with. Larger batches estimate the
statistics better and approach the running ones, but the answer still depends on what else is in
the batch and on how many images arrive at once: a model should give one image one answer.
Running statistics fix the normalization once, after training, for every input. The set took
{set_minutes([entry], 'batch_statistics'):.1f} minutes, training included."""


SECTIONS = {
    "bn": ("BatchNorm or not (2025 Q5f)", section_bn),
    "activations": ("ELU, Tanh or ReLU (2021 Q2.2)", section_activations),
    "numpy-vs-torch": ("NumPy and PyTorch side by side", section_numpy_vs_torch),
    "dead-neurons": ("Dead ReLU units, with and without BatchNorm (2025 Q5d/e)",
                     section_dead_neurons),
    "best": ("How the earlier 61 % recipe was built", section_best),
    "best-numpy-vs-torch": ("The 61 % recipe in NumPy and in PyTorch",
                            section_best_numpy_vs_torch),
    "search": ("The best pure MLP, searched on validation accuracy", section_search),
    "search-long": ("The search's second stage: twice the epochs", section_search_long),
    "search-projection": ("The search's third stage: a cheaper first layer, then more epochs",
                          section_search_projection),
    "search-fast": ("The search's fourth stage: the minutes of --preset fast", section_search_fast),
    "budget-reference": ("The budget on this machine", section_budget_reference),
    "presets": ("The presets against their budgets (10 and 2.5 minutes, scaled to this machine)",
                section_presets),
    "learned": ("What the models learned", section_learned),
    "hessian": ("The Hessian of the course's MLP: negative eigenvalues (2025 Q4a)",
                section_hessian),
    "saddles": ("Saddle points: how many, and how slow to leave (2025 Q4b, Q4c)",
                section_saddles),
    "bn-test-time": ("BatchNorm at test time with batch statistics (2025 Q5c)",
                     section_bn_test_time),
}


def write_report():
    parts = ["# Experiments\n",
             "Generated by `python -m experiments report` from the saved metrics of the runs "
             "below; edit `experiments.py` or `report.py`, not this file. Each set is repeated "
             "with `python -m experiments <set>`, each run with the command in its row.\n"]
    for name, (title, section) in SECTIONS.items():
        if not os.path.exists(os.path.join(RESULTS, name, "summary.json")):
            parts.append(f"## {title}\n\nNot run yet: `python -m experiments {name}`.\n")
            continue
        try:
            summary = load_set(name)
            parts.append(f"## {title}\n\n`{summary['command']}` — run on {summary['date']}, "
                         f"{summary['machine']}. Data: {summary['data']}.\n\n{section(summary)}\n")
        except (UserError, KeyError, TypeError, ValueError, IndexError) as error:
            problem = error if isinstance(error, UserError) else (
                f"{name}/: its files lack what this section reads ({type(error).__name__}: "
                f"{error})")
            print(f"warning: {problem}; the report says so and goes on", file=sys.stderr)
            parts.append(f"## {title}\n\nNot shown: {problem}. Run the set again: "
                         f"`python -m experiments {name}`.\n")
    os.makedirs(RESULTS, exist_ok=True)
    text = "\n".join(parts).encode()
    write_atomically(os.path.join(RESULTS, "README.md"), lambda f: f.write(text))
    print(f"wrote {os.path.join(RESULTS, 'README.md')}")
