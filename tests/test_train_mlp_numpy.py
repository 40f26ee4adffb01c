"""The NumPy trainer (train_mlp_numpy.py) on a tiny synthetic CIFAR-10: it learns, writes its
results, repeats itself for a seed, counts its accuracy per image, never saves a diverged model,
and blends mixup's loss as autograd does."""
import json
import os

import numpy as np
import pytest
import torch
from helpers import assert_agree, rel_error, run_script, torch_name, twin_models
from torch import nn

import train_mlp_numpy
from mlp_numpy import MLP
from modules import CrossEntropyModule
from safety.errors import TrainingDiverged
from training import backend_numpy
from training.preprocessing import Mixup


def small_run(root, results, **overrides):
    kwargs = dict(hidden_dims=[32], lr=0.05, batch_size=16, epochs=4, seed=1, data_dir=str(root),
                  validation_size=30, data_url="", results_dir=str(results))
    kwargs.update(overrides)
    return train_mlp_numpy.train(**kwargs)


def test_training_learns_and_writes_results(hard_cifar_dir, tmp_path):
    root, _ = hard_cifar_dir
    model, val_accuracies, test_accuracy, log = small_run(root, tmp_path / "results")
    assert len(val_accuracies) == 4 and len(log["train_loss_steps"]) == 4 * (170 // 16)
    assert log["train_loss"][-1] < 0.5 * log["train_loss"][0]
    assert test_accuracy > 0.5 and max(val_accuracies) > 0.5  # chance is 0.1
    assert val_accuracies[0] < max(val_accuracies) < 1  # 20 % of the labels are random
    folder = tmp_path / "results" / "numpy_h32_lr0.05_b16_e4_s1"
    assert sorted(os.listdir(folder)) == ["accuracy.png", "loss.png", "metrics.json", "model.npz"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["test_accuracy"] == test_accuracy
    assert metrics["config"]["hidden_dims"] == [32] and "numpy" in metrics["versions"]
    # the saved weights are those of the best validation epoch, which was tested
    best = MLP(3072, [32], 10)
    best.load_state_dict(backend_numpy.read_weights(folder / "model.npz")[0])
    for name, value in best.state_dict().items():
        np.testing.assert_array_equal(value, model.state_dict()[name])
    assert log["best_epoch"] == int(np.argmax(val_accuracies)) + 1


def test_same_seed_same_numbers_other_seed_other_numbers(cifar_dir, tmp_path):
    root, _ = cifar_dir
    first = small_run(root, tmp_path / "a", epochs=2)
    second = small_run(root, tmp_path / "b", epochs=2)
    third = small_run(root, tmp_path / "c", epochs=2, seed=2)
    assert first[3]["train_loss_steps"] == second[3]["train_loss_steps"]
    assert first[2] == second[2]
    assert first[3]["train_loss_steps"] != third[3]["train_loss_steps"]


def test_logistic_regression_and_other_activations_train(cifar_dir, tmp_path):
    """Each class of this data brightens its own quarter of one channel by 60 grey levels or
    more, over noise of at most ±30 (synthetic_cifar.make_images): a linear model separates the
    classes with a wide margin, so every model here must classify nearly every test image (chance
    is 0.1), and report the accuracy its run recorded."""
    root, _ = cifar_dir
    for hidden, activation in [([], "elu"), ([16, 16], "relu"), ([16], "tanh")]:
        _, _, test_accuracy, log = small_run(root, tmp_path, hidden_dims=hidden,
                                             activation=activation)
        assert log["train_loss"][-1] < log["train_loss"][0], (hidden, activation)
        assert test_accuracy >= 0.9, (hidden, activation, test_accuracy)
        metrics = json.loads(open(os.path.join(log["run_dir"], "metrics.json")).read())
        assert metrics["test_accuracy"] == test_accuracy, (hidden, activation)


def test_command_line_defaults_and_2021_alias():
    args = train_mlp_numpy.parse_args([])
    assert (args.hidden_dims, args.lr, args.batch_size, args.epochs, args.seed, args.data_dir) \
        == ([128], 0.1, 128, 10, 42, "data/")
    assert train_mlp_numpy.parse_args(["--dnn_hidden_units", "100,50"]).hidden_dims == [100, 50]
    assert train_mlp_numpy.parse_args(["--hidden_dims", "256", "128"]).hidden_dims == [256, 128]


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


def test_a_diverging_run_says_so_in_its_two_closing_lines_alone(cifar_dir, tmp_path):
    """The overflow that divergence brings is said once, as the loss that is not finite: NumPy
    prints no warnings of its own before it."""
    code, _, stderr = run_script("train_mlp_numpy.py", "--lr", "1e6", "--batch_size", "16",
                                 "--data_dir", cifar_dir[0], "--validation_size", "30",
                                 "--data_url", "", "--results_dir", tmp_path / "r")
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 2, stderr
    # no epoch to draw: metrics.json alone is written, and the line promises no curves
    assert lines[0].startswith("diverged after 0 finished epoch(s); its metrics are in ")
    (folder,) = (tmp_path / "r").iterdir()
    assert sorted(os.listdir(folder)) == ["metrics.json"]
    assert lines[1].startswith("error: loss became nan in epoch 1: training diverged")


def test_best_model_is_never_overwritten_by_a_diverged_one(cifar_dir, tmp_path, monkeypatch):
    real_forward = train_mlp_numpy.CrossEntropyModule.forward
    calls = {"n": 0}

    def nan_in_second_epoch(self, x, y):
        calls["n"] += 1
        return np.nan if calls["n"] > 15 else real_forward(self, x, y)  # 10 steps per epoch

    monkeypatch.setattr(train_mlp_numpy.CrossEntropyModule, "forward", nan_in_second_epoch)
    results = tmp_path / "r"
    with pytest.raises(TrainingDiverged, match="epoch 2"):
        train_mlp_numpy.train([16], 0.05, 16, 5, 0, str(cifar_dir[0]), validation_size=30,
                              data_url="", results_dir=str(results))
    (folder,) = os.listdir(results)
    metrics = json.loads((results / folder / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and len(metrics["val_accuracy"]) == 1
    state, _, _ = backend_numpy.read_weights(results / folder / "model.npz")
    assert all(np.all(np.isfinite(value)) for value in state.values())
    assert (results / folder / "loss.png").exists()


@pytest.mark.parametrize("use_batch_norm", [False, True])
def test_numpy_mixup_loss_and_gradients_match_autograd(use_batch_norm):
    numpy_model, torch_model = twin_models(6, [5], 4, "gelu", 0, use_batch_norm)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(9, 6)), rng.integers(0, 4, 9)
    x, partners, weight = Mixup(0.5, seed=0)(x, y)
    assert 0 < weight < 1 and not np.array_equal(y, partners)

    loss, logits_grad = backend_numpy.mixed_loss(CrossEntropyModule(label_smoothing=0.1),
                                                   numpy_model.forward(x), y, partners, weight)
    numpy_model.backward_logits(logits_grad)
    logits = torch_model(torch.from_numpy(x))
    expected = sum(w * nn.functional.cross_entropy(logits, torch.from_numpy(t), label_smoothing=0.1)
                   for w, t in ((weight, y), (1 - weight, partners)))
    expected.backward()
    assert rel_error(loss, expected.item()) < 1e-10
    torch_params = dict(torch_model.named_parameters())
    for name, _, grad in numpy_model.parameters():
        assert_agree(grad, torch_params[torch_name(name)].grad.numpy(), 1e-10, name)
