"""Predictions and accuracy over a loader (training/evaluation.py), checked against numbers
computed here: exact over all images across batches, BatchNorm's running statistics, and
test-time averaging over mirrored and shifted views, in both frameworks."""
import numpy as np
import pytest
import torch

import train_mlp_numpy
import train_mlp_pytorch
from cifar10_utils import Split, get_cifar10, get_dataloader
from dataset.loaders import DataLoader
from mlp_numpy import MLP as NumpyMLP
from mlp_pytorch import MLP as TorchMLP
from training.preprocessing import TTA_VIEWS, normalize


def normalized(split):
    return normalize(split.images).reshape(len(split), -1)


def test_evaluation_accuracy_is_correct_over_all_images_across_batches(cifar_dir):
    test = get_cifar10(cifar_dir[0], 30, url="")["test"]  # 40 images: batches of 16, 16 and 8
    np.random.seed(0)
    numpy_model = NumpyMLP(3072, [12], 10, dtype=np.float32)
    expected = np.sum(numpy_model.forward(normalized(test)).argmax(axis=1) == test.labels)
    loader = DataLoader(test, 16, preprocess=normalize)
    accuracy = train_mlp_numpy.evaluate_model(numpy_model, loader)
    assert accuracy == expected / 40
    # the course's get_dataloader gives torch tensors unless asked for NumPy arrays
    course_loader = get_dataloader({"train": test, "validation": test, "test": test}, 16)["test"]
    assert torch.is_tensor(next(iter(course_loader))[0])
    assert train_mlp_numpy.evaluate_model(numpy_model, course_loader) == expected / 40
    torch.manual_seed(0)
    torch_model = TorchMLP(3072, [12], 10)
    with torch.no_grad():
        logits = torch_model(torch.from_numpy(normalized(test)))
    expected = int((logits.argmax(dim=1) == torch.from_numpy(test.labels)).sum())
    loader = DataLoader(train_mlp_pytorch.to_device(test, "cpu"), 16, preprocess=normalize)
    assert train_mlp_pytorch.evaluate_model(torch_model, loader) == expected / 40


def shift_running_statistics(model, rng):
    """Running statistics far from any batch's, so that using them changes the predictions."""
    for module in model.layers:
        if hasattr(module, "running_mean"):
            shape = module.running_mean.shape
            mean, var = rng.normal(0, 3, shape), rng.uniform(5, 20, shape)
            if torch.is_tensor(module.running_mean):
                module.running_mean.copy_(torch.from_numpy(mean))
                module.running_var.copy_(torch.from_numpy(var))
            else:
                module.running_mean, module.running_var = mean, var


def test_numpy_evaluation_uses_batch_norm_running_statistics(cifar_dir):
    test = get_cifar10(cifar_dir[0], 30, url="")["test"]
    np.random.seed(1)
    model = NumpyMLP(3072, [12], 10, use_batch_norm=True)
    shift_running_statistics(model, np.random.default_rng(1))
    x = normalized(test).astype(np.float64)
    batch_stat_predictions = model.forward(x).argmax(axis=1)
    model.eval()
    running_stat_predictions = model.forward(x).argmax(axis=1)
    model.train()
    assert not np.array_equal(batch_stat_predictions, running_stat_predictions)  # it matters
    accuracy = train_mlp_numpy.evaluate_model(model, DataLoader(test, 40, preprocess=normalize))
    assert accuracy == np.mean(running_stat_predictions == test.labels)
    assert model.training  # the trainer's mode is restored


def test_pytorch_evaluation_uses_batch_norm_running_statistics(cifar_dir):
    test = get_cifar10(cifar_dir[0], 30, url="")["test"]
    torch.manual_seed(1)
    model = TorchMLP(3072, [12], 10, use_batch_norm=True)
    with torch.no_grad():
        shift_running_statistics(model, np.random.default_rng(1))
        x = torch.from_numpy(normalized(test))
        batch_stat_predictions = model(x).argmax(dim=1)
        model.eval()
        running_stat_predictions = model(x).argmax(dim=1)
    model.train()
    assert not torch.equal(batch_stat_predictions, running_stat_predictions)
    loader = DataLoader(train_mlp_pytorch.to_device(test, "cpu"), 40, preprocess=normalize)
    accuracy = train_mlp_pytorch.evaluate_model(model, loader)
    labels = torch.from_numpy(test.labels)
    assert accuracy == int((running_stat_predictions == labels).sum()) / 40
    assert model.training


def moved(images, flipped, down, right):
    """An image array's view, written out pixel by pixel: moved, zeros behind, then mirrored."""
    out = np.zeros_like(images)
    height, width = images.shape[-2:]
    for row in range(height):
        for column in range(width):
            if 0 <= row - down < height and 0 <= column - right < width:
                out[..., row, column] = images[..., row - down, column - right]
    return (out[..., ::-1] if flipped else out).copy()


@pytest.mark.parametrize("tta, views", [
    ("flip", [(False, 0, 0), (True, 0, 0)]),
    ("flip+shift", [(f, d, r) for d in (-2, 0, 2) for r in (-2, 0, 2) for f in (False, True)]),
    ("flip+wide-shift", [(f, d, r) for d in (-4, -2, 0, 2, 4) for r in (-4, -2, 0, 2, 4)
                         for f in (False, True)])])
def test_test_time_averaging_is_the_mean_of_the_views_predictions(tta, views):
    images = np.random.default_rng(3).standard_normal((12, 3, 32, 32)).astype(np.float32)
    labels = np.zeros(12, np.int64)
    loader = DataLoader(Split(images, labels), 5)
    np.random.seed(0)
    model = NumpyMLP(3072, [8], 10, dtype=np.float32)
    by_hand = np.mean([model.forward(moved(images, *each).reshape(12, -1)) for each in views], 0)
    averaged, _ = train_mlp_numpy.predict(model, loader, tta=tta)
    np.testing.assert_allclose(averaged, by_hand, rtol=1e-5)
    torch_loader = DataLoader(Split(torch.from_numpy(images), torch.from_numpy(labels)), 5)
    torch.manual_seed(0)
    torch_model = TorchMLP(3072, [8], 10)
    with torch.no_grad():
        by_hand = np.mean([torch.softmax(torch_model(torch.from_numpy(moved(images, *each))),
                                         dim=1).numpy() for each in views], 0)
    averaged, _ = train_mlp_pytorch.predict(torch_model, torch_loader, tta=tta)
    np.testing.assert_allclose(averaged, by_hand, rtol=1e-5)


def test_the_views_of_a_shuffled_loader_are_averaged_image_by_image_in_its_stored_order():
    """A loader made to shuffle (a training loader, say) is read in order for every view, so
    that each image's views are averaged with each other, not with other images'."""
    images = np.random.default_rng(4).standard_normal((12, 3, 32, 32)).astype(np.float32)
    labels = np.arange(12) % 10
    np.random.seed(0)
    model = NumpyMLP(3072, [8], 10, dtype=np.float32)
    in_order, _ = train_mlp_numpy.predict(model, DataLoader(Split(images, labels), 5), "flip")
    averaged, read = train_mlp_numpy.predict(
        model, DataLoader(Split(images, labels), 5, shuffle=True, seed=1), "flip")
    np.testing.assert_array_equal(read, labels)
    np.testing.assert_allclose(averaged, in_order, rtol=1e-6)


def test_views_are_made_before_normalization_as_augmentations_are():
    """A shifted uint8 image is filled with black, then normalized: the padding of the crops
    the model trained on, not zeros of the normalized input."""
    images = np.full((2, 3, 32, 32), 200, np.uint8)
    loader = DataLoader(Split(images, np.zeros(2, np.int64)), 2, preprocess=normalize)
    seen = []
    model = NumpyMLP(3072, [8], 10, dtype=np.float32)
    model.forward = lambda flat: seen.append(flat.reshape(-1, 3, 32, 32).copy()) or \
        np.full((len(flat), 10), 0.1, np.float32)
    train_mlp_numpy.predict(model, loader, tta="flip+shift")
    black = normalize(np.zeros((2, 3, 32, 32), np.uint8))
    shifted_down = seen[TTA_VIEWS["flip+shift"].index(dict(flipped=False, down=2, right=0))]
    np.testing.assert_array_equal(shifted_down[:, :, :2], black[:, :, :2])
    assert not np.array_equal(shifted_down[:, :, 2:], black[:, :, 2:])


def test_any_iterable_of_batches_is_evaluated_as_the_courses_loaders_are():
    """A grader may pass a list of (images, labels) batches, the images flattened or not: it gives
    the numbers the project's loader gives, mirrored and moved views included."""
    images = np.random.default_rng(4).standard_normal((12, 3, 32, 32)).astype(np.float32)
    labels = np.random.default_rng(5).integers(0, 10, 12)
    loader = DataLoader(Split(images, labels), 5)
    batches = [(images[start:start + 5], labels[start:start + 5]) for start in range(0, 12, 5)]
    np.random.seed(0)
    model = NumpyMLP(3072, [8], 10, dtype=np.float32)
    torch_model = TorchMLP(3072, [8], 10)
    torch_batches = [tuple(map(torch.from_numpy, batch)) for batch in batches]
    torch_loader = DataLoader(Split(*map(torch.from_numpy, (images, labels))), 5)
    flat = [(batch.reshape(len(batch), -1), labels) for batch, labels in batches]
    for tta in ("none", "flip", "flip+wide-shift"):
        expected = train_mlp_numpy.predict(model, loader, tta)[0]
        np.testing.assert_array_equal(train_mlp_numpy.predict(model, batches, tta)[0], expected)
        np.testing.assert_array_equal(train_mlp_numpy.predict(model, flat, tta)[0], expected)
        np.testing.assert_array_equal(train_mlp_pytorch.predict(torch_model, torch_batches, tta)[0],
                                      train_mlp_pytorch.predict(torch_model, torch_loader, tta)[0])


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_prediction_leaves_the_model_in_the_mode_it_found_it_in(framework):
    """An evaluated model stays in eval mode (no dropout, running statistics in later passes);
    a training one goes back to training."""
    trainer, mlp, arrays = ((train_mlp_numpy, NumpyMLP, np.asarray) if framework == "numpy" else
                            (train_mlp_pytorch, TorchMLP, torch.from_numpy))
    split = Split(arrays(np.zeros((4, 3, 32, 32), np.float32)), arrays(np.zeros(4, np.int64)))
    loader = DataLoader(split, 2)
    model = mlp(3072, [8], 10, True, "elu", 0.5)
    for training in (False, True):
        model.train(training)
        trainer.predict(model, loader, tta="flip")
        assert model.training is training


@pytest.mark.parametrize("trainer, as_array", [(train_mlp_numpy, np.asarray),
                                               (train_mlp_pytorch, torch.tensor)])
def test_accuracy_reads_labels_or_one_hot_rows_and_refuses_what_fits_neither(trainer, as_array):
    predictions = as_array(np.eye(4))
    labels = np.array([0, 1, 2, 0])
    assert trainer.accuracy(predictions, as_array(labels)) == 0.75
    assert trainer.accuracy(predictions, as_array(np.eye(4)[labels])) == 0.75
    for wrong in (labels[:1], labels.astype(float), labels[:, None]):
        with pytest.raises(ValueError, match="labels of shape"):
            trainer.accuracy(predictions, as_array(wrong))


@pytest.mark.parametrize("trainer, as_array", [(train_mlp_numpy, np.asarray),
                                               (train_mlp_pytorch, torch.tensor)])
def test_one_hot_labels_are_read_along_each_row_of_more_images_than_classes(trainer, as_array):
    """Seven images of ten classes: each row's hot column is its label."""
    labels = np.array([3, 9, 0, 3, 5, 1, 7])
    predictions = np.eye(10)[[3, 9, 0, 4, 5, 1, 2]]
    one_hot = np.eye(10)[labels]
    assert trainer.accuracy(as_array(predictions), as_array(one_hot)) == pytest.approx(5 / 7)
