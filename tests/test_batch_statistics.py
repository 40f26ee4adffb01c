"""Testing a BatchNorm model with batch statistics (batch_statistics.py): the swapped layer is
torch's own training-mode BatchNorm without its side effects, a batch of one gives β, and the
predictions depend on the batch as they must."""
import copy

import numpy as np
import pytest
import torch

import cifar10_utils
from mlp_pytorch import MLP
from questions import batch_statistics
from training.preprocessing import Preprocessing


@pytest.fixture
def model():
    torch.manual_seed(0)
    model = MLP(3072, [32, 16], 10, use_batch_norm=True)
    with torch.no_grad():  # statistics and affine parameters away from their starting values
        for layer in model.layers:
            if isinstance(layer, torch.nn.BatchNorm1d):
                layer.running_mean.uniform_(-1, 1)
                layer.running_var.uniform_(0.5, 2)
                layer.weight.uniform_(0.5, 2)
                layer.bias.uniform_(-1, 1)
    return model.eval()


@pytest.fixture
def split():
    rng = np.random.default_rng(0)
    return cifar10_utils.Split(rng.integers(0, 256, (64, 3, 32, 32), dtype=np.uint8),
                               rng.integers(0, 10, 64))


def test_batch_statistics_are_training_mode_batchnorm_without_updating_anything(model):
    layer = model.layers[1]
    swapped = batch_statistics.BatchStatisticsNorm(layer)
    x = torch.randn(16, 32)
    before = (layer.running_mean.clone(), layer.running_var.clone())
    expected = torch.nn.functional.batch_norm(x, None, None, layer.weight, layer.bias,
                                              training=True, eps=layer.eps)
    torch.testing.assert_close(swapped(x), expected)
    assert torch.equal(layer.running_mean, before[0]) and torch.equal(layer.running_var, before[1])


def test_every_batchnorm_of_the_copy_uses_its_batchs_statistics(model):
    """The copy's outputs are those of the model in training mode, where torch's every BatchNorm
    normalizes with the batch's statistics (no dropout here), computed on a copy of its own so
    that the running statistics stay as they were."""
    x = torch.randn(16, 3072)
    training_mode = copy.deepcopy(model).train()
    with torch.no_grad():
        torch.testing.assert_close(batch_statistics.with_batch_statistics(model)(x),
                                   training_mode(x))


def test_a_batch_of_one_normalizes_to_beta(model):
    layer = model.layers[1]
    swapped = batch_statistics.BatchStatisticsNorm(layer)
    torch.testing.assert_close(swapped(torch.randn(1, 32) * 100), layer.bias.detach()[None])


def test_the_model_itself_is_left_as_it_was(model, split):
    state = {name: value.clone() for name, value in model.state_dict().items()}
    batch_statistics.accuracy_by_batch_size(model, split, Preprocessing(), [1, 8])
    assert all(isinstance(model.layers[i], torch.nn.BatchNorm1d) for i in (1, 4))
    assert all(torch.equal(value, state[name]) for name, value in model.state_dict().items())


def test_a_batch_of_one_gives_every_image_the_same_class(model, split):
    """The output after the last BatchNorm is β for every image, so every prediction is one
    class, and the accuracy is that class's share of the labels."""
    accuracy, classes = batch_statistics.accuracy_by_batch_size(model, split, Preprocessing(),
                                                                [1])[1]
    assert len(set(classes)) == 1
    assert accuracy == pytest.approx(np.mean(split.labels == classes[0]))


def test_accuracy_by_batch_size_uses_each_full_batchs_own_statistics(model, split):
    """Size 16: four batches, each normalized by itself; 40 leaves its remainder out; sizes past
    the split are left out."""
    results = batch_statistics.accuracy_by_batch_size(model, split, Preprocessing(),
                                                      [16, 40, 1000])
    assert set(results) == {16, 40}
    twin = batch_statistics.with_batch_statistics(model)
    images = Preprocessing()(split.images).reshape(64, -1)
    with torch.no_grad():
        expected = torch.cat([twin(torch.from_numpy(images[i:i + 16])) for i in range(0, 64, 16)])
    np.testing.assert_array_equal(results[16][1], expected.argmax(dim=1).numpy())
    assert len(results[40][1]) == 40
    assert results[16][0] == pytest.approx(np.mean(results[16][1] == split.labels))


def test_an_images_class_is_measured_in_the_batch_it_was_drawn_with(model, split):
    rng = np.random.default_rng(1)
    classes = batch_statistics.classes_with_companions(model, split, Preprocessing(), [5, 9],
                                                       4, 6, rng)
    assert classes.shape == (2, 6)
    rng = np.random.default_rng(1)  # the same draws, computed here batch by batch
    twin = batch_statistics.with_batch_statistics(model)
    for index, drawn_classes in zip([5, 9], classes):
        others = np.delete(np.arange(64), index)
        for drawn in drawn_classes:
            rows = [index, *rng.choice(others, 3, replace=False)]
            images = torch.from_numpy(Preprocessing()(split.images[rows]).reshape(4, -1))
            with torch.no_grad():
                assert twin(images)[0].argmax().item() == drawn
