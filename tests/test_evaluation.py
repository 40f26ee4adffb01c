"""Predictions and accuracy over a loader (training/evaluation.py), checked against numbers
computed here: exact over all images across batches, BatchNorm's running statistics, and
test-time mirror averaging, in both frameworks."""
import numpy as np
import torch

import cifar10_utils
import train_mlp_numpy
import train_mlp_pytorch
from cifar10_utils import Split, get_cifar10
from mlp_numpy import MLP as NumpyMLP
from mlp_pytorch import MLP as TorchMLP


def normalized(split):
    return cifar10_utils.normalize(split.images).reshape(len(split), -1)


def test_evaluation_accuracy_is_correct_over_all_images_across_batches(cifar_dir):
    test = get_cifar10(cifar_dir[0], 30, url="")["test"]  # 40 images: batches of 16, 16 and 8
    np.random.seed(0)
    numpy_model = NumpyMLP(3072, [12], 10, dtype=np.float32)
    expected = np.sum(numpy_model.forward(normalized(test)).argmax(axis=1) == test.labels)
    accuracy = train_mlp_numpy.evaluate_model(numpy_model, cifar10_utils.DataLoader(test, 16))
    assert accuracy == expected / 40
    torch.manual_seed(0)
    torch_model = TorchMLP(3072, [12], 10)
    with torch.no_grad():
        logits = torch_model(torch.from_numpy(normalized(test)))
    expected = int((logits.argmax(dim=1) == torch.from_numpy(test.labels)).sum())
    loader = cifar10_utils.DataLoader(train_mlp_pytorch.to_device(test, "cpu"), 16)
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
    accuracy = train_mlp_numpy.evaluate_model(model, cifar10_utils.DataLoader(test, 40))
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
    loader = cifar10_utils.DataLoader(train_mlp_pytorch.to_device(test, "cpu"), 40)
    accuracy = train_mlp_pytorch.evaluate_model(model, loader)
    labels = torch.from_numpy(test.labels)
    assert accuracy == int((running_stat_predictions == labels).sum()) / 40
    assert model.training


def test_mirror_averaging_is_the_mean_of_both_predictions():
    images = np.random.default_rng(3).standard_normal((12, 3, 32, 32)).astype(np.float32)
    labels = np.zeros(12, np.int64)
    loader = cifar10_utils.DataLoader(Split(images, labels), 5, preprocess=None)
    np.random.seed(0)
    model = NumpyMLP(3072, [8], 10, dtype=np.float32)
    plain, _ = train_mlp_numpy.predict(model, loader)
    mirrored = model.forward(images[..., ::-1].reshape(12, -1))
    averaged, _ = train_mlp_numpy.predict(model, loader, tta="flip")
    np.testing.assert_allclose(averaged, (plain + mirrored) / 2, rtol=1e-6)
    torch_loader = cifar10_utils.DataLoader(Split(torch.from_numpy(images),
                                                  torch.from_numpy(labels)), 5, preprocess=None)
    torch.manual_seed(0)
    torch_model = train_mlp_pytorch.MLP(3072, [8], 10)
    plain, _ = train_mlp_pytorch.predict(torch_model, torch_loader)
    with torch.no_grad():
        mirrored = torch.softmax(torch_model(torch.from_numpy(images).flip(-1)), dim=1).numpy()
    averaged, _ = train_mlp_pytorch.predict(torch_model, torch_loader, tta="flip")
    np.testing.assert_allclose(averaged, (plain + mirrored) / 2, rtol=1e-5)
