"""Question 5c in numbers: a BatchNorm model tested with each test batch's own statistics instead
of the running ones that training kept.

With batch statistics an image's prediction depends on the images it is batched with, and with a
batch of one it is lost altogether: x - μ = 0 for every feature, so every normalized
pre-activation is β and every image gets the same output. The trainers test with the running
statistics (training.evaluation.predict in eval mode); this module swaps each BatchNorm1d
of a copy of the model for the batch-statistics formula and runs the same evaluation path."""
import copy

import numpy as np
import torch
from torch import nn

from dataset.loaders import DataLoader
from dataset.splits import Split
from training.evaluation import predict


class BatchStatisticsNorm(nn.Module):
    """y = γ (x - μ_B) / √(σ²_B + eps) + β with the batch's own mean μ_B and biased variance
    σ²_B, in training and evaluation alike, for every batch size: what BatchNorm1d computes in
    training mode, without touching the running statistics, and defined for a batch of one
    (torch refuses it), where it gives β."""

    def __init__(self, batch_norm):
        super().__init__()
        self.weight, self.bias, self.eps = batch_norm.weight, batch_norm.bias, batch_norm.eps

    def forward(self, x):
        mean = x.mean(dim=0, keepdim=True)
        variance = ((x - mean) ** 2).mean(dim=0, keepdim=True)
        return self.weight * (x - mean) / torch.sqrt(variance + self.eps) + self.bias


def with_batch_statistics(model):
    """A copy of the PyTorch MLP whose every BatchNorm1d normalizes with batch statistics."""
    twin = copy.deepcopy(model)
    for index, layer in enumerate(twin.layers):
        if isinstance(layer, nn.BatchNorm1d):
            twin.layers[index] = BatchStatisticsNorm(layer)
    return twin


@torch.no_grad()
def probabilities_and_labels(model, data_loader):
    """The trainers' prediction path (training.evaluation.predict) with the PyTorch trainer's
    softmax of the logits."""
    return predict(model, data_loader, None, lambda images: torch.softmax(model(images), dim=1))


def loader(split, preprocessing, batch_size):
    """The split's images in order, in batches of exactly batch_size (the remainder left out:
    a smaller last batch would be normalized with other statistics), preprocessed as the
    trainers do."""
    images, preprocess = preprocessing.prepare(split.images)
    return DataLoader(Split(images, split.labels), batch_size, drop_last=True, return_numpy=False,
                      preprocess=preprocess)


def accuracy_by_batch_size(model, split, preprocessing, batch_sizes):
    """{batch size: (accuracy with batch statistics, the classes predicted (N,))} over the
    images of every full batch; sizes larger than the split are left out."""
    twin = with_batch_statistics(model)
    results = {}
    for size in (size for size in batch_sizes if size <= len(split)):
        probabilities, labels = probabilities_and_labels(twin, loader(split, preprocessing, size))
        results[size] = (float(np.mean(probabilities.argmax(axis=1) == labels)),
                         probabilities.argmax(axis=1))
    return results


def classes_with_companions(model, split, preprocessing, indices, batch_size, draws, rng):
    """The classes predicted with batch statistics for each image split[i], i in indices, batched
    with batch_size - 1 other images of the split drawn at random, `draws` times per image:
    (len(indices), draws) ints. All the batches go through one prediction."""
    twin = with_batch_statistics(model)
    rows = []
    for index in indices:
        others = np.delete(np.arange(len(split)), index)
        rows += [[index, *rng.choice(others, batch_size - 1, replace=False)]
                 for _ in range(draws)]
    rows = np.array(rows)
    batches = Split(split.images[rows.ravel()], split.labels[rows.ravel()])
    probabilities, _ = probabilities_and_labels(twin, loader(batches, preprocessing, batch_size))
    return probabilities.argmax(axis=1).reshape(len(indices), draws, batch_size)[..., 0]
