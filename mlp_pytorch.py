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


class ResidualBlock(nn.Module):
    """modules.ResidualBlockModule: x + branch(x), branch an nn.Sequential."""

    def __init__(self, *branch):
        super().__init__()
        self.branch = nn.Sequential(*branch)

    def forward(self, x):
        return x + self.branch(x)


class MLP(nn.Module):
    """Per hidden layer Linear -> [BatchNorm1d] -> activation [-> Dropout]; then a final Linear.
    bottleneck=K puts a Linear of K units first, with nothing after it; projection: the
    components P (n_inputs, K) of a fixed Projection put before everything else, or None;
    blocks=R puts R ResidualBlocks x + W₂ σ(W₁ LN(x)) of block_width units before the output
    layer (see mlp_numpy.MLP).

    x: (S, n_inputs) or (S, 3, 32, 32) -> logits (S, n_classes); the loss applies log-softmax.
    Initialised as the NumPy model: Kaiming normal with std sqrt(1 / fan_in) for the input layer,
    which reads normalized pixels, and sqrt(2 / fan_in) after an activation; zero biases."""

    def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False, activation="elu",
                 dropout=0.0, bottleneck=0, projection=None, blocks=0, block_width=0):
        super().__init__()
        if min(n_inputs, *n_hidden, n_classes) < 1:  # a layer of no unit has no weights to train
            raise ValueError(f"every layer needs a unit: n_inputs {n_inputs}, n_hidden "
                             f"{list(n_hidden)}, n_classes {n_classes}")
        layers = [Projection(projection)] if projection is not None else []
        n_inputs = layers[0].components.shape[1] if layers else n_inputs
        sizes = [bottleneck or n_inputs, *n_hidden]
        layers += [nn.Linear(n_inputs, bottleneck)] if bottleneck else []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers.append(nn.Linear(fan_in, fan_out))
            if use_batch_norm:
                layers.append(nn.BatchNorm1d(fan_out))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        if n_hidden:
            layers += [self.residual_block(n_hidden[-1], block_width or n_hidden[-1], activation,
                                           dropout, blocks) for _ in range(blocks)]
        layers.append(nn.Linear(sizes[-1], n_classes))
        self.layers = nn.Sequential(*layers)
        for i, linear in enumerate(self.linear_layers):
            # modules.LinearModule's rule: gain 1 where a layer reads the data or the bottleneck's
            # linear output, 2 where it reads activations
            gain = 1.0 if i <= (1 if bottleneck else 0) else 2.0
            nn.init.normal_(linear.weight, 0.0, math.sqrt(gain / linear.in_features))
            nn.init.zeros_(linear.bias)

    @staticmethod
    def residual_block(width, inner, activation, dropout, blocks):
        """mlp_numpy.MLP.residual_block's: W₁ initialised with gain 1, W₂ with gain 2/R for R
        blocks."""
        first, second = nn.Linear(width, inner), nn.Linear(inner, width)
        for linear, gain in ((first, 1.0), (second, 2.0 / blocks)):
            nn.init.normal_(linear.weight, 0.0, math.sqrt(gain / linear.in_features))
            nn.init.zeros_(linear.bias)
        return ResidualBlock(nn.LayerNorm(width), first, ACTIVATIONS[activation](),
                             *([nn.Dropout(dropout)] if dropout > 0 else []), second)

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
