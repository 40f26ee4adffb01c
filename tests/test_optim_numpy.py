"""The NumPy optimizers (training/optim_numpy.py) take the same steps as torch's."""
import numpy as np
import pytest
import torch
from helpers import assert_same_state, numpy_loss_and_grads, rel_error, torch_loss, twin_models

from modules import BatchNormModule
from training.optim_numpy import make_optimizer as numpy_make_optimizer
from training.optim_torch import make_optimizer as torch_make_optimizer


def zero_biases_before_batch_norm(numpy_model, torch_model):
    """Set the gradient of each bias that BatchNorm follows to its exact value, 0, on both sides.

    Its round-off (1e-17, checked above) differs between the two; Adam divides it by its own
    size and steps that bias by about lr in a random direction, one in which the output does not
    change, and which would make the two models' biases and running means differ for nothing.
    """
    for i, layer in enumerate(numpy_model.layers[:-1]):
        if isinstance(numpy_model.layers[i + 1], BatchNormModule):
            layer.grads["bias"][...] = 0
            torch_model.layers[i].bias.grad.zero_()


@pytest.mark.parametrize("optimizer, lr, momentum, weight_decay", [
    ("sgd", 0.1, 0.0, 0.0), ("sgd", 0.05, 0.9, 0.0), ("sgd", 0.05, 0.9, 0.01),
    ("adam", 1e-2, 0.0, 0.0), ("adam", 1e-2, 0.0, 0.05), ("adamw", 1e-2, 0.0, 0.05)])
def test_numpy_and_torch_optimizers_take_the_same_steps(optimizer, lr, momentum, weight_decay):
    rng = np.random.default_rng(7)
    numpy_model, torch_model = twin_models(10, [8, 6], 3, "elu", 5, use_batch_norm=True)
    numpy_optimizer = numpy_make_optimizer(numpy_model, optimizer, lr, momentum, weight_decay)
    torch_optimizer = torch_make_optimizer(torch_model, optimizer, lr, momentum, weight_decay)
    for step in range(5):
        x, labels = rng.standard_normal((9, 10)), rng.integers(0, 3, 9)
        # a changing learning rate, as a schedule gives
        numpy_optimizer.lr = lr * (1 - step / 10)
        for group in torch_optimizer.param_groups:
            group["lr"] = lr * (1 - step / 10)
        numpy_loss_and_grads(numpy_model, x, labels)
        torch_optimizer.zero_grad()
        torch_loss(torch_model, x, labels).backward()
        zero_biases_before_batch_norm(numpy_model, torch_model)
        numpy_optimizer.step()
        torch_optimizer.step()
    assert_same_state(numpy_model, torch_model, 1e-10)  # weights and running statistics
    x = rng.standard_normal((6, 10))
    numpy_model.eval()
    torch_model.eval()
    with torch.no_grad():
        theirs = torch.softmax(torch_model(torch.from_numpy(x)), dim=1).numpy()
    assert rel_error(numpy_model.forward(x), theirs) < 1e-10
