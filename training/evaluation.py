"""Predictions and accuracy over a loader, for both trainers, and --evaluate of a saved model."""
import copy
import json
import os

import numpy as np

from dataset.batch_files import class_names
from dataset.cifar10 import IMAGE_SHAPE
from dataset.loaders import DataLoader, make_loaders
from dataset.splits import get_cifar10
from safety.files import check_writable
from training import inspect_model
from training.options import Config
from training.preprocessing import IDENTITY, TTA_VIEWS, Preprocessing, view
from training.resume import check_same_data, fingerprints
from training.saved_model import (
    check_holds_its_parameters,
    load_weights,
    not_a_saved_model,
    resolve_record,
    saved_components,
)


def predict(model, data_loader, tta, probabilities_of):
    """(probabilities (N, C), labels (N,)) as NumPy arrays of probabilities_of(images) over
    data_loader in order, in eval mode (BatchNorm's running statistics, no dropout), the mode
    restored after; each image's probabilities are the mean over the views of it that tta
    (preprocessing.TTA_VIEWS) names, each made as the loader stores the image."""
    was_training = model.training
    model.eval()
    views = TTA_VIEWS[tta or "none"]
    total = 0
    for each in views:
        batches = [[part if isinstance(part, np.ndarray) else part.cpu().numpy()
                    for part in (probabilities_of(images), labels)]
                   for images, labels in viewed(data_loader, each)]
        probabilities, labels = (np.concatenate(parts) for parts in zip(*batches))
        total = total + probabilities
    model.train(was_training)
    return total / len(views), labels


def viewed(data_loader, each):
    """data_loader's batches, each seen as the view each (preprocessing.view's flags) shows it.
    A dataset.loaders.DataLoader makes the view of every batch as it stores it, before
    normalization, in order and with no augmentation; any other iterable of (images, labels)
    (the course's graders may pass one) is viewed batch by batch as it comes."""
    if isinstance(data_loader, DataLoader):
        loader = copy.copy(data_loader)
        loader.shuffle, loader.transform = False, lambda images, rng: view(images, **each)
        return loader
    if each == IDENTITY:
        return data_loader
    return ((view_of_batch(images, each), labels) for images, labels in data_loader)


def view_of_batch(images, each):
    """The view each of images (B, 3, 32, 32), or of images flattened to (B, 3072), kept flat as
    it came: a flattened image is no picture to move or mirror."""
    if images.ndim == 2:
        return view(images.reshape(len(images), *IMAGE_SHAPE), **each).reshape(len(images), -1)
    return view(images, **each)


def accuracy_of(probabilities, labels):
    """The share of rows of probabilities (N, C) whose largest entry is at the label: labels (N,)
    of integers, or one-hot rows (N, C) as some of the course's editions give them."""
    labels = np.asarray(labels)
    if labels.shape == probabilities.shape:
        labels = labels.argmax(axis=1)
    if labels.shape != probabilities.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{labels.dtype} labels of shape {labels.shape} for predictions of shape "
                         f"{probabilities.shape}: give ({len(probabilities)},) integer labels or "
                         f"one-hot rows of the predictions' shape")
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def check_the_runs_data(path, dataset, data_dir):
    """Refuse to test a saved model on other data than its run trained on, as the metrics.json
    beside it records it: the accuracies would be another dataset's. A model with no readable
    record beside it (copied elsewhere, or saved by a script) is tested on the data given."""
    metrics = os.path.join(os.path.dirname(os.path.abspath(path)), "metrics.json")
    try:
        with open(metrics) as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        return
    if isinstance(recorded, dict) and "data_sha256" in recorded:
        check_same_data(data_dir, recorded, fingerprints(dataset), f"the run's {metrics}")


def evaluate_saved(path, given_flags, flags, read_weights, build_model, predict, move=None,
                   figures_dir=None):
    """--evaluate: print a saved model's accuracies and draw inspect_model's figures in
    figures_dir, or beside the model. The model is rebuilt as it records, which the flags the user
    gave must not contradict, by the trainer's functions (build_model(record, components));
    move(split) puts a split where the model lives."""
    config = Config.of(None, flags)
    if figures_dir is not None:
        check_writable(figures_dir, "--figures_dir")
    state, saved_record, arrays = read_weights(path)
    record = resolve_record(path, saved_record, config.record(), given_flags)
    recorded = saved_record is not None  # without a record, the flags describe the model
    if recorded:  # the flags' model is checked by its shapes alone
        check_holds_its_parameters(path, state, record)
    model = build_model(record, saved_components(path, state, record))
    load_weights(model, state, path, recorded)
    try:
        preprocessing = Preprocessing.load(record["normalize"], arrays)
    except ValueError as error:
        raise not_a_saved_model(path, str(error)) from None
    dataset = get_cifar10(config.data_dir, record["validation_size"], url=config.data_url)
    check_the_runs_data(path, dataset, config.data_dir)
    loaders = make_loaders(dataset, preprocessing, move=move)
    validation_accuracy = accuracy_of(*predict(model, loaders["validation"], record["tta"]))
    probabilities, _ = predict(model, loaders["test"], record["tta"])
    if figures_dir is not None:
        os.makedirs(figures_dir, exist_ok=True)
    inspect_model.report(path, validation_accuracy, dataset["test"], probabilities,
                         model.input_filters(), class_names(config.data_dir), figures_dir)
