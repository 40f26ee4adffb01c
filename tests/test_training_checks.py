"""What both trainers measure and how they train, checked against numbers computed here
independently: exact accuracies, reshuffled epochs, seeded weights, BatchNorm in evaluation."""
import numpy as np
import pytest
import torch
from torch import nn

import cifar10_utils
import train_mlp_numpy
import train_mlp_pytorch
from cifar10_utils import get_cifar10
from mlp_numpy import MLP as NumpyMLP
from mlp_pytorch import MLP as TorchMLP
from modules import CrossEntropyModule


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


class RecordingLoss(CrossEntropyModule):
    """The NumPy trainer's loss, recording each training batch's labels and correct count."""
    batches = []

    def forward(self, x, y):
        RecordingLoss.batches.append((np.array(y), int(np.sum(x.argmax(axis=1) == y))))
        return super().forward(x, y)


def test_numpy_trainer_reshuffles_every_epoch_and_counts_accuracy_per_image(hard_cifar_dir,
                                                                           tmp_path, monkeypatch):
    RecordingLoss.batches = []
    monkeypatch.setattr(train_mlp_numpy, "CrossEntropyModule", RecordingLoss)
    _, _, _, log = train_mlp_numpy.train([16], 0.05, 16, 3, 0, str(hard_cifar_dir[0]),
                                         validation_size=30, data_url="",
                                         results_dir=str(tmp_path))
    steps = 170 // 16
    epochs = [RecordingLoss.batches[i * steps:(i + 1) * steps] for i in range(3)]
    orders = [np.concatenate([labels for labels, _ in epoch]) for epoch in epochs]
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    for epoch, accuracy in zip(epochs, log["train_accuracy"]):
        assert accuracy == sum(correct for _, correct in epoch) / (steps * 16)


def test_pytorch_trainer_counts_train_accuracy_per_image(hard_cifar_dir, tmp_path, monkeypatch):
    batches = []

    class RecordingCrossEntropy(nn.CrossEntropyLoss):
        def forward(self, logits, labels):
            batches.append(int((logits.argmax(dim=1) == labels).sum()))
            return super().forward(logits, labels)

    monkeypatch.setattr(train_mlp_pytorch.nn, "CrossEntropyLoss", RecordingCrossEntropy)
    _, _, _, log = train_mlp_pytorch.train([16], 0.05, False, 16, 2, 0, str(hard_cifar_dir[0]),
                                           validation_size=30, data_url="", device="cpu",
                                           results_dir=str(tmp_path))
    steps = 170 // 16
    for epoch, accuracy in enumerate(log["train_accuracy"]):
        assert accuracy == sum(batches[epoch * steps:(epoch + 1) * steps]) / (steps * 16)


def initial_weights(seed, cifar_root, results):
    """The weights a PyTorch run starts from: with 0 epochs, the model it returns."""
    model, _, _, _ = train_mlp_pytorch.train([8], 0.1, False, 16, 0, seed, str(cifar_root),
                                             validation_size=30, data_url="", device="cpu",
                                             results_dir=str(results))
    return model.state_dict()


def test_pytorch_initial_weights_follow_the_seed(cifar_dir, tmp_path):
    first, again, other = (initial_weights(seed, cifar_dir[0], tmp_path / str(i))
                           for i, seed in enumerate((3, 3, 4)))
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not torch.equal(first["layers.0.weight"], other["layers.0.weight"])


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_training_picks_the_best_epoch_and_reports_exact_fractions(framework, hard_cifar_dir,
                                                                   tmp_path):
    """On data that cannot be learned perfectly, validation accuracy moves up and down: the
    tested model must be the best epoch's, not the last one's."""
    kwargs = dict(hidden_dims=[32], lr=0.3, batch_size=16, epochs=8, seed=3,
                  data_dir=str(hard_cifar_dir[0]), validation_size=30, data_url="",
                  results_dir=str(tmp_path))
    if framework == "numpy":
        model, val, test_accuracy, log = train_mlp_numpy.train(**kwargs)
        evaluate = train_mlp_numpy.evaluate_model
        loader = cifar10_utils.DataLoader(get_cifar10(hard_cifar_dir[0], 30, url="")["test"], 7)
    else:
        model, val, test_accuracy, log = train_mlp_pytorch.train(use_batch_norm=False,
                                                                 device="cpu", **kwargs)
        evaluate = train_mlp_pytorch.evaluate_model
        test = get_cifar10(hard_cifar_dir[0], 30, url="")["test"]
        loader = cifar10_utils.DataLoader(train_mlp_pytorch.to_device(test, "cpu"), 7)
    assert max(val) < 1.0 and val[0] < max(val)
    assert log["best_epoch"] == val.index(max(val)) + 1 < len(val)  # the best is not the last
    assert evaluate(model, loader) == test_accuracy  # the returned model is the one tested
    for accuracy, count in [*[(v, 30) for v in val], (test_accuracy, 40),
                            *[(t, 170 // 16 * 16) for t in log["train_accuracy"]]]:
        assert 0 <= accuracy <= 1 and accuracy * count == round(accuracy * count)
