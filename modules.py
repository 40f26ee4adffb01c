"""The building blocks of the NumPy MLP, each a forward/backward pair with its cache.

Notation (the assignment's): a batch X holds S samples as rows; a linear module computes
Y = X Wᵀ + B. Every backward takes dL/dY, the gradient of the mean batch loss with respect to the
module's output, and returns dL/dX. Modules keep the dtype of their input: float32 in, float32 out.
"""
import numpy as np


class LinearModule:
    """Fully connected layer Y = X Wᵀ + B.

    x: (S, M) -> (S, N); params 'weight' W: (N, M), 'bias' b: (1, N) (B is b repeated S times).
    Backward: dL/dW = (dL/dY)ᵀ X,  dL/db = 1ᵀ dL/dY,  dL/dX = (dL/dY) W.
    """

    def __init__(self, in_features, out_features, input_layer=False, dtype=np.float64):
        """Kaiming init, zero bias; input_layer marks the layer that reads the data itself.

        Hidden layers read ELU outputs, of which about half are squashed, so they need twice the
        variance (std = sqrt(2 / M)); the input layer reads normalized pixels of unit variance,
        which std = sqrt(1 / M) passes on unchanged.
        """
        gain = 1.0 if input_layer else 2.0
        weight = np.random.normal(0.0, np.sqrt(gain / in_features), (out_features, in_features))
        self.input_layer = input_layer
        self.params = {"weight": weight.astype(dtype), "bias": np.zeros((1, out_features), dtype)}
        self.grads = {"weight": np.zeros_like(self.params["weight"]),
                      "bias": np.zeros_like(self.params["bias"])}
        self.cache = None

    def forward(self, x):
        """x: (S, M) -> Y = X Wᵀ + B: (S, N)."""
        # params are read at call time: finite-difference checks perturb them in place
        weight = self.params["weight"].astype(x.dtype, copy=False)
        self.cache = x
        out = x @ weight.T
        out += self.params["bias"]
        return out

    def backward(self, dout):
        """dout = dL/dY: (S, N) -> dL/dX: (S, M); fills grads with dL/dW and dL/db.

        The input layer returns None: nothing upstream needs dL/dX, and skipping it saves a
        third of the layer's work.
        """
        x = self.cache
        # written into the existing buffer: a fresh weight-sized array each step costs page faults
        np.matmul(dout.T, x, out=self.grads["weight"])
        self.grads["bias"] = dout.sum(axis=0, keepdims=True)
        if self.input_layer:
            return None
        return dout @ self.params["weight"].astype(dout.dtype, copy=False)

    def clear_cache(self):
        self.cache = None


class ELUModule:
    """ELU: y = x for x > 0, alpha (eˣ - 1) otherwise; elementwise, (S, N) -> (S, N).

    Backward: dL/dx = dL/dy ⊙ (1 for x > 0, y + alpha otherwise), as d/dx alpha (eˣ - 1) = y + alpha.
    """

    def __init__(self, alpha=1.0):
        self.alpha = alpha
        self.cache = None

    def forward(self, x):
        # expm1 only ever sees x <= 0: no overflow for large positive x. Arithmetic rather than
        # np.where, which is several times slower on arrays of this size.
        out = np.maximum(x, 0) + self.alpha * np.expm1(np.minimum(x, 0))
        self.cache = x > 0, out
        return out

    def backward(self, dout):
        positive, out = self.cache
        return dout * (positive + (out + self.alpha) * ~positive)

    def clear_cache(self):
        self.cache = None


class ReLUModule:
    """ReLU: y = max(x, 0); (S, N) -> (S, N). Backward: dL/dx = dL/dy ⊙ [x > 0]."""

    def __init__(self):
        self.cache = None

    def forward(self, x):
        self.cache = x > 0
        return x * self.cache

    def backward(self, dout):
        return dout * self.cache

    def clear_cache(self):
        self.cache = None


class TanhModule:
    """Tanh: y = tanh(x); (S, N) -> (S, N). Backward: dL/dx = dL/dy ⊙ (1 - y²)."""

    def __init__(self):
        self.cache = None

    def forward(self, x):
        self.cache = np.tanh(x)
        return self.cache

    def backward(self, dout):
        return dout * (1 - self.cache ** 2)

    def clear_cache(self):
        self.cache = None


class SoftMaxModule:
    """Row-wise softmax Y_ij = exp(X_ij) / Σ_k exp(X_ik); (S, C) -> (S, C).

    Backward: dL/dX = Y ⊙ (dL/dY - rowsum(dL/dY ⊙ Y) 1ᵀ).
    """

    def __init__(self):
        self.cache = None

    def forward(self, x):
        # softmax is shift-invariant; subtracting the row max keeps exp from overflowing
        exps = np.exp(x - x.max(axis=1, keepdims=True))
        out = exps / exps.sum(axis=1, keepdims=True)
        self.cache = out
        return out

    def backward(self, dout):
        out = self.cache
        return out * (dout - (dout * out).sum(axis=1, keepdims=True))

    def clear_cache(self):
        self.cache = None


def as_targets(y, num_classes, dtype):
    """Labels (S,) of integers, or target rows (S, C) (one-hot or soft), -> T: (S, C)."""
    y = np.asarray(y)
    if y.ndim == 2:
        return y.astype(dtype, copy=False)
    targets = np.zeros((len(y), num_classes), dtype)
    targets[np.arange(len(y)), y] = 1
    return targets


class CrossEntropyModule:
    """Mean cross-entropy L = -(1/S) Σ_i Σ_k T_ik log X_ik of probabilities X: (S, C).

    y holds integer labels (S,) or target rows T: (S, C), one-hot or soft.
    Backward: dL/dX = -(1/S) T ⊘ X.
    """

    def forward(self, x, y):
        targets = as_targets(y, x.shape[1], x.dtype)
        # probabilities that underflowed to 0 would give log 0 = -inf; tiny keeps the loss finite
        log_x = np.log(np.maximum(x, np.finfo(x.dtype).tiny))
        return -(targets * log_x).sum() / len(x)

    def backward(self, x, y):
        targets = as_targets(y, x.shape[1], x.dtype)
        return -targets / (x * len(x))

    def logits_grad(self, probs, y):
        """Gradient through softmax and cross-entropy at once: dL/dZ = α M, α = 1/S, M = Y - T.

        probs Y = softmax(Z): (S, C). The softmax Jacobian cancels the 1 ⊘ X of backward, so
        nothing is divided by a probability that may have underflowed to 0. Training uses this.
        """
        return (probs - as_targets(y, probs.shape[1], probs.dtype)) / len(probs)
