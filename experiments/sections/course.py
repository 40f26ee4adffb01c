"""The course's questions on training: BatchNorm or not, which activation, the two trainers side by
side, and dead ReLU units."""
import statistics

import numpy as np

from experiments.sections.words import (
    ACTIVATION_NAMES,
    TRAINERS_AGREE_TO,
    dims_text,
    mean_std,
    number_word,
)
from experiments.store import by_key, flags_of, groups


def seeds_table(summary):
    lines = ["| setting | test accuracy % (mean ± std over seeds) | per seed | command of one "
             "run |", "|---|---|---|---|"]
    for entries in groups(summary).values():
        tests = [e["metrics"]["test_accuracy"] for e in entries]
        per_seed = ", ".join(f"{e['flags']['seed']}: {100 * t:.2f}" for e, t in zip(entries, tests))
        lines.append(f"| {entries[0]['label']} | {mean_std(tests)} | {per_seed} | "
                     f"`{entries[0]['command']}` |")
    return "\n".join(lines)


def section_bn(summary, experiment_set, results):
    by_setting = groups(summary)
    with_bn, without_bn = by_setting["with-batchnorm"], by_setting["without-batchnorm"]
    flags = flags_of(with_bn[0])
    one, units = number_word(len(flags["hidden_dims"])), flags["hidden_dims"][0]
    elu, lr, epochs = ACTIVATION_NAMES[flags["activation"]], f"{flags['lr']:g}", flags["epochs"]
    layer = f"{one} hidden layer of {units}"
    gain = 100 * (statistics.mean(e["metrics"]["test_accuracy"] for e in with_bn)
                  - statistics.mean(e["metrics"]["test_accuracy"] for e in without_bn))
    first_loss = [statistics.mean(e["metrics"]["train_loss"][0] for e in entries)
                  for entries in (with_bn, without_bn)]
    return f"""BatchNorm after each hidden Linear, everything else at the course's defaults ({one}
hidden layer of {units} {elu} units, SGD with lr {lr}, {epochs} epochs), {len(with_bn)} seeds each.

![BatchNorm curves](bn/bn.png)

{seeds_table(summary)}

BatchNorm changes the mean test accuracy by {gain:+.2f} points here. Its clearest effect is in
the first epoch, whose mean training loss is {first_loss[0]:.3f} with it and
{first_loss[1]:.3f} without: normalizing each hidden unit over the batch keeps
the next layer's inputs at a stable scale while the first large SGD steps change the weights.
After that the curves run together; {layer} units gives BatchNorm little depth to
help with, and its batch-statistics noise costs about what it gains."""


def section_activations(summary, experiment_set, results):
    best = max(groups(summary).values(),
               key=lambda entries: statistics.mean(e["metrics"]["test_accuracy"] for e in entries))
    flags = flags_of(best[0])
    setting = (f"{flags['hidden_dims'][0]} hidden units, SGD lr {flags['lr']:g}, "
               f"{flags['epochs']} epochs")
    return f"""The same network and budget ({setting}) with each
hidden nonlinearity, {len(best)} seeds each. **{best[0]['label']}** has the best mean test accuracy.

![Activation curves](activations/activations.png)

{seeds_table(summary)}

ELU and ReLU keep an identity-like slope for positive inputs, so gradients pass undamped; Tanh
saturates at ±1, where its slope vanishes, and its outputs are bounded, which slows learning from
the normalized pixels at this learning rate."""


def section_numpy_vs_torch(summary, experiment_set, results):
    rows = "\n".join(
        f"| {e['label']} | {100 * e['metrics']['test_accuracy']:.2f} | "
        f"{sum(e['metrics']['epoch_seconds']):.1f} s | {e['metrics']['wall_time_s']:.1f} s | "
        f"`{e['command']}` |" for e in summary["runs"])
    header = (f"| trainer | test accuracy % | {flags_of(summary['runs'][0])['epochs']} training "
              "epochs (incl. validation) | whole run in-process (data, training, test) | command |")
    return f"""Both trainers at the course's defaults on the same data and split. They start from
different random weights (NumPy's and PyTorch's generators differ), so the curves agree in shape
and level, not number for number; `tests/test_mlp_pytorch.py` proves that with identical weights the
two give the same loss and gradients to {TRAINERS_AGREE_TO}.

![NumPy vs PyTorch](numpy-vs-torch/numpy-vs-torch.png)

{header}
|---|---|---|---|---|
{rows}

Whole-process times, imports and plots included, are what `python -m benchmarks.benchmark`
measures ([docs/experiments.md](../docs/experiments.md#speed-and-memory))."""


def section_dead_neurons(summary, experiment_set, results):
    entries = summary["runs"]
    layers = len(entries[0]["dead_fraction"])
    rows = "\n".join(
        f"| {e['label']} | " + " | ".join(f"{100 * d:.1f}" for d in e["dead_fraction"])
        + f" | {100 * e['metrics']['test_accuracy']:.2f} | `{e['command']}` |" for e in entries)
    header = " | ".join(f"layer {i + 1} dead %" for i in range(layers))
    overall = "; ".join(f"{e['label']}: {100 * np.mean(e['dead_fraction']):.1f} %" for e in entries)
    sgd, adam = (flags_of(by_key(summary)[key]) for key in ("sgd", "adam"))
    images, dims, epochs = f"{sgd['validation_size']:,}", sgd["hidden_dims"], sgd["epochs"]
    three, sizes, lr, adam_lr = number_word(len(dims)), dims_text(dims), f"{sgd['lr']:g}", \
        f"{adam['lr']:g}"
    return f"""A ReLU unit is dead on a data set when its pre-activation is negative for every
input: its output and its gradient are 0 everywhere, so gradient descent can never revive it.
Measured on the {images} validation images with the best-validation model of {three} hidden ReLU
layers ({sizes}), {epochs} epochs, with and without BatchNorm, under the course's SGD at lr {lr}
and under Adam at lr {adam_lr}.

![Dead ReLU units](dead-neurons/dead-neurons.png)

| run | {header} | test accuracy % | command |
|---|{'---|' * layers}---|---|
{rows}

Dead units, averaged over the layers: {overall}. Plain SGD at lr {lr} takes steps small enough
that no unit is pushed below zero for every input. Adam's steps have about the size of its
learning rate for every weight, whatever its gradient, so early in training it can shift a unit's
weights and bias until the unit is negative everywhere, after which it gets no gradient again.
BatchNorm re-centres each pre-activation over the batch before the ReLU, so a unit can only die
when BatchNorm's own learned shift and scale put it below zero for every input, which is far
rarer: compare the rows with and without it above."""
