"""The PyTorch mirror of mlp_numpy.MLP: the same layers in the same order, by autograd."""
import math

import torch
from torch import nn

ACTIVATIONS = {"elu": nn.ELU, "gelu": lambda: nn.GELU(approximate="tanh"), "relu": nn.ReLU,
               "tanh": nn.Tanh}


class Projection(nn.Module):
    """modules.ProjectionModule's fixed Y = X P: the buffer 'components' P (M, K), fitted by a
    run or read from a saved model, saved with the model and never trained."""

    def __init__(self, components):
        super().__init__()
        self.register_buffer("components",
                             torch.as_tensor(components, dtype=torch.float32).clone())

    def forward(self, x):
        return x @ self.components


class MLP(nn.Module):
    """Per hidden layer Linear -> [BatchNorm1d] -> activation [-> Dropout]; then a final Linear.
    bottleneck=K puts a Linear of K units first, with nothing after it; projection: the
    components P (n_inputs, K) of a fixed Projection put before everything else, or None (see
    mlp_numpy.MLP).

    x: (S, n_inputs) or (S, 3, 32, 32) -> logits (S, n_classes); the loss applies log-softmax.
    Initialised as the NumPy model: Kaiming normal with std sqrt(1 / fan_in) for the input layer,
    which reads normalized pixels, and sqrt(2 / fan_in) after an activation; zero biases."""

    def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False, activation="elu",
                 dropout=0.0, bottleneck=0, projection=None):
        super().__init__()
        blocks = [Projection(projection)] if projection is not None else []
        n_inputs = blocks[0].components.shape[1] if blocks else n_inputs
        sizes = [bottleneck or n_inputs, *n_hidden]
        blocks += [nn.Linear(n_inputs, bottleneck)] if bottleneck else []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            blocks.append(nn.Linear(fan_in, fan_out))
            if use_batch_norm:
                blocks.append(nn.BatchNorm1d(fan_out))
            blocks.append(ACTIVATIONS[activation]())
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
        blocks.append(nn.Linear(sizes[-1], n_classes))
        self.layers = nn.Sequential(*blocks)
        for i, linear in enumerate(self.linear_layers):
            # modules.LinearModule's rule: gain 1 where a layer reads the data or the bottleneck's
            # linear output, 2 where it reads activations
            gain = 1.0 if i <= (1 if bottleneck else 0) else 2.0
            nn.init.normal_(linear.weight, 0.0, math.sqrt(gain / linear.in_features))
            nn.init.zeros_(linear.bias)

    @property
    def linear_layers(self):
        return [module for module in self.layers if isinstance(module, nn.Linear)]

    def input_filters(self):
        """The first Linear layer's weights as filters on the model's input, a NumPy (N,
        n_inputs): W, or W Pᵀ behind a projection."""
        weight = self.linear_layers[0].weight
        if isinstance(self.layers[0], Projection):
            weight = weight @ self.layers[0].components.T
        return weight.detach().cpu().numpy()

    @property
    def device(self):
        return next(self.parameters()).device

    def forward(self, x):
        return self.layers(x.reshape(len(x), -1))
