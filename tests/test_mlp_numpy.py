"""The NumPy MLP (mlp_numpy.py) beyond the course's unittests.py: how a bottleneck's layers are
initialized, the same as in the PyTorch MLP."""
import numpy as np
import torch

from mlp_numpy import MLP as NumpyMLP
from mlp_pytorch import MLP as TorchMLP


def test_a_bottleneck_and_the_layer_after_it_read_unsquashed_inputs():
    """Both get the input layer's std sqrt(1 / fan_in), in both frameworks; later layers, which
    read activations, sqrt(2 / fan_in)."""
    torch.manual_seed(0)
    np.random.seed(0)
    for model in (TorchMLP(3072, [500, 300], 10, bottleneck=400),
                  NumpyMLP(3072, [500, 300], 10, bottleneck=400)):
        weights = [np.asarray(layer.weight.detach() if hasattr(layer, "weight")
                              else layer.params["weight"]) for layer in model.linear_layers]
        assert [w.shape for w in weights] == [(400, 3072), (500, 400), (300, 500), (10, 300)]
        for weight, gain in zip(weights, (1, 1, 2, 2)):
            assert abs(weight.std() / np.sqrt(gain / weight.shape[1]) - 1) < 0.1  # 1.41 apart
