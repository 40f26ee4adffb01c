"""A multi-layer perceptron in NumPy, built from the modules with hand-written backward passes."""
import numpy as np

from modules import ELUModule, LinearModule, ReLUModule, SoftMaxModule, TanhModule

ACTIVATIONS = {"elu": lambda: ELUModule(alpha=1.0), "relu": ReLUModule, "tanh": TanhModule}


class MLP:
    """Linear -> activation for each hidden layer, then a final Linear and a softmax.

    x: (S, n_inputs) -> class probabilities (S, n_classes). n_hidden=[] gives multinomial logistic
    regression. Parameters are float32 unless dtype says otherwise (float64 for gradient checks).
    """

    def __init__(self, n_inputs, n_hidden, n_classes, activation="elu", dtype=np.float32):
        sizes = [n_inputs, *n_hidden, n_classes]
        self.layers = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i > 0:
                self.layers.append(ACTIVATIONS[activation]())
            self.layers.append(LinearModule(fan_in, fan_out, input_layer=(i == 0), dtype=dtype))
        self.softmax = SoftMaxModule()

    @property
    def linear_layers(self):
        return [layer for layer in self.layers if isinstance(layer, LinearModule)]

    def forward(self, x):
        """x: (S, n_inputs) -> probabilities (S, n_classes)."""
        for layer in self.layers:
            x = layer.forward(x)
        return self.softmax.forward(x)

    def backward(self, dout):
        """dout = dL/d(probabilities): (S, n_classes); fills every linear layer's grads."""
        self.backward_logits(self.softmax.backward(dout))

    def backward_logits(self, dlogits):
        """dlogits = dL/dZ for the pre-softmax logits Z (see CrossEntropyModule.logits_grad)."""
        for layer in reversed(self.layers):
            dlogits = layer.backward(dlogits)

    def clear_cache(self):
        for layer in self.layers + [self.softmax]:
            layer.clear_cache()

    def state_dict(self):
        """A copy of every parameter, named 'layers.<i>.weight' and 'layers.<i>.bias'."""
        return {f"layers.{i}.{name}": value.copy() for i, layer in enumerate(self.linear_layers)
                for name, value in layer.params.items()}

    def load_state_dict(self, state):
        """Copy parameters in; names and shapes must match state_dict()'s."""
        expected = {name: value.shape for name, value in self.state_dict().items()}
        given = {name: np.shape(value) for name, value in state.items()}
        if expected != given:
            raise ValueError(f"parameters {given} do not fit this model's {expected}")
        for i, layer in enumerate(self.linear_layers):
            for name in layer.params:
                layer.params[name][...] = state[f"layers.{i}.{name}"]

