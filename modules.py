"""The building blocks of the NumPy MLP, each a forward/backward pair with its cache.

Notation (the assignment's): a batch X holds S samples as rows; a linear module computes
Y = X Wᵀ + B. Every layer's backward takes dL/dY, the gradient of the mean batch loss with respect
to the layer's output, and returns dL/dX (None in the MLP's layer reading the data: nothing
upstream needs it); the loss, CrossEntropyModule, takes the probabilities and the labels instead.
Modules keep their input's dtype: float32 in, float32 out. Every layer has a `training` flag, set
by train() and eval() as in PyTorch: BatchNorm and Dropout behave differently in evaluation."""
import numpy as np


class Module:
    """What every module shares: the training flag and an empty cache."""

    training = True
    cache = None

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def clear_cache(self):
        self.cache = None


class LinearModule(Module):
    """Fully connected layer Y = X Wᵀ + B.

    x: (S, M) -> (S, N); params 'weight' W: (N, M), 'bias' b: (1, N) (B is b repeated S times).
    Backward: dL/dW = (dL/dY)ᵀ X,  dL/db = 1ᵀ dL/dY,  dL/dX = (dL/dY) W."""

    def __init__(self, in_features, out_features, input_layer=False, dtype=np.float64,
                 gain=None, input_grad=True):
        """Kaiming init W ~ N(0, gain / M), zero bias. input_layer, the course's argument, marks
        the layer that reads the data. gain: 1 where the inputs have unit variance (the normalized
        pixels, or a linear bottleneck's output), which it passes on unchanged; 2 where they are
        ELU outputs, of which about half are squashed. Default: 1 for the input layer, else 2;
        another gain rescales the default's draw, so that a seed draws the same numbers whatever
        the gain. input_grad: whether backward computes dL/dX, as the course's backward does; the
        MLP turns it off for the layer that reads the data, where nothing upstream needs it."""
        default_gain = 1.0 if input_layer else 2.0
        weight = np.random.normal(0.0, np.sqrt(default_gain / in_features),
                                  (out_features, in_features)).astype(dtype)
        if gain is not None and gain != default_gain:
            weight /= np.sqrt(default_gain / gain)
        self.input_grad = input_grad
        self.params = {"weight": weight, "bias": np.zeros((1, out_features), dtype)}
        self.grads = {"weight": np.zeros_like(self.params["weight"]),
                      "bias": np.zeros_like(self.params["bias"])}

    def forward(self, x):
        """x: (S, M) -> Y = X Wᵀ + B: (S, N). Integer or boolean x is taken in W's precision."""
        if x.dtype.kind != "f":
            x = x.astype(self.params["weight"].dtype)
        # params are read at call time: finite-difference checks perturb them in place
        weight, bias = (self.params[key].astype(x.dtype, copy=False) for key in ("weight", "bias"))
        self.cache = x
        return x @ weight.T + bias

    def backward(self, dout):
        """dout = dL/dY: (S, N) -> dL/dX: (S, M), or None without input_grad; sets grads to new
        arrays dL/dW and dL/db, as the course's backward does: gradients kept stay as they were."""
        x = self.cache
        self.grads["weight"] = dout.T @ x
        self.grads["bias"] = dout.sum(axis=0, keepdims=True)
        if not self.input_grad:
            return None
        return dout @ self.params["weight"].astype(dout.dtype, copy=False)


class ProjectionModule(Module):
    """A fixed linear map onto K directions: Y = X P, P: (M, K) not trained (the top K principal
    components that ZCA whitening fitted: training.preprocessing.Preprocessing
    .principal_components).

    x: (S, M) -> (S, K); no params; the buffer 'components' P, saved with the model. Backward:
    dL/dX = (dL/dY) Pᵀ. Inside the MLP it comes first and its backward is never called: nothing
    upstream needs dL/dX."""

    def __init__(self, components, dtype=None):
        """components: P (M, K), fitted by a run or read from a saved model; dtype: P's
        precision, its own by default."""
        self.components = np.asarray(components, dtype)

    def forward(self, x):
        """x: (S, M) -> X P: (S, K)."""
        if x.dtype.kind != "f":
            x = x.astype(self.components.dtype)
        return x @ self.components.astype(x.dtype, copy=False)

    def backward(self, dout):
        """dout = dL/dY: (S, K) -> dL/dX: (S, M)."""
        return dout @ self.components.T.astype(dout.dtype, copy=False)

    def buffers(self):
        return {"components": self.components}


class ELUModule(Module):
    """ELU: y = x for x > 0, alpha (eˣ - 1) otherwise; elementwise, (S, N) -> (S, N). Backward:
    dL/dx = dL/dy ⊙ (1 for x > 0, y + alpha otherwise), as d/dx alpha (eˣ - 1) = y + alpha."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def forward(self, x):
        # expm1 only ever sees x <= 0: no overflow for large positive x. Arithmetic rather than
        # np.where(x > 0, x, ...): 9.0 ms against 13.9 ms on (256, 2048) float32.
        out = np.maximum(x, 0) + self.alpha * np.expm1(np.minimum(x, 0))
        self.cache = x > 0, out
        return out

    def backward(self, dout):
        positive, out = self.cache
        return dout * (positive + (out + self.alpha) * ~positive)


class ReLUModule(Module):
    """ReLU: y = max(x, 0); (S, N) -> (S, N). Backward: dL/dx = dL/dy ⊙ [x > 0]."""

    def forward(self, x):
        self.cache = x > 0
        return x * self.cache

    def backward(self, dout):
        return dout * self.cache


class TanhModule(Module):
    """Tanh: y = tanh(x); (S, N) -> (S, N). Backward: dL/dx = dL/dy ⊙ (1 - y²)."""

    def forward(self, x):
        self.cache = np.tanh(x)
        return self.cache

    def backward(self, dout):
        return dout * (1 - self.cache ** 2)


class GELUModule(Module):
    """GELU in its tanh form: y = x Φ(x) ≈ ½ x (1 + tanh u), u = c x (1 + k x²), c = √(2/π),
    k = 0.044715; elementwise, (S, N) -> (S, N). The same curve as nn.GELU(approximate='tanh').

    Backward: dL/dx = dL/dy ⊙ (½ (1 + t) + ½ x (1 - t²) c (1 + 3k x²)), t = tanh u."""

    C, K = float(np.sqrt(2 / np.pi)), 0.044715  # Python floats: float32 stays float32

    def forward(self, x):
        # x * x, not x ** 3: pow() per element cost 8.4 ms against 2.3 ms on (256, 2048) float32
        t = np.tanh((x * x * self.K + 1) * x * self.C)
        self.cache = x, t
        return 0.5 * x * (1 + t)

    def backward(self, dout):
        x, t = self.cache
        # the closed form term by term in place, as BatchNorm's backward: --preset best's hidden
        # layers' forward and backward took 42.0 ms against 44.3 (fastest of 60, interleaved)
        slope = 1 - t * t
        slope *= x
        slope *= 0.5 * self.C
        cubic = x * (3 * self.K)
        cubic *= x
        cubic += 1
        slope *= cubic
        grad = 0.5 * (1 + t)
        grad += slope
        grad *= dout
        return grad


class BatchNormModule(Module):
    """Batch normalization of each feature: Y = γ ⊙ X̂ + β, X̂ = (X - μ) / √(σ² + eps).

    x: (S, N) -> (S, N); params 'gamma' γ: (1, N) (starts at 1) and 'beta' β: (1, N) (starts at 0).
    Training: μ and σ² are the batch's mean and biased variance, and the running estimates move
    towards them as torch.nn.BatchNorm1d's do: r <- (1 - momentum) r + momentum b, with the
    unbiased variance S/(S-1) σ². Evaluation: μ and σ² are the running estimates.
    Backward: dL/dγ = Σ_s dL/dY ⊙ X̂,  dL/dβ = Σ_s dL/dY, and in training, through μ and σ²,
    dL/dX = γ/√(σ² + eps) ⊙ (dL/dY - (1/S) dL/dβ - (1/S) X̂ ⊙ dL/dγ); in evaluation, where μ and
    σ² are constants, dL/dX = γ/√(σ² + eps) ⊙ dL/dY."""

    def __init__(self, n_features, eps=1e-5, momentum=0.1, dtype=np.float64):
        self.eps, self.momentum = eps, momentum
        self.params = {"gamma": np.ones((1, n_features), dtype),
                       "beta": np.zeros((1, n_features), dtype)}
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self.running_mean = np.zeros((1, n_features), dtype)
        self.running_var = np.ones((1, n_features), dtype)

    def forward(self, x):
        gamma, beta = (self.params[name].astype(x.dtype, copy=False) for name in ("gamma", "beta"))
        if not self.training:
            # one multiply-add: the running statistics folded into a scale and a shift
            scale = gamma / np.sqrt(self.running_var.astype(x.dtype, copy=False) + self.eps)
            self.cache = x, None  # X̂ is made by a backward, if one comes
            return x * scale + (beta - self.running_mean.astype(x.dtype, copy=False) * scale)
        if len(x) < 2:
            raise ValueError("BatchNorm cannot normalize a batch of one sample in training mode")
        mean = x.mean(axis=0, keepdims=True)
        x_hat = x - mean
        var = np.mean(x_hat * x_hat, axis=0, keepdims=True)
        inv_std = 1 / np.sqrt(var + self.eps)
        x_hat *= inv_std
        self.cache = x_hat, inv_std
        m = self.momentum
        self.running_mean = (1 - m) * self.running_mean + m * mean
        self.running_var = (1 - m) * self.running_var + m * var * (len(x) / (len(x) - 1))
        return x_hat * gamma + beta

    def backward(self, dout):
        x_hat, inv_std = self.cache
        evaluation = inv_std is None
        if evaluation:
            inv_std = 1 / np.sqrt(self.running_var.astype(dout.dtype, copy=False) + self.eps)
            x_hat = (x_hat - self.running_mean.astype(dout.dtype, copy=False)) * inv_std
        # one scratch array for the (S, N) products, in place: see GELUModule.backward
        scratch = dout * x_hat
        self.grads["gamma"] = np.sum(scratch, axis=0, keepdims=True)
        self.grads["beta"] = dout.sum(axis=0, keepdims=True)
        gamma = self.params["gamma"].astype(dout.dtype, copy=False)
        if evaluation:
            return dout * (gamma * inv_std)
        batch = len(dout)
        dx = dout - self.grads["beta"] / batch
        dx -= np.multiply(x_hat, self.grads["gamma"] / batch, out=scratch)
        dx *= gamma * inv_std
        return dx

    def buffers(self):
        """The running statistics, saved with the parameters."""
        return {"running_mean": self.running_mean, "running_var": self.running_var}


class LayerNormModule(Module):
    """Layer normalization of each sample: Y = X̂ ⊙ γ + β, X̂ = (X - μ) / √(σ² + eps), with μ and
    σ² each row's mean and biased variance over its N features; the same in training and
    evaluation, as torch.nn.LayerNorm.

    x: (S, N) -> (S, N); params 'gamma' γ: (1, N) (starts at 1) and 'beta' β: (1, N) (starts at 0).
    Backward, row by row through μ and σ² (G = dL/dY ⊙ γ, mean_N over the row's features):
    dL/dγ = Σ_s dL/dY ⊙ X̂,  dL/dβ = Σ_s dL/dY,
    dL/dX = 1/√(σ² + eps) ⊙ (G - mean_N(G) - X̂ ⊙ mean_N(G ⊙ X̂))."""

    def __init__(self, n_features, eps=1e-5, dtype=np.float64):
        self.eps = eps
        self.params = {"gamma": np.ones((1, n_features), dtype),
                       "beta": np.zeros((1, n_features), dtype)}
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}

    def forward(self, x):
        gamma, beta = (self.params[name].astype(x.dtype, copy=False) for name in ("gamma", "beta"))
        x_hat = x - x.mean(axis=1, keepdims=True)
        inv_std = 1 / np.sqrt(np.mean(x_hat * x_hat, axis=1, keepdims=True) + self.eps)
        x_hat *= inv_std
        self.cache = x_hat, inv_std
        return x_hat * gamma + beta

    def backward(self, dout):
        x_hat, inv_std = self.cache
        self.grads["gamma"] = np.sum(dout * x_hat, axis=0, keepdims=True)
        self.grads["beta"] = dout.sum(axis=0, keepdims=True)
        g = dout * self.params["gamma"].astype(dout.dtype, copy=False)
        return inv_std * (g - g.mean(axis=1, keepdims=True)
                          - x_hat * np.mean(g * x_hat, axis=1, keepdims=True))


class ResidualBlockModule(Module):
    """A residual block Y = X + F(X), the branch F a list of modules run in turn (the MLP's:
    LayerNorm -> Linear -> activation [-> Dropout] -> Linear, F(X) = W₂ σ(W₁ LN(X))).

    x: (S, N) -> (S, N). Backward: dL/dX = dL/dY + F'ᵀ(dL/dY), the branch's backward of dL/dY.
    params and grads name the branch's as 'branch.<j>.<name>', j the module's index in branch
    (torch.nn's names for a Sequential called branch)."""

    def __init__(self, branch):
        self.branch = list(branch)

    @property
    def params(self):
        return {f"branch.{j}.{name}": value for j, module in enumerate(self.branch)
                for name, value in getattr(module, "params", {}).items()}

    @property
    def grads(self):
        # looked up on every call: a module's backward may replace its gradient arrays
        return {f"branch.{j}.{name}": value for j, module in enumerate(self.branch)
                for name, value in getattr(module, "grads", {}).items()}

    def train(self, mode=True):
        for module in self.branch:
            module.train(mode)
        return super().train(mode)

    def clear_cache(self):
        for module in self.branch:
            module.clear_cache()

    def forward(self, x):
        out = x
        for module in self.branch:
            out = module.forward(out)
        return x + out

    def backward(self, dout):
        dbranch = dout
        for module in reversed(self.branch):
            dbranch = module.backward(dbranch)
        return dout + dbranch


class DropoutModule(Module):
    """Inverted dropout: training zeroes each entry with probability p and scales the rest by
    1/(1 - p), so evaluation, the identity, sees activations of the same expected size.

    x: (S, N) -> (S, N). The mask M (entries 0 or 1/(1 - p)) drawn in forward is reused by
    backward: Y = X ⊙ M, dL/dX = dL/dY ⊙ M. rng: a numpy Generator (default: seeded from
    np.random, so np.random.seed makes the masks reproducible)."""

    def __init__(self, p, rng=None):
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must lie in [0, 1), got {p}")
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng(np.random.randint(2 ** 31))

    def forward(self, x):
        if not self.training or self.p == 0:
            self.cache = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.p
        self.cache = keep * x.dtype.type(1 / (1 - self.p))
        return x * self.cache

    def backward(self, dout):
        return dout if self.cache is None else dout * self.cache


class SoftMaxModule(Module):
    """Row-wise softmax Y_ij = exp(X_ij) / Σ_k exp(X_ik); (S, C) -> (S, C).

    Backward: dL/dX = Y ⊙ (dL/dY - rowsum(dL/dY ⊙ Y) 1ᵀ)."""

    def forward(self, x):
        # softmax is shift-invariant; subtracting the row max keeps exp from overflowing
        exps = np.exp(x - x.max(axis=1, keepdims=True))
        self.cache = exps / exps.sum(axis=1, keepdims=True)
        return self.cache

    def backward(self, dout):
        return self.cache * (dout - (dout * self.cache).sum(axis=1, keepdims=True))


def as_targets(y, shape, dtype):
    """Labels (S,) of integers in 0..C-1 or target rows (S, C), one-hot or soft, -> T: (S, C) for
    predictions of shape (S, C); others are a ValueError (-1 or labels (S, 1) would not fail)."""
    y, (rows, classes) = np.asarray(y), shape
    if y.shape == shape:
        return y.astype(dtype, copy=False)
    if y.shape != (rows,) or not np.issubdtype(y.dtype, np.integer) or \
            (rows and not 0 <= y.min() <= y.max() < classes):
        raise ValueError(f"labels must be integers in 0..{classes - 1}, ({rows},), or target rows "
                         f"{shape}; got {y.dtype} labels of shape {y.shape}")
    targets = np.zeros(shape, dtype)
    targets[np.arange(rows), y] = 1
    return targets


class CrossEntropyModule:
    """Mean cross-entropy L = -(1/S) Σ_i Σ_k T_ik log X_ik of probabilities X: (S, C).

    y holds integer labels (S,) or target rows (S, C), one-hot or soft. label_smoothing ε mixes
    every target row with the uniform distribution, T = (1 - ε) T + ε/C, as
    nn.CrossEntropyLoss(label_smoothing=ε) does. Backward: dL/dX = -(1/S) T ⊘ X."""

    def __init__(self, label_smoothing=0.0):
        self.label_smoothing = label_smoothing

    def targets(self, y, x):
        targets = as_targets(y, x.shape, x.dtype)
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / x.shape[1]
        return targets

    def forward(self, x, y):
        # probabilities that underflowed to 0 would give log 0 = -inf; tiny keeps the loss finite
        log_x = np.log(np.maximum(x, np.finfo(x.dtype).tiny))
        return -(self.targets(y, x) * log_x).sum() / len(x)

    def backward(self, x, y):
        return -self.targets(y, x) / (x * len(x))

    def logits_grad(self, probs, y):
        """Gradient through softmax and cross-entropy at once: dL/dZ = α M, α = 1/S, M = Y - T.

        probs Y = softmax(Z): (S, C). The softmax Jacobian cancels the 1 ⊘ X of backward, so
        nothing is divided by a probability that may have underflowed to 0. Training uses this."""
        return (probs - self.targets(y, probs)) / len(probs)
