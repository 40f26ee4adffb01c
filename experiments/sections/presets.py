"""The presets: the budget on this machine, the presets against their targets and budgets,
--preset best's spread over seeds, and what the course's model and the best one learned."""
import math
import os
import statistics

import numpy as np

from experiments import budget
from experiments.runs import LADDER_RECIPE_KEY, LADDER_RECIPE_NAME
from experiments.sections.search import built_on, last_stage
from experiments.sections.words import ORDINAL_WORDS, TRAINERS_AGREE_TO
from experiments.store import by_key, flags_of, validation_accuracy
from training.options import PRESET_BUDGET_MINUTES

# the test accuracy each preset is to reach: best the level of the best plain MLP in print
# (Lin, Memisevic & Konda 2015; PUBLISHED_MLPS below), fast the same network in a quarter of
# the time
PRESET_TARGETS = {"best": 0.78, "fast": 0.70}
# what --preset best trained by the NumPy trainer is to keep to, against PyTorch's
NUMPY_TARGET_POINTS, NUMPY_TARGET_RATIO = 0.3, 1.3
# Published CIFAR-10 test accuracies of networks with no convolution: (who, accuracy, setting,
# how this report knows it). "read" numbers were read in the text named; "recalled" ones were
# not found in what was read and stay marked so until they are.
PUBLISHED_MLPS = [
    ("Lin, Memisevic & Konda 2015 (arXiv 1511.02580)", "about 70 %",
     "fully connected, with linear bottleneck layers and autoencoder pre-training; no "
     "augmentation", "read: the abstract"),
    ("Lin, Memisevic & Konda 2015", "78 %", "the same, trained on deformed images too",
     "read: the abstract"),
    ("Bachmann, Anagnostidis & Hofmann 2023 (NeurIPS, arXiv 2306.13575)",
     "about 70 % (1000 epochs), about 75 % (5000)",
     "standard and inverted-bottleneck MLPs from scratch with augmentation, on a GPU",
     "recalled: its Table 1 was not in the copy read, whose text says augmentation adds about "
     "20 points and allows up to 5000 epochs without overfitting"),
    ("Urban et al. 2017 (ICLR, arXiv 1603.05691)", "less than 75 %",
     "MLPs distilled from an ensemble of convolutional networks",
     "read: the paper's text as quoted; its Table 2 not read"),
    ("Neyshabur 2020 (NeurIPS, arXiv 2007.13657)", "85.19 % (84.50 % in the NeurIPS abstract)",
     "β-LASSO: a fully connected network that learns local connections, not a plain dense "
     "MLP", "read: both abstracts"),
]


def stated_for(results):
    """The machine the budgets are stated for and what the reference run took there, in words,
    from the best set's summary."""
    if not results.has("best"):
        return (f"the machine that ran the `best` set, where {LADDER_RECIPE_NAME} took "
                f"{budget.PRESET_REFERENCE_MINUTES} minutes (that set is not run here)")
    ladder = results.load("best")
    minutes = by_key(ladder)[LADDER_RECIPE_KEY]["metrics"]["wall_time_s"] / 60
    return (f"{ladder['machine']}, which ran the `best` set on {ladder['date']}: there "
            f"{LADDER_RECIPE_NAME}, the set's last row, took {minutes:.1f} minutes")


def section_budget_reference(summary, experiment_set, results):
    here, factor = f"{budget.reference_minutes(summary):.1f}", budget.factor(summary)
    run = summary["runs"][0]
    best, fast = (PRESET_BUDGET_MINUTES[preset] for preset in ("best", "fast"))
    best_here, fast_here = (budget.preset_budget(preset, factor) for preset in ("best", "fast"))
    return f"""The budgets of the presets below are stated for {stated_for(results)}
(`{run['command']}`). Here, with the machine otherwise idle, it took {here} minutes and reached
{100 * run['metrics']['test_accuracy']:.2f} % test accuracy: a factor of
{factor:.2f}, so the {best}-minute budget of `--preset best` is
{best_here:.2f} minutes here and the {fast}-minute one of
`--preset fast` {fast_here:.2f}. The search stages that build the presets keep no change
past these budgets, so this set runs before them."""


def preset_row(e, factor):
    metrics, target = e["metrics"], PRESET_TARGETS.get(e["key"])
    budget_here = budget.preset_budget(e["key"], factor) if target else None
    return (f"| {e['label']} | `{e['command']}` | {100 * metrics['test_accuracy']:.2f} | "
            f"{f'{100 * target:.0f}' if target else ''} | "
            f"{100 * validation_accuracy(metrics):.2f} | {metrics['best_epoch']} of "
            f"{len(metrics['val_accuracy'])} | {metrics['wall_time_s'] / 60:.2f} min | "
            f"{f'{budget_here:.2f} min' if target else ''} |")


def preset_verdict(e, factor):
    target = PRESET_TARGETS[e["key"]]
    reached = e["metrics"]["test_accuracy"] >= target
    spare = 1 - e["metrics"]["wall_time_s"] / 60 / budget.preset_budget(e["key"], factor)
    within = (f"within its budget ({100 * spare:.1f} % to spare)" if spare >= 0 else
              f"{'but' if reached else 'and'} runs **past** its budget ({-100 * spare:.1f} % over)")
    return (f"`{e['label']}` {'reaches' if reached else '**does not reach**'} its "
            f"{100 * target:.0f} % target {within}")


PRESETS_HEADER = ("| preset | command | test % | target % | validation % | best epoch | "
                  "wall time (in-process) | budget here |\n|---|---|---|---|---|---|---|---|")


def section_presets(summary, experiment_set, results):
    entries = summary["runs"]
    factor = budget.factor_here(results)
    if factor is None:
        return "The budgets are unknown here: run `python -m experiments budget-reference`."
    verdicts = "; ".join(preset_verdict(e, factor) for e in entries if e["key"] in PRESET_TARGETS)
    numpy_run, torch_run = (by_key(summary)[key]["metrics"] for key in ("best-numpy", "best"))
    gap = f'{100 * (numpy_run["test_accuracy"] - torch_run["test_accuracy"]):+.2f}'
    ratio = f'{numpy_run["wall_time_s"] / torch_run["wall_time_s"]:.2f}x'
    within, most = NUMPY_TARGET_POINTS, NUMPY_TARGET_RATIO
    return f"""The presets, each trained once, on {summary['machine']}, one after the other with the
machine otherwise idle; budgets are scaled by the factor of the section above.

{PRESETS_HEADER}
{chr(10).join(preset_row(e, factor) for e in entries)}

![The presets' curves](presets/presets.png)

{verdicts}. Wall time is the run
in-process: data, preprocessing, training with a validation pass per epoch, test, plots;
starting Python and importing torch add about 2 s more. Each preset trains what the last search
stage kept for it ({' and '.join(f'`{last_stage(name)}`' for name in PRESET_BUDGET_MINUTES)}).

The same `--preset best` by the NumPy trainer, every gradient and optimizer step written by hand:
{100 * numpy_run['test_accuracy']:.2f} % against PyTorch's {100 * torch_run['test_accuracy']:.2f} %
({gap} points; target: within {within}) in {ratio} PyTorch's time (target: at most {most}x). The two
train on the same deformed and blended batches but start from different random weights, so they
agree in level, not number for number; the tests prove that with the same weights they compute
the same gradients and steps to {TRAINERS_AGREE_TO}.

{among_published(by_key(summary), summary['machine'])}"""


def among_published(runs, machine):
    """The presets' test accuracies beside the published ones of networks with no convolution."""
    rows = "\n".join(f"| {who} | {accuracy} | {setting} | {known} |"
                     for who, accuracy, setting, known in PUBLISHED_MLPS)
    ours = "; ".join(f"`{runs[key]['command']}` {100 * runs[key]['metrics']['test_accuracy']:.2f} "
                     f"% in {runs[key]['metrics']['wall_time_s'] / 60:.1f} minutes"
                     for key in ("best", "fast"))
    return f"""Among published networks with no convolution, on CIFAR-10's test set:

| work | test accuracy | setting | how this report knows it |
|---|---|---|---|
{rows}

Here, with no teacher, on {machine}: {ours}."""


def section_preset_seeds(summary, experiment_set, results):
    entries, presets_run = list(summary["runs"]), ""
    if results.has("presets"):  # its run of --preset best, at the default seed, is one more
        entries.insert(0, by_key(results.load("presets"))["best"])
        presets_run = (f" Every other number of the presets and of the search stages comes from "
                       f"one run at seed {entries[0]['flags']['seed']}, as the table's first row, "
                       f"the presets set's, does.")
    validation, test = ([100 * accuracy(e["metrics"]) for e in entries]
                        for accuracy in (validation_accuracy, lambda m: m["test_accuracy"]))
    rows = "\n".join(f"| {e['flags']['seed']} | {v:.2f} | {t:.2f} | `{e['command']}` |"
                      for e, v, t in zip(entries, validation, test))
    spread, test_spread = statistics.stdev(validation), statistics.stdev(test)
    apart = math.sqrt(2) * spread  # the standard deviation of the difference of two runs
    closer, decided = close_decisions(results, apart)
    seeds = [str(e["flags"]["seed"]) for e in summary["runs"]]
    target = 100 * PRESET_TARGETS["best"]
    in_deviations = (f" ({(target - statistics.mean(test)) / test_spread:+.1f} standard "
                     f"deviations)" if test_spread else "")
    chosen_on = chosen_seed_rank(entries, validation, test) if presets_run else ""
    return f"""`--preset best` trained again with seeds {', '.join(seeds[:-1])} and {seeds[-1]},
everything else the same, on {summary['machine']}: the seed draws the initial weights, the order
of the batches, the deformations and the mixup partners.{presets_run}

| seed | validation % | test % | command |
|---|---|---|---|
{rows}

Over these {len(entries)} runs validation accuracy is {statistics.mean(validation):.2f} ±
{spread:.2f} % (mean ± standard deviation; {min(validation):.2f} to {max(validation):.2f}) and
test accuracy {statistics.mean(test):.2f} ± {test_spread:.2f} % ({min(test):.2f} to
{max(test):.2f}). The difference between two runs' validation accuracies then has a standard
deviation of about {apart:.2f} points, √2 times one run's: of the {decided} rows the search
stages decided on validation accuracy, {closer} differed from the recipe kept before them by less
than that, within what a change of seed alone could do. The {target:.0f} % target lies
{target - statistics.mean(test):+.2f} points from the mean test accuracy{in_deviations}.
{chosen_on}"""


def chosen_seed_rank(entries, validation, test):
    """Where the presets set's run, the first, the seed the search stages chose on, ranks among
    the runs on validation and on test accuracy, in words."""
    rank_validation, rank_test = (sum(other > accuracies[0] for other in accuracies)
                                  for accuracies in (validation, test))
    selected = (" A recipe chosen on its best validation accuracy at one seed scores lower at "
                "others, on average." if rank_validation == 0 else "")
    return (f"The run at seed {entries[0]['flags']['seed']}, the seed every stage chose on, comes "
            f"{ORDINAL_WORDS[rank_validation]} of these {len(entries)} on validation accuracy "
            f"and {ORDINAL_WORDS[rank_test]} on test accuracy.{selected}")


def close_decisions(results, apart):
    """(how many rows of the greedy search stages at hand were within apart points of validation
    accuracy of the recipe kept before them, how many rows they decided on it): a row past its
    budget was decided on its minutes."""
    from experiments.sets import SETS  # here: the sets are built from these sections
    closer = decided = 0
    for name in (name for name, one in SETS.items() if one.greedy and results.has(name)):
        entries = results.load(name)["runs"]
        for entry in entries[1:]:
            if entry.get("over_budget"):
                continue
            kept = built_on(entries, entry["key"])[1]
            gap = validation_accuracy(entry["metrics"]) - validation_accuracy(kept["metrics"])
            decided += 1
            closer += abs(100 * gap) < apart
    return closer, decided


# What the figures of the learned set show, written after looking at them. It describes the runs
# course-numpy and best-mlp; learned_facts checks what of it their saved numbers can tell, and
# the report shows it only while all of that holds.
LEARNED_NOTES = """What the accuracy alone does not say. The course's model learns colour and
layout: its first-layer templates are smooth blobs, a green or blue centre against a contrasting
surround, and its confident mistakes are images whose colours belong to another class (a bird
against blue sky taken for an airplane, a green-brown cat for a frog). The best MLP reads
ZCA-whitened pixels through their top {k} principal components and was trained on turned,
zoomed, shifted and mirrored copies, and its templates (its first layer seen from the pixels,
W Pᵀ) show it: besides colour blobs, many units are oriented stripes, gratings and chevrons,
local edge detectors of the kind a convolution learns, here spread over whole images. It gains
on every class and cuts the automobile/truck confusions by more than half, but cat/dog stays the
most confused pair, and its most confident mistakes are still judged by background: nearly every
bird on a plain blue sky is called an airplane."""


def confused_pairs(metrics):
    """Pairs of classes by how many test images of either were given the other, most first."""
    confusion, names = np.array(metrics["test_confusion_matrix"]), metrics["class_names"]
    return sorted(((confusion[i, j] + confusion[j, i], names[i], names[j])
                   for i in range(len(names)) for j in range(i + 1, len(names))), reverse=True)


def learned_facts(course, best):
    """Each fact LEARNED_NOTES states that the two runs' saved flags and numbers can tell, and
    whether it holds (a fact about classes CIFAR-10 does not name does not)."""
    flags, metrics = flags_of(best), [course["metrics"], best["metrics"]]
    course_classes, best_classes = (m["test_per_class_accuracy"] for m in metrics)
    measured = [name for name, accuracy in course_classes.items() if accuracy is not None]
    course_pairs, best_pairs = ({(a, b): n for n, a, b in confused_pairs(m)} for m in metrics)
    trucks = ("automobile", "truck")
    return {
        "the best MLP reads ZCA-whitened pixels through principal components":
            flags["normalize"] == "zca" and flags["projection"] > 0,
        "it was trained on turned, zoomed, shifted and mirrored copies":
            flags["augment"] == "deform+flip",
        "it gains on every class": all(best_classes.get(name) is not None
                                       and best_classes[name] > course_classes[name]
                                       for name in measured),
        "it cuts the automobile/truck confusions by more than half": trucks in course_pairs
            and trucks in best_pairs and 2 * best_pairs[trucks] < course_pairs[trucks],
        "cat/dog stays the most confused pair": all(
            confused_pairs(m)[0][1:] == ("cat", "dog") for m in metrics),
    }


def learned_notes(summary):
    """LEARNED_NOTES where every fact it states holds for the saved runs, else which do not."""
    runs = by_key(summary)
    facts = learned_facts(runs["course-numpy"], runs["best-mlp"])
    wrong = [fact for fact, holds in facts.items() if not holds]
    if wrong:
        return (f"The notes written after looking at these figures do not hold for these "
                f"runs ({'; '.join(wrong)}): they are left out until they are written again "
                f"(LEARNED_NOTES in experiments/sections/presets.py).")
    return LEARNED_NOTES.format(k=flags_of(runs["best-mlp"])["projection"])


def section_learned(summary, experiment_set, results):
    parts = []
    for entry in summary["runs"]:
        folder = os.path.join("learned", entry["figures"])
        pairs = confused_pairs(entry["metrics"])[:3]
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
{learned_notes(summary)}"""
