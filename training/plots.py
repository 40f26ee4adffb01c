"""matplotlib for files only, figures written atomically, and a run's two curves."""
import os
import sys

import numpy as np

from safety.files import write_atomically


def matplotlib_for_files():
    """matplotlib, imported to draw files alone. matplotlib refuses to import under an
    MPLBACKEND it does not know; since no window is ever opened, such a value is set aside with
    one warning."""
    chosen = os.environ.get("MPLBACKEND")
    if chosen and "matplotlib" not in sys.modules:
        os.environ["MPLBACKEND"] = "agg"
        try:
            import matplotlib
            matplotlib.rcsetup.validate_backend(chosen)
        except ValueError:
            print(f"warning: MPLBACKEND={chosen} is no backend matplotlib knows; the figures "
                  f"are drawn with Agg", file=sys.stderr)
        finally:
            os.environ["MPLBACKEND"] = chosen
    import matplotlib
    return matplotlib


def subplots(*grid, figsize=None, **settings):
    """(figure, axes) as pyplot.subplots makes them, but of a Figure made without pyplot: it
    needs no display (a headless cluster node), and leaves the process's backend and figures as
    they were (a grader's notebook calling train())."""
    matplotlib_for_files()
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **settings)


def color_cycle():
    """matplotlib's colours in the order its lines take them."""
    return matplotlib_for_files().rcParams["axes.prop_cycle"].by_key()["color"]


def save_figure(fig, path, dpi=110):
    """Write fig to path as PNG through write_atomically: a stop or a full disk mid-write leaves
    the previous figure, never half a new one."""
    fig.tight_layout()
    write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=dpi))


def plot_run(metrics, folder):
    """loss.png (per step and per-epoch mean) and accuracy.png (train, validation) for one run."""
    title = os.path.basename(os.path.normpath(folder))
    steps = np.asarray(metrics["train_loss_steps"], dtype=float)
    epochs = np.arange(1, len(metrics["train_loss"]) + 1)
    steps_per_epoch = len(steps) / max(len(epochs), 1)

    fig, ax = subplots(figsize=(7, 4.5))
    ax.plot(np.arange(1, len(steps) + 1) / steps_per_epoch, steps, lw=0.5, alpha=0.5,
            label="per step")
    ax.plot(epochs, metrics["train_loss"], "o-", label="epoch mean")
    ax.set(title=f"Training loss\n{title}", xlabel="epoch", ylabel="cross-entropy loss")
    ax.legend()
    save_figure(fig, os.path.join(folder, "loss.png"))

    fig, ax = subplots(figsize=(7, 4.5))
    ax.plot(epochs, metrics["train_accuracy"], "o-", label="train")
    ax.plot(epochs, metrics["val_accuracy"], "s-", label="validation")
    if metrics["test_accuracy"] is not None:
        ax.axhline(metrics["test_accuracy"], color="gray", ls="--",
                   label=f"test (best epoch) {metrics['test_accuracy']:.3f}")
    mark_kept_views(ax, metrics)
    ax.set(title=f"Accuracy\n{title}", xlabel="epoch", ylabel="accuracy")
    ax.legend()
    save_figure(fig, os.path.join(folder, "accuracy.png"))


def mark_kept_views(ax, metrics):
    """A star at the kept epoch for the kept model's validation accuracy on every --tta view,
    where that is not the epoch's own (validated on fewer views): the number the test line is
    to be read against."""
    kept, best = metrics.get("kept_val_accuracy"), metrics.get("best_epoch")
    if kept is not None and best and kept != metrics["val_accuracy"][best - 1]:
        ax.plot(best, kept, "*", markersize=12, color="C1",
                label=f"validation, kept model on every --tta view {kept:.3f}")
