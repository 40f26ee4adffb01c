"""A multi-layer perceptron in NumPy, built from the modules with hand-written backward passes."""
import numpy as np

from modules import (
    BatchNormModule,
    DropoutModule,
    ELUModule,
    GELUModule,
    LayerNormModule,
    LinearModule,
    Module,
    ProjectionModule,
    ReLUModule,
    ResidualBlockModule,
    SoftMaxModule,
    TanhModule,
)

ACTIVATIONS = {"elu": lambda: ELUModule(alpha=1.0), "gelu": GELUModule, "relu": ReLUModule,
               "tanh": TanhModule}


class MLP(Module):
    """Per hidden layer Linear -> [BatchNorm] -> activation [-> Dropout]; then a final Linear and
    a softmax: the PyTorch MLP's order, so its layers carry the same indices.

    x: (S, n_inputs) -> class probabilities (S, n_classes). n_hidden=[] gives multinomial logistic
    regression. bottleneck=K puts a linear layer of K units first (nothing after it), so that the
    first hidden layer's weights become a product of rank at most K. projection: the components
    P (n_inputs, K) of a fixed ProjectionModule put before everything else, or None. blocks=R
    puts R residual blocks X + W₂ σ(W₁ LN(X)) [with dropout after σ] between the last hidden
    layer and the output layer, W₁ of block_width units (0: the last hidden layer's). Parameters
    are float64, NumPy's default, unless dtype says otherwise (the trainer asks for float32).
    train() and eval() switch BatchNorm and Dropout as in PyTorch."""

    def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False, activation="elu",
                 dropout=0.0, dtype=np.float64, bottleneck=0, projection=None, blocks=0,
                 block_width=0):
        if min(n_inputs, *n_hidden, n_classes) < 1:  # a layer of no unit has no weights to train
            raise ValueError(f"every layer needs a unit: n_inputs {n_inputs}, n_hidden "
                             f"{list(n_hidden)}, n_classes {n_classes}")
        self.layers = []
        if projection is not None:
            self.layers.append(ProjectionModule(projection, dtype))
            n_inputs = self.layers[0].components.shape[1]
        if bottleneck:
            self.layers.append(LinearModule(n_inputs, bottleneck, input_layer=True, dtype=dtype,
                                            input_grad=False))
        sizes = [bottleneck or n_inputs, *n_hidden, n_classes]
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            # the first reads the data, or the bottleneck's linear output: gain 1 either way; dL/dX
            # of the data is needed by nothing
            reads_data = i == 0 and not bottleneck
            self.layers.append(LinearModule(fan_in, fan_out, input_layer=reads_data, dtype=dtype,
                                            gain=1.0 if i == 0 else 2.0, input_grad=not reads_data))
            if i < len(n_hidden):  # a hidden layer, not the output layer
                if use_batch_norm:
                    self.layers.append(BatchNormModule(fan_out, dtype=dtype))
                self.layers.append(ACTIVATIONS[activation]())
                if dropout > 0:
                    self.layers.append(DropoutModule(dropout))
            if i == len(n_hidden) - 1:
                self.layers += [self.residual_block(fan_out, block_width or fan_out, activation,
                                                    dropout, dtype, blocks)
                                for _ in range(blocks)]
        self.softmax = SoftMaxModule()

    @staticmethod
    def residual_block(width, inner, activation, dropout, dtype, blocks):
        """X + W₂ σ(W₁ LN(X)): (S, width) -> (S, width), W₁: (inner, width), one of `blocks` R. W₁
        reads LayerNorm's unit-variance output (gain 1), W₂ the activations with gain 2/R: each
        block adds about 1/R of the stream's variance, so R blocks start at about the scale of
        one."""
        branch = [LayerNormModule(width, dtype=dtype),
                  LinearModule(width, inner, dtype=dtype, gain=1.0),
                  ACTIVATIONS[activation](),
                  *([DropoutModule(dropout)] if dropout > 0 else []),
                  LinearModule(inner, width, dtype=dtype, gain=2.0 / blocks)]
        return ResidualBlockModule(branch)

    @property
    def linear_layers(self):
        return [layer for layer in self.layers if isinstance(layer, LinearModule)]

    def modules(self):
        """Every module in the order forward runs them, a residual block's branch in its place."""
        return [module for layer in self.layers for module in
                (layer.branch if isinstance(layer, ResidualBlockModule) else [layer])]

    def input_filters(self):
        """The first Linear layer's weights as filters on the model's input, (N, n_inputs): W,
        or W Pᵀ behind a projection."""
        weight = self.linear_layers[0].params["weight"]
        first = self.layers[0]
        return weight @ first.components.T if isinstance(first, ProjectionModule) else weight

    def train(self, mode=True):
        """Switch every layer to training (or evaluation) mode; eval() is train(False)."""
        for layer in self.layers:
            layer.train(mode)
        return super().train(mode)

    def forward(self, x):
        """x: (S, n_inputs) -> probabilities (S, n_classes)."""
        for layer in self.layers:
            x = layer.forward(x)
        return self.softmax.forward(x)

    def backward(self, dout):
        """dout = dL/d(probabilities): (S, n_classes); fills every layer's grads."""
        self.backward_logits(self.softmax.backward(dout))

    def backward_logits(self, dlogits):
        """dlogits = dL/dZ for the pre-softmax logits Z (see CrossEntropyModule.logits_grad)."""
        for layer in reversed(self.layers):
            dlogits = layer.backward(dlogits)
            if dlogits is None:  # the input layer's: a projection before it needs no gradient
                return

    def clear_cache(self):
        for layer in self.layers + [self.softmax]:
            layer.clear_cache()

    def parameters(self):
        """(name, parameter, gradient) for every parameter, named as in state_dict(). The
        gradient is looked up anew on every call: backward may replace the array."""
        return [(f"layers.{i}.{name}", value, layer.grads[name])
                for i, layer in enumerate(self.layers)
                for name, value in getattr(layer, "params", {}).items()]

    def state_dict(self):
        """A copy of every parameter and buffer (BatchNorm's running statistics, a projection's
        components), named 'layers.<i>.<name>' with i the layer's index in self.layers (the
        PyTorch MLP's indices)."""
        state = {}
        for i, layer in enumerate(self.layers):
            tensors = {**getattr(layer, "params", {}),
                       **(layer.buffers() if hasattr(layer, "buffers") else {})}
            state.update({f"layers.{i}.{name}": value.copy() for name, value in tensors.items()})
        return state

    def load_state_dict(self, state):
        """Copy parameters and statistics in; names and shapes must match state_dict()'s."""
        expected = {name: value.shape for name, value in self.state_dict().items()}
        given = {name: np.shape(value) for name, value in state.items()}
        if expected != given:
            raise ValueError(f"parameters {given} do not fit this model's {expected}")
        for i, layer in enumerate(self.layers):
            for name, value in getattr(layer, "params", {}).items():
                value[...] = state[f"layers.{i}.{name}"]
            for name, value in getattr(layer, "buffers", dict)().items():
                setattr(layer, name, np.array(state[f"layers.{i}.{name}"], value.dtype))
