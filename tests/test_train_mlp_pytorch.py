"""The PyTorch trainer (train_mlp_pytorch.py) on a tiny synthetic CIFAR-10: it learns, writes and
reloads its results, repeats itself for a seed, counts its accuracy per image, and its device,
SGD and command line are the course's."""
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

import train_mlp_numpy
import train_mlp_pytorch
from mlp_pytorch import MLP as TorchMLP
from safety.errors import UserError
from training import backend_torch, optim_torch, options


def small_run(root, results, **overrides):
    kwargs = dict(hidden_dims=[32], lr=0.05, use_batch_norm=False, batch_size=16, epochs=3,
                  seed=1, data_dir=str(root), validation_size=30, data_url="", device="cpu",
                  results_dir=str(results))
    kwargs.update(overrides)
    return train_mlp_pytorch.train(**kwargs)


def test_training_learns_writes_results_and_reloads(hard_cifar_dir, tmp_path):
    root, _ = hard_cifar_dir
    model, val_accuracies, test_accuracy, log = small_run(root, tmp_path, use_batch_norm=True)
    assert log["train_loss"][-1] < 0.5 * log["train_loss"][0]
    assert test_accuracy > 0.5 and len(val_accuracies) == 3
    assert val_accuracies[0] < max(val_accuracies) < 1  # 20 % of the labels are random
    folder = tmp_path / "pytorch_h32_lr0.05_b16_e3_s1_bn"
    assert sorted(os.listdir(folder)) == ["accuracy.png", "loss.png", "metrics.json", "model.pt"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["config"]["use_batch_norm"] and metrics["config"]["device"] == "cpu"
    assert "torch" in metrics["versions"]
    state = torch.load(folder / "model.pt", weights_only=True)["state_dict"]
    reloaded = TorchMLP(3072, [32], 10, use_batch_norm=True)
    reloaded.load_state_dict(state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_same_seed_same_numbers_on_cpu(cifar_dir, tmp_path):
    root, _ = cifar_dir
    first = small_run(root, tmp_path / "a", epochs=2)
    second = small_run(root, tmp_path / "b", epochs=2)
    assert first[3]["train_loss_steps"] == second[3]["train_loss_steps"]
    assert first[2] == second[2]


def test_experiment_options_train(cifar_dir, tmp_path):
    root, _ = cifar_dir
    _, _, _, log = small_run(root, tmp_path / "r", optimizer="adamw", lr=1e-3, weight_decay=0.01,
                             dropout=0.1, schedule="cosine", warmup=1, label_smoothing=0.1,
                             augment="crop+flip", activation="relu")
    assert log["train_loss"][-1] < log["train_loss"][0]
    # warmup=1 is taken as the number it is, 1.0: the name --warmup 1 gives on the command line
    assert os.listdir(tmp_path / "r") == ["pytorch_h32_lr0.001_b16_e3_s1_activationrelu_"
                                          "optimizeradamw_weight_decay0.01_dropout0.1_"
                                          "schedulecosine_warmup1.0_label_smoothing0.1_"
                                          "augmentcrop+flip"]


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


def test_plain_sgd_is_bit_for_bit_torch_sgd():
    torch.manual_seed(0)
    models = [TorchMLP(12, [8], 3), TorchMLP(12, [8], 3)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [optim_torch.PlainSGD(models[0].parameters(), 0.1),
                  torch.optim.SGD(models[1].parameters(), lr=0.1)]
    x, y = torch.randn(5, 12), torch.tensor([0, 1, 2, 0, 1])
    for model, optimizer in zip(models, optimizers):
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)


def test_device_choice():
    assert backend_torch.pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert backend_torch.pick_device("auto").type in ("cpu", "mps")
        with pytest.raises(UserError, match="--device cuda.*no CUDA"):
            backend_torch.pick_device("cuda")


def test_command_line_defaults_match_the_course():
    args = train_mlp_pytorch.parse_args([])
    assert (args.hidden_dims, args.lr, args.batch_size, args.epochs, args.seed,
            args.use_batch_norm, args.device) == ([128], 0.1, 128, 10, 42, False, "auto")
    given = {key: getattr(args, key) for key in options.options_of("pytorch")}
    assert given == {key: options.DEFAULTS[key] for key in options.options_of("pytorch")}


def test_course_accuracy_helpers_agree():
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([1, 1, 1, 0])
    assert train_mlp_numpy.accuracy(scores, labels) == 0.75
    assert train_mlp_pytorch.accuracy(torch.from_numpy(scores), torch.from_numpy(labels)) == 0.75
