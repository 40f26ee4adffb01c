"""The Hessian of the NumPy MLP's loss, known through its products with vectors, each computed
from the hand-written backward pass alone (no autograd):

    H v = (∇L(θ + h v) - ∇L(θ - h v)) / 2h + O(h²),

central differences of two gradients in float64, θ being every parameter of the model flattened
into one vector. spectrum.py turns these products into extreme eigenvalues and a density."""
import numpy as np

from modules import BatchNormModule, CrossEntropyModule, DropoutModule
from questions import spectrum

# The displacement ‖h v‖. Measured against autograd on the course's MLP at its best epoch
# (4,000 images, three random v): relative differences 4e-5 to 1.2e-4 at 1e-4 and 5e-6 to 1e-4
# at 1e-5, where some ELU inputs change sides of its kink (ELU'' jumps there); 6e-9 to 9e-9 at
# 1e-6; 5e-8 to 9e-8 at 1e-7, where rounding, which grows like 1/h, takes over (a measurement not
# saved). Every run of the experiment measures one random v again at this step
# (autograd_relative_error in results/hessian/summary.json).
STEP = 1e-6
# t of the loss-only second difference. Measured along the smallest eigenvalue's vector of the
# course's MLP at its best epoch, against uᵀ H u: relative differences 1e-2 at 1e-3, where ELU
# inputs cross its kink within ±t; 1e-5 at 1e-4; 1.5e-6 at 1e-5; 2e-4 at 1e-6, where rounding's
# 1e-16 L / t² takes over (a measurement not saved; each run checks this step once).
CURVATURE_STEP = 1e-5


class LossSurface:
    """L(θ): the mean cross-entropy of a float64 mlp_numpy.MLP on fixed images (S, M) and integer
    labels (S,), as a function of the vector θ of all its parameters (model.parameters()'s order).

    The model is the one the trainers build without BatchNorm and dropout, whose loss depends on
    nothing but θ and the images. Between evaluations the model holds the surface's own θ."""

    def __init__(self, model, images, labels):
        if any(isinstance(layer, (BatchNormModule, DropoutModule)) for layer in model.layers):
            raise ValueError("the loss surface is that of an MLP without BatchNorm and dropout, "
                             "whose loss is a function of its parameters alone")
        self.model, self.images, self.labels = model.train(), images, labels
        self.loss_module = CrossEntropyModule()
        self.shapes = [value.shape for _, value, _ in model.parameters()]
        self.theta = np.concatenate([value.ravel() for _, value, _ in model.parameters()])

    @property
    def dim(self):
        return len(self.theta)

    def set_parameters(self, theta):
        start = 0
        for (_, value, _), shape in zip(self.model.parameters(), self.shapes):
            value[...] = theta[start:start + value.size].reshape(shape)
            start += value.size

    def probabilities_at(self, theta):
        """The model's forward pass with the parameters θ, which the model keeps until
        restore()."""
        self.set_parameters(theta)
        return self.model.forward(self.images)

    def restore(self):
        self.set_parameters(self.theta)

    def loss(self, theta):
        loss = float(self.loss_module.forward(self.probabilities_at(theta), self.labels))
        self.restore()
        return loss

    def gradient(self, theta):
        """∇L(θ) (dim,), by the model's backward pass through the fused softmax-cross-entropy
        gradient."""
        probs = self.probabilities_at(theta)
        self.model.backward_logits(self.loss_module.logits_grad(probs, self.labels))
        gradient = np.concatenate([grad.ravel() for _, _, grad in self.model.parameters()])
        self.restore()
        return gradient

    def hessian_vector_product(self, v):
        """H v at the surface's θ, by central differences of gradients (see the module's text)."""
        h = STEP / np.linalg.norm(v)
        return (self.gradient(self.theta + h * v) - self.gradient(self.theta - h * v)) / (2 * h)

    def curvature_along(self, u, t):
        """The second difference (L(θ + t u) - 2 L(θ) + L(θ - t u)) / t² of unit u: uᵀ H u + O(t²)
        from loss values alone, a check on H v that shares none of its gradient code."""
        return (self.loss(self.theta + t * u) - 2 * self.loss(self.theta)
                + self.loss(self.theta - t * u)) / t ** 2


def pytorch_twin(model, twin):
    """twin, an mlp_pytorch.MLP built like the NumPy model, in float64 and holding its weights:
    the model autograd differentiates."""
    import torch
    twin = twin.double()
    twin.load_state_dict({name: torch.from_numpy(value).reshape(twin.state_dict()[name].shape)
                          for name, value in model.state_dict().items()})
    return twin


def autograd_hessian_vector_product(twin, images, labels, v):
    """H v by torch's double backward: twin is a float64 mlp_pytorch.MLP holding the NumPy
    model's weights, v is flat in the NumPy model's parameter order (which is twin's). The
    reference the finite differences are measured against."""
    import torch
    params = list(twin.parameters())
    loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(images)),
                                             torch.from_numpy(labels))
    gradient = torch.autograd.grad(loss, params, create_graph=True)
    pieces = torch.from_numpy(v).split([p.numel() for p in params])
    directional = sum((g * piece.reshape(g.shape)).sum() for g, piece in zip(gradient, pieces))
    product = torch.autograd.grad(directional, params)
    return torch.cat([p.reshape(-1) for p in product]).numpy()


def autograd_relative_error(surface, twin, rng):
    """‖H v - H_autograd v‖ / ‖H_autograd v‖ for one random v: how far the finite differences
    are from torch's double backward on this very model and data."""
    v = rng.standard_normal(surface.dim)
    reference = autograd_hessian_vector_product(twin, surface.images, surface.labels, v)
    return float(np.linalg.norm(surface.hessian_vector_product(v) - reference)
                 / np.linalg.norm(reference))


def spectrum_summary(surface, lanczos_steps, slq_steps, probes, rng):
    """What the report shows of the Hessian at the surface's θ, as JSON-ready numbers: the loss
    and gradient norm there; the smallest and largest eigenvalue by Lanczos with their residual
    bounds; the curvature along the smallest's Ritz vector measured from loss values alone; and
    the SLQ rules (nodes, weights) of `probes` random probes."""
    pairs = spectrum.extreme_eigenpairs(surface.hessian_vector_product,
                                        rng.standard_normal(surface.dim), lanczos_steps)
    rules = spectrum.slq(surface.hessian_vector_product, surface.dim, slq_steps, probes, rng)
    return {
        "parameters": surface.dim, "loss": surface.loss(surface.theta),
        "gradient_norm": float(np.linalg.norm(surface.gradient(surface.theta))),
        **{name: {"value": pair["value"], "residual": pair["residual"]}
           for name, pair in pairs.items()},
        "curvature_along_smallest": surface.curvature_along(pairs["smallest"]["vector"],
                                                            CURVATURE_STEP),
        "slq": [{"nodes": nodes.tolist(), "weights": weights.tolist()}
                for nodes, weights in rules]}
