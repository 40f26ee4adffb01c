"""The PyTorch mirror: agreement with the NumPy model, BatchNorm, devices, and its trainer."""
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

import train_mlp_pytorch
from mlp_numpy import MLP as NumpyMLP
from mlp_pytorch import MLP as TorchMLP
from modules import CrossEntropyModule
from train_mlp_numpy import sgd_step as numpy_sgd_step
from train_utils import UserError


def rel_error(a, b):
    return np.linalg.norm(a - b) / max(1e-300, np.linalg.norm(a) + np.linalg.norm(b))


def twin_models(n_inputs, hidden, n_classes, activation, seed):
    """A NumPy MLP and a PyTorch MLP holding the same float64 weights."""
    np.random.seed(seed)
    numpy_model = NumpyMLP(n_inputs, hidden, n_classes, activation=activation, dtype=np.float64)
    torch_model = TorchMLP(n_inputs, hidden, n_classes, activation=activation).double()
    with torch.no_grad():
        for ours, theirs in zip(numpy_model.linear_layers, torch_model.linear_layers):
            theirs.weight.copy_(torch.from_numpy(ours.params["weight"]))
            theirs.bias.copy_(torch.from_numpy(ours.params["bias"].ravel()))
    return numpy_model, torch_model


@pytest.mark.parametrize("hidden, activation", [([], "elu"), ([7], "elu"), ([9, 5], "elu"),
                                                ([6], "relu"), ([6, 6], "tanh")])
def test_numpy_and_pytorch_agree_on_loss_gradients_and_sgd_step(hidden, activation):
    rng = np.random.default_rng(len(hidden))
    x, labels = rng.standard_normal((11, 13)), rng.integers(0, 4, 11)
    numpy_model, torch_model = twin_models(13, hidden, 4, activation, seed=3)

    loss_module = CrossEntropyModule()
    probs = numpy_model.forward(x)
    numpy_loss = loss_module.forward(probs, labels)
    numpy_model.backward_logits(loss_module.logits_grad(probs, labels))
    torch_loss = nn.CrossEntropyLoss()(torch_model(torch.from_numpy(x)), torch.from_numpy(labels))
    torch_loss.backward()

    assert rel_error(numpy_loss, torch_loss.item()) < 1e-10
    for ours, theirs in zip(numpy_model.linear_layers, torch_model.linear_layers):
        assert rel_error(ours.grads["weight"], theirs.weight.grad.numpy()) < 1e-10
        assert rel_error(ours.grads["bias"].ravel(), theirs.bias.grad.numpy()) < 1e-10

    numpy_sgd_step(numpy_model, 0.1)
    train_mlp_pytorch.PlainSGD(torch_model.parameters(), 0.1).step()
    for ours, theirs in zip(numpy_model.linear_layers, torch_model.linear_layers):
        assert rel_error(ours.params["weight"], theirs.weight.detach().numpy()) < 1e-12
        assert rel_error(ours.params["bias"].ravel(), theirs.bias.detach().numpy()) < 1e-12


def test_plain_sgd_is_bit_for_bit_torch_sgd():
    torch.manual_seed(0)
    models = [TorchMLP(12, [8], 3), TorchMLP(12, [8], 3)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [train_mlp_pytorch.PlainSGD(models[0].parameters(), 0.1),
                  torch.optim.SGD(models[1].parameters(), lr=0.1)]
    x, y = torch.randn(5, 12), torch.tensor([0, 1, 2, 0, 1])
    for model, optimizer in zip(models, optimizers):
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)


def test_linear_20_to_40_with_batchnorm_has_920_trainable_parameters():
    model = TorchMLP(20, [40], 10, use_batch_norm=True)
    linear, batch_norm = model.layers[0], model.layers[1]
    assert isinstance(linear, nn.Linear) and isinstance(batch_norm, nn.BatchNorm1d)
    trainable = sum(p.numel() for p in [*linear.parameters(), *batch_norm.parameters()]
                    if p.requires_grad)
    assert trainable == 920  # 20*40 weights + 40 biases, 40 BN scales + 40 BN shifts


def test_structure_init_and_device():
    torch.manual_seed(0)
    model = TorchMLP(3072, [500, 300], 10, use_batch_norm=True, dropout=0.1)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == ["Linear", "BatchNorm1d", "ELU", "Dropout", "Linear", "BatchNorm1d", "ELU",
                     "Dropout", "Linear"]
    first, second, _ = model.linear_layers
    assert abs(first.weight.std().item() / np.sqrt(1 / 3072) - 1) < 0.01
    assert abs(second.weight.std().item() / np.sqrt(2 / 500) - 1) < 0.01
    assert all(torch.all(layer.bias == 0) for layer in model.linear_layers)
    assert model.device == torch.device("cpu")
    assert TorchMLP(3072, [], 10)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_batchnorm_evaluation_uses_running_statistics():
    torch.manual_seed(0)
    model = TorchMLP(6, [5], 3, use_batch_norm=True)
    model(torch.randn(32, 6) * 3 + 1)  # training mode: updates the running statistics
    model.eval()
    x = torch.randn(4, 6)
    together = model(x)
    alone = torch.cat([model(x[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone)


def test_random_crop_flip_returns_shifted_and_mirrored_crops():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = train_mlp_pytorch.random_crop_flip(images, padding=2)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = nn.functional.pad(images, (2, 2, 2, 2))
    flips_seen = set()
    for i in range(16):
        matches = [(top, left, flip) for top in range(5) for left in range(5)
                   for flip in (False, True)
                   if torch.equal(out[i], (padded[i, :, top:top + 8, left:left + 8].flip(-1)
                                           if flip else padded[i, :, top:top + 8, left:left + 8]))]
        assert matches, f"image {i} is no crop of its padded original"
        flips_seen.update(flip for _, _, flip in matches)
    assert flips_seen == {False, True}


def test_learning_rate_schedule():
    factor = train_mlp_pytorch.lr_factor
    assert [factor(s, 100, 4, "none") for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert factor(4, 100, 4, "cosine") == 1.0
    assert factor(52, 100, 4, "cosine") == pytest.approx(0.5)
    assert factor(99, 100, 4, "cosine") < 0.01


def test_device_choice():
    assert train_mlp_pytorch.pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert train_mlp_pytorch.pick_device("auto").type in ("cpu", "mps")
        with pytest.raises(UserError, match="--device cuda.*no CUDA"):
            train_mlp_pytorch.pick_device("cuda")


def small_run(root, results, **overrides):
    kwargs = dict(hidden_dims=[32], lr=0.05, use_batch_norm=False, batch_size=16, epochs=3,
                  seed=1, data_dir=str(root), validation_size=30, data_url="", device="cpu",
                  results_dir=str(results))
    kwargs.update(overrides)
    return train_mlp_pytorch.train(**kwargs)


def test_training_learns_writes_results_and_reloads(cifar_dir, tmp_path):
    root, _ = cifar_dir
    model, val_accuracies, test_accuracy, log = small_run(root, tmp_path, use_batch_norm=True)
    assert log["train_loss"][-1] < 0.5 * log["train_loss"][0]
    assert test_accuracy > 0.5 and len(val_accuracies) == 3
    folder = tmp_path / "pytorch_h32_lr0.05_b16_e3_s1_bn"
    assert sorted(os.listdir(folder)) == ["accuracy.png", "loss.png", "metrics.json", "model.pt"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["config"]["use_batch_norm"] and metrics["config"]["device"] == "cpu"
    assert "torch" in metrics["versions"]
    state = torch.load(folder / "model.pt", weights_only=True)
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
    assert os.listdir(tmp_path / "r") == ["pytorch_h32_lr0.001_b16_e3_s1_activationrelu_optimizeradamw_"
                                    "weight_decay0.01_dropout0.1_schedulecosine_warmup1_"
                                    "label_smoothing0.1_augmentcrop+flip"]


def test_command_line_defaults_match_the_course():
    args = train_mlp_pytorch.parse_args([])
    assert (args.hidden_dims, args.lr, args.batch_size, args.epochs, args.seed,
            args.use_batch_norm, args.device) == ([128], 0.1, 128, 10, 42, False, "auto")
    options = {key: getattr(args, key) for key in train_mlp_pytorch.DEFAULT_OPTIONS}
    assert options == train_mlp_pytorch.DEFAULT_OPTIONS


def test_course_accuracy_helpers_agree():
    import train_mlp_numpy
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([1, 1, 1, 0])
    assert train_mlp_numpy.accuracy(scores, labels) == 0.75
    assert train_mlp_pytorch.accuracy(torch.from_numpy(scores), torch.from_numpy(labels)) == 0.75
