"""The PyTorch mirror (mlp_pytorch.py): agreement with the NumPy model on the loss, every gradient
and BatchNorm's statistics, with a bottleneck, a projection and residual blocks; its structure and
BatchNorm."""
import numpy as np
import pytest
import torch
from helpers import (
    assert_agree,
    assert_same_state,
    numpy_loss_and_grads,
    rel_error,
    torch_loss,
    torch_name,
    twin_models,
)
from torch import nn

from mlp_numpy import MLP as NumpyMLP
from mlp_pytorch import MLP as TorchMLP


@pytest.mark.parametrize("hidden, activation, use_batch_norm, smoothing", [
    ([], "elu", False, 0.0), ([7], "elu", False, 0.0), ([9, 5], "elu", False, 0.1),
    ([6], "relu", False, 0.0), ([6, 6], "tanh", False, 0.0), ([6, 5], "gelu", False, 0.0),
    ([7], "elu", True, 0.0), ([9, 5], "elu", True, 0.2), ([8, 6], "gelu", True, 0.0),
    ([6, 6], "relu", True, 0.1)])
def test_numpy_and_pytorch_agree_on_loss_and_every_gradient(hidden, activation, use_batch_norm,
                                                            smoothing):
    rng = np.random.default_rng(len(hidden))
    x, labels = rng.standard_normal((11, 13)), rng.integers(0, 4, 11)
    numpy_model, torch_model = twin_models(13, hidden, 4, activation, 3, use_batch_norm)

    numpy_loss = numpy_loss_and_grads(numpy_model, x, labels, smoothing)
    loss = torch_loss(torch_model, x, labels, smoothing)
    loss.backward()

    assert rel_error(numpy_loss, loss.item()) < 1e-10
    torch_params = dict(torch_model.named_parameters())
    for name, _, grad in numpy_model.parameters():
        assert_agree(grad, torch_params[torch_name(name)].grad.numpy(), 1e-10, name)
    assert_same_state(numpy_model, torch_model, 1e-12)  # BatchNorm's running statistics too


def assert_twins_agree(numpy_model, torch_model, x, labels, smoothing=0.0):
    """The same loss and every gradient, and as many parameters, in the two twins."""
    numpy_loss = numpy_loss_and_grads(numpy_model, x, labels, smoothing)
    loss = torch_loss(torch_model, x, labels, smoothing)
    loss.backward()
    assert rel_error(numpy_loss, loss.item()) < 1e-10
    torch_params = dict(torch_model.named_parameters())
    assert len(torch_params) == len(numpy_model.parameters())  # a projection is not trained
    for name, _, grad in numpy_model.parameters():
        assert_agree(grad, torch_params[torch_name(name)].grad.numpy(), 1e-10, name)


@pytest.mark.parametrize("hidden, use_batch_norm", [([7], False), ([6, 5], True), ([], False)])
def test_numpy_and_pytorch_agree_with_a_linear_bottleneck(hidden, use_batch_norm):
    rng = np.random.default_rng(5)
    x, labels = rng.standard_normal((10, 12)), rng.integers(0, 4, 10)
    numpy_model, torch_model = twin_models(12, hidden, 4, "gelu", 1, use_batch_norm, bottleneck=3)
    assert type(torch_model.layers[1]).__name__ == "Linear"
    assert_twins_agree(numpy_model, torch_model, x, labels)


@pytest.mark.parametrize("hidden, use_batch_norm, bottleneck",
                         [([7], False, 0), ([6, 5], True, 0), ([], False, 0), ([6], True, 4)])
def test_numpy_and_pytorch_agree_with_a_projection(hidden, use_batch_norm, bottleneck):
    rng = np.random.default_rng(6)
    x, labels = rng.standard_normal((10, 12)), rng.integers(0, 4, 10)
    numpy_model, torch_model = twin_models(12, hidden, 4, "gelu", 2, use_batch_norm, bottleneck,
                                           projection=5)
    assert type(torch_model.layers[0]).__name__ == "Projection"
    assert_twins_agree(numpy_model, torch_model, x, labels, 0.1)
    assert_same_state(numpy_model, torch_model, 1e-12)
    assert rel_error(numpy_model.input_filters(), torch_model.input_filters()) < 1e-12


@pytest.mark.parametrize("hidden, use_batch_norm, blocks, block_width, projection",
                         [([7], False, 1, 0, 0), ([6, 5], True, 2, 9, 0), ([6], True, 1, 3, 5)])
def test_numpy_and_pytorch_agree_with_residual_blocks(hidden, use_batch_norm, blocks, block_width,
                                                      projection):
    rng = np.random.default_rng(7)
    x, labels = rng.standard_normal((10, 12)), rng.integers(0, 4, 10)
    numpy_model, torch_model = twin_models(12, hidden, 4, "gelu", 4, use_batch_norm,
                                           projection=projection, blocks=blocks,
                                           block_width=block_width)
    assert [type(layer).__name__ for layer in torch_model.layers][-blocks - 1:] == \
        ["ResidualBlock"] * blocks + ["Linear"]
    assert_twins_agree(numpy_model, torch_model, x, labels, 0.1)
    assert_same_state(numpy_model, torch_model, 1e-12)


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


@pytest.mark.parametrize("sizes", [(3072, [0], 10), (0, [8], 10), (3072, [8], 0)])
@pytest.mark.parametrize("mlp", [NumpyMLP, TorchMLP])
def test_an_mlp_with_a_layer_of_no_unit_is_refused_by_its_sizes(mlp, sizes):
    """No unit: no weights to initialize (a division by a fan-in of 0), or no class to predict."""
    with pytest.raises(ValueError, match="every layer needs a unit: n_inputs"):
        mlp(*sizes)
