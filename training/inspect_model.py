"""What a trained model learned, for both trainers: per-class numbers for metrics.json, and the
four figures `--evaluate` draws beside the weights it read.

    confusion.png   the test confusion matrix, rows normalized, counts and percentages in cells
    per_class.png   test accuracy of each class, with the overall accuracy as a line
    weights.png     the first Linear layer's rows as 32x32 colour images (up to 64 units)
    mistakes.png    the test images the model got wrong with the highest confidence"""
import math
import os

import numpy as np

from safety.console import say
from safety.errors import UserError
from training.plots import save_figure, subplots

MAX_TEMPLATES = 64
MAX_MISTAKES = 24


def confusion_matrix(labels, predictions, num_classes):
    """counts[i, j]: images of true class i predicted as class j; (num_classes, num_classes)."""
    return np.bincount(np.asarray(labels) * num_classes + np.asarray(predictions),
                       minlength=num_classes ** 2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion):
    """The diagonal over each row's total; a class with no images gets NaN, not a division error."""
    totals = confusion.sum(axis=1)
    return np.divide(np.diag(confusion), totals, out=np.full(len(totals), np.nan),
                     where=totals > 0)


def test_metrics(labels, predictions, class_names):
    """The metrics.json entries of a run's test pass: accuracy, confusion matrix, per class."""
    confusion = confusion_matrix(labels, predictions, len(class_names))
    return {"test_accuracy": float(np.trace(confusion) / confusion.sum()),
            "test_confusion_matrix": confusion.tolist(),
            "test_per_class_accuracy": {name: None if math.isnan(value) else float(value)
                                        for name, value in zip(class_names,
                                                               per_class_accuracy(confusion))},
            "class_names": list(class_names)}


def per_class_table(confusion, class_names):
    """The per-class test accuracy as aligned text lines, worst class first."""
    accuracies = per_class_accuracy(confusion)
    width = max(map(len, class_names))
    lines = [f"{'class':<{width}}  test accuracy  images"]
    for index in np.argsort(accuracies):
        lines.append(f"{class_names[index]:<{width}}  {accuracies[index]:13.4f}  "
                     f"{confusion[index].sum():6d}")
    lines.append(f"{'all':<{width}}  {np.trace(confusion) / confusion.sum():13.4f}  "
                 f"{confusion.sum():6d}")
    return "\n".join(lines)


def as_picture(image):
    """uint8 (3, H, W) as stored -> (H, W, 3) as matplotlib shows it."""
    return np.transpose(image, (1, 2, 0))


def draw_confusion(confusion, class_names, path):
    rows = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = subplots(figsize=(8.4, 7.2))
    shown = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    for (i, j), share in np.ndenumerate(rows):
        ax.text(j, i, f"{confusion[i, j]}\n{100 * share:.0f}%", ha="center", va="center",
                fontsize=7, color="white" if share > 0.5 else "black")
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"Test confusion matrix (rows sum to 100 %), accuracy "
                 f"{np.trace(confusion) / confusion.sum():.3f}")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    save_figure(fig, path)


def draw_per_class(confusion, class_names, path):
    accuracies = per_class_accuracy(confusion)
    overall = np.trace(confusion) / confusion.sum()
    fig, ax = subplots(figsize=(8, 4.2))
    bars = ax.bar(class_names, accuracies, color="tab:blue")
    ax.bar_label(bars, labels=[f"{a:.2f}" for a in accuracies], fontsize=8)
    ax.axhline(overall, color="tab:red", ls="--", label=f"all classes {overall:.3f}")
    ax.set(ylim=(0, 1.05), ylabel="test accuracy", title="Test accuracy per class")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(loc="lower right")
    save_figure(fig, path)


def image_grid(count, columns, cell_size):
    """A figure of at least one row of `columns` empty, axis-less cells for count images."""
    rows = max(1, math.ceil(count / columns))
    fig, axes = subplots(rows, columns, squeeze=False,
                         figsize=(cell_size[0] * columns, cell_size[1] * rows + 0.5))
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def draw_templates(weights, path):
    """weights: (units, 3072), the first Linear layer's W; each row shown as a 32x32 image,
    rescaled to its own range, as CS231n shows learned templates."""
    shown = weights[:MAX_TEMPLATES]
    fig, axes = image_grid(len(shown), min(8, len(shown)), (1.1, 1.15))
    for unit, (ax, row) in enumerate(zip(axes.flat, shown)):
        low, high = row.min(), row.max()
        ax.imshow(as_picture(((row - low) / max(high - low, 1e-12)).reshape(3, 32, 32)),
                  interpolation="nearest")
        ax.set_title(f"unit {unit}", fontsize=7)
    fig.suptitle(f"First-layer weights as images ({len(shown)} of {len(weights)} units, "
                 f"each scaled to its own range)", fontsize=9)
    save_figure(fig, path, dpi=80)  # pixels of noise compress badly: keep the file small


def most_confident_mistakes(labels, probabilities, count=MAX_MISTAKES):
    """(indices of the count wrong predictions made with the highest probability, most
    confident first; how many predictions are wrong)."""
    confidence = probabilities.max(axis=1)
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != labels)
    return wrong[np.argsort(-confidence[wrong], kind="stable")][:count], len(wrong)


def draw_mistakes(images, labels, probabilities, class_names, path):
    """The wrong predictions made with the highest probability, with true and predicted class."""
    predictions = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    worst, mistakes = most_confident_mistakes(labels, probabilities)
    fig, axes = image_grid(len(worst), 6, (1.9, 2.5))
    for ax, index in zip(axes.flat, worst):
        ax.imshow(as_picture(images[index]))
        ax.set_title(f"true: {class_names[labels[index]]}\npredicted: "
                     f"{class_names[predictions[index]]}\np = {confidence[index]:.2f}",
                     fontsize=7.5)
    fig.suptitle(f"The {len(worst)} most confident mistakes on the test set "
                 f"(of {mistakes} mistakes)", fontsize=9)
    save_figure(fig, path)


FIGURES = ("confusion.png", "per_class.png", "weights.png", "mistakes.png")


def report(weights_path, validation_accuracy, test_split, probabilities, first_layer_weights,
           class_names, folder=None):
    """What --evaluate shows: the accuracies and per-class table printed, and the four figures
    written to folder, or beside the weights. test_split holds the uint8 images, shown as a person
    sees them."""
    confusion = confusion_matrix(test_split.labels, probabilities.argmax(axis=1), len(class_names))
    say(f"{weights_path}: validation accuracy {validation_accuracy:.4f}, test accuracy "
        f"{np.trace(confusion) / confusion.sum():.4f}")
    say(per_class_table(confusion, class_names))
    folder = folder or os.path.dirname(os.path.abspath(weights_path))
    try:
        confusion_png, per_class_png, weights_png, mistakes_png = (
            os.path.join(folder, name) for name in FIGURES)
        draw_confusion(confusion, class_names, confusion_png)
        draw_per_class(confusion, class_names, per_class_png)
        draw_templates(first_layer_weights, weights_png)
        draw_mistakes(test_split.images, test_split.labels, probabilities, class_names,
                      mistakes_png)
    except OSError as error:
        raise UserError(f"the figures could not be written ({error}); give --figures_dir a "
                        f"folder you can write to") from None
    say(f"figures: {', '.join(FIGURES)} in {folder}")
