"""The report's figures, each drawn from a set's saved summary alone: figure(summary, path) writes
the PNG that the set's section shows."""
import functools
import textwrap

import numpy as np

from experiments.runs import LADDER_RECIPE_KEY, LADDER_RECIPE_NAME
from experiments.store import by_key, flags_of, groups, validation_accuracy
from questions import saddles, spectrum
from training.plots import color_cycle, mark_kept_views, save_figure, subplots

SMOOTHING = 0.01  # the Hessian's density is smoothed by this share of its largest eigenvalue


def curves_figure(title, summary, path):
    """Validation accuracy and training loss per epoch: a thin line per run, a thick mean."""
    fig, axes = subplots(1, 2, figsize=(11, 4.2))
    for color, entries in zip(color_cycle(),
                              groups(summary).values()):
        for ax, key in zip(axes, ("val_accuracy", "train_loss")):
            series = np.array([e["metrics"][key] for e in entries])
            epochs = np.arange(1, series.shape[1] + 1)
            for line in series:
                ax.plot(epochs, line, color=color, lw=0.7, alpha=0.35)
            ax.plot(epochs, series.mean(axis=0), color=color, lw=2,
                    label=f"{entries[0]['label']} (n={len(entries)})")
    axes[0].set(title="Validation accuracy", xlabel="epoch", ylabel="accuracy")
    axes[1].set(title="Training loss (epoch mean)", xlabel="epoch", ylabel="cross-entropy")
    for ax in axes:
        ax.legend()
    fig.suptitle(title)
    save_figure(fig, path)


def curves(title):
    """The curves figure with that title."""
    return functools.partial(curves_figure, title)


def numpy_vs_torch_figure(summary, path):
    fig, axes = subplots(1, 2, figsize=(11, 4.2))
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
    save_figure(fig, path)


def dead_neurons_figure(summary, path):
    entries = summary["runs"]
    layers = len(entries[0]["dead_fraction"])
    width = 0.8 / len(entries)
    fig, ax = subplots(figsize=(8, 4.2))
    for i, entry in enumerate(entries):
        ax.bar(np.arange(layers) + (i - (len(entries) - 1) / 2) * width,
               100 * np.array(entry["dead_fraction"]), width, label=entry["label"])
    ax.set_xticks(range(layers), [f"hidden layer {i + 1}" for i in range(layers)])
    ax.set(title="ReLU units that never activate on the "
                 f"{flags_of(entries[0])['validation_size']:,} validation images",
           ylabel="dead units (%)")
    ax.legend()
    save_figure(fig, path)


def accuracy_panel(ax, metrics, title):
    """Train and validation accuracy per epoch, and the kept epoch's test accuracy and, with
    more --tta views than its epochs had, validation accuracy."""
    epochs = np.arange(1, len(metrics["val_accuracy"]) + 1)
    config = metrics["config"]
    training = [*(["augmented"] if config["augment"] != "none" else []),
                *(["dropout"] if config["dropout"] else [])]
    ax.plot(epochs, metrics["train_accuracy"],
            label=f"train ({', '.join(training)})" if training else "train")
    ax.plot(epochs, metrics["val_accuracy"], label="validation")
    ax.axhline(metrics["test_accuracy"], color="gray", ls="--",
               label=f"test (best epoch) {metrics['test_accuracy']:.3f}")
    mark_kept_views(ax, metrics)
    ax.set(title=title, xlabel="epoch", ylabel="accuracy")


def best_figure(summary, path):
    """The curves of the recipe the ladder ends in."""
    fig, ax = subplots(figsize=(8, 4.2))
    accuracy_panel(ax, by_key(summary)[LADDER_RECIPE_KEY]["metrics"],
                   f"{LADDER_RECIPE_NAME.capitalize()}: accuracy per epoch")
    ax.legend()
    save_figure(fig, path)


def best_numpy_vs_torch_figure(summary, path):
    fig, ax = subplots(figsize=(8, 4.2))
    for entry in summary["runs"]:
        metrics = entry["metrics"]
        minutes = np.cumsum(metrics["epoch_seconds"]) / 60
        ax.plot(minutes, metrics["val_accuracy"], label=f"{entry['label']} validation")
    ax.set(title=f"{LADDER_RECIPE_NAME.capitalize()}, trained by each trainer",
           xlabel="training minutes",
           ylabel="validation accuracy")
    ax.legend()
    save_figure(fig, path)


def minutes_axis(metrics):
    """Minutes since the run started at the end of each epoch: its set-up (data, preprocessing)
    first, then the epochs, validation included."""
    epochs = np.asarray(metrics["epoch_seconds"])
    setup = metrics["wall_time_s"] - epochs.sum()
    return (setup + np.cumsum(epochs)) / 60


def greedy_figure(summary, path, every_row=False):
    """Validation accuracy against wall-clock minutes: of the rows that were kept, or of every
    row; with the budget its rows were held to as a vertical line where they had one."""
    entries = summary["runs"]
    budget_minutes = entries[0].get("budget_minutes")
    fig, ax = subplots(figsize=(9, 4.8))
    views_labelled = False
    for entry in entries:
        if entry["kept"] or every_row:
            metrics = entry["metrics"]
            label = textwrap.fill(entry["label"].replace("`", ""), 60)  # no Markdown here
            (line,) = ax.plot(minutes_axis(metrics), metrics["val_accuracy"],
                              ".-" if entry["kept"] else ".:", label=label)
            # a kept model validated on more views than its epochs were: a star at the run's end
            kept = validation_accuracy(metrics)
            if kept != max(metrics["val_accuracy"]):
                ax.plot(metrics["wall_time_s"] / 60, kept, "*",
                        markersize=12, color=line.get_color(),
                        label=None if views_labelled else "the kept model on every --tta view")
                views_labelled = True
    if budget_minutes:
        ax.axvline(budget_minutes, color="gray", linestyle="--",
                   label=f"the budget when the stage ran ({budget_minutes:.2f} minutes)")
    ax.set(title="Validation accuracy against wall-clock minutes, "
           + ("every row (dotted: not kept)" if every_row else "the rows that were kept"),
           xlabel="minutes since the run started", ylabel="validation accuracy")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def every_row_figure(summary, path):
    greedy_figure(summary, path, every_row=True)


def presets_figure(summary, path):
    entries = summary["runs"]
    fig, axes = subplots(1, len(entries), figsize=(5.5 * len(entries), 4.2),
                         squeeze=False)
    for ax, entry in zip(axes[0], entries):
        accuracy_panel(ax, entry["metrics"], entry["label"])
        ax.legend(fontsize=8)
    save_figure(fig, path)


def slq_rules(found, scale=1.0):
    """The saved SLQ rules of a Hessian as (nodes / scale, weights) arrays, one pair a probe."""
    return [(np.array(r["nodes"]) / scale, np.array(r["weights"])) for r in found["slq"]]


def share(rules, where):
    """The share of the spectrum on the nodes where(nodes) holds: the mean over the probes."""
    return np.mean([weights[where(nodes)].sum() for nodes, weights in rules])


def hessian_figure(summary, path):
    """Each point's SLQ density against λ / λ_max, smoothed, on a log scale; and the share of
    its spectrum beyond ±x."""
    fig, axes = subplots(1, 2, figsize=(12, 4.4))
    grid = np.linspace(-0.25, 1.05, 2000)
    for entry, color in zip(summary["runs"], color_cycle()):
        found = entry["hessian"]
        largest = found["largest"]["value"]
        rules = slq_rules(found, largest)
        density = spectrum.smoothed_density(rules, grid, SMOOTHING)
        axes[0].semilogy(grid, np.maximum(density, 1e-8), color=color,
                         label=f"{entry['label']} (λ_max {largest:.3g})")
        reach = np.geomspace(1e-3, 1, 200)
        axes[1].loglog(reach, [share(rules, lambda nodes: nodes > x) for x in reach],
                       color=color, label=f"{entry['label']}: λ > x λ_max")
        axes[1].loglog(reach, [share(rules, lambda nodes: nodes < -x) for x in reach],
                       "--", color=color, label=f"{entry['label']}: λ < −x λ_max")
    axes[0].axvline(0, color="gray", lw=0.5)
    axes[0].set(title="Eigenvalue density of the Hessian (SLQ, smoothed by "
                      f"{100 * SMOOTHING:g} % of λ_max)",
                xlabel="eigenvalue λ / λ_max", ylabel="density (log scale)", ylim=(1e-8, None))
    axes[1].set(title="Share of the spectrum beyond ±x λ_max", xlabel="x",
                ylabel="share of eigenvalues", ylim=(1e-6, 1))
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=7)
    save_figure(fig, path)


def goe_panel(ax, summary):
    """4b: the share of GOE matrices with all eigenvalues positive, against two laws."""
    goe = summary["goe"]
    n = np.array([row["n"] for row in goe])
    fractions = np.array([row["hits"] / row["samples"] for row in goe])
    low, high = np.array([row["low"] for row in goe]), np.array([row["high"] for row in goe])
    resolved = np.array([row["hits"] for row in goe]) >= summary["settings"]["goe_min_hits"]
    ax.errorbar(n[resolved], fractions[resolved],
                [(fractions - low)[resolved], (high - fractions)[resolved]], fmt="o",
                capsize=3, label="measured (95 % interval)")
    ax.plot(n[~resolved], high[~resolved], "v", color="C0", label="not resolved: upper bound")
    span = np.arange(1, n.max() + 2)
    ax.semilogy(span, 2.0 ** -span, "--", label="independent coin flips: 2⁻ⁿ")
    ax.semilogy(span, saddles.anchored_law(span), "-",
                label="exp(−n² ln3/4 − bn + c) (Dean–Majumdar)")
    ax.set(title="Random symmetric matrices with all eigenvalues > 0", xlabel="n",
           ylabel="fraction (log scale)")
    ax.legend(fontsize=8)


def escape_panel(ax, rows, lr, rate, title):
    """4c: the steps to get away from a saddle by starting distance, against the closed form."""
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


def saddles_figure(summary, path):
    fig, axes = subplots(1, 3, figsize=(16, 4.6))
    goe_panel(axes[0], summary)
    settings = summary["settings"]
    escape_panel(axes[1], summary["quadratic"], settings["lr"], 1.0,
                 "f(x, y) = ½(x² − y²): steps to distance 1")
    escape_panel(axes[2], summary["network"], settings["network_lr"],
                 summary["network_curvature"], "2-layer linear network: steps to halfway down")
    save_figure(fig, path)


def batch_size_panel(ax, found):
    """5c: test accuracy with each batch's own statistics against the running ones."""
    names = found["class_names"]
    sizes = [int(size) for size in found["accuracy"]]
    ax.semilogx(sizes, [100 * a for a in found["accuracy"].values()], "o-",
                label="each test batch's own statistics")
    ax.axhline(100 * found["running_accuracy"], color="gray", ls="--",
               label="running statistics (how the trainers test)")
    one = found["classes_at_batch_of_one"]
    if one and "1" in found["accuracy"]:
        at_one = 100 * found["accuracy"]["1"]
        ax.annotate(f"batch of 1: every image is\ncalled {names[int(np.argmax(one))]}",
                    (1, at_one), xytext=(1.3, at_one + 8), fontsize=8,
                    arrowprops=dict(arrowstyle="->"))
    ax.set(title="Test accuracy against test batch size", xlabel="test batch size",
           ylabel="test accuracy (%)", xticks=sizes, xticklabels=[str(s) for s in sizes])
    ax.legend(fontsize=8)


def batch_statistics_figure(summary, path):
    found = summary["runs"][0]["batch_statistics"]
    names = found["class_names"]
    fig, axes = subplots(1, 3, figsize=(16, 4.4),
                         gridspec_kw={"width_ratios": [3, 1.3, 3]})
    batch_size_panel(axes[0], found)
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
