"""Hessian-vector products of the NumPy MLP (hessian.py), from its hand-written backward pass
alone, against torch's double backward, and Lanczos on them against the full Hessian."""
import numpy as np
import pytest
import torch

import mlp_pytorch
from mlp_numpy import MLP
from questions import hessian, spectrum


def surface_and_twin(hidden, activation, seed=0, inputs=20, classes=10, samples=64):
    """A float64 NumPy MLP's loss surface on random data, and the PyTorch MLP with its weights."""
    np.random.seed(seed)
    model = MLP(inputs, hidden, classes, activation=activation)
    rng = np.random.default_rng(seed)
    images, labels = rng.standard_normal((samples, inputs)), rng.integers(0, classes, samples)
    twin = hessian.pytorch_twin(model, mlp_pytorch.MLP(inputs, hidden, classes,
                                                       activation=activation))
    return hessian.LossSurface(model, images, labels), twin


@pytest.mark.parametrize("hidden, activation", [([16, 12], "elu"), ([16], "tanh"),
                                                ([16, 12], "gelu")])
def test_hessian_vector_products_match_autograd(hidden, activation):
    surface, twin = surface_and_twin(hidden, activation)
    rng = np.random.default_rng(1)
    for _ in range(3):
        v = rng.standard_normal(surface.dim)
        reference = hessian.autograd_hessian_vector_product(twin, surface.images, surface.labels,
                                                            v)
        error = np.linalg.norm(surface.hessian_vector_product(v) - reference)
        assert error / np.linalg.norm(reference) < 1e-6
    assert hessian.autograd_relative_error(surface, twin, rng) < 1e-6


@pytest.mark.parametrize("norm", [1e-4, 1e4])
def test_products_match_autograd_whatever_the_length_of_v(norm):
    """The displacement ‖h v‖ is STEP whatever ‖v‖, as the comment on STEP measured it. A step h
    of STEP itself would displace θ by STEP·‖v‖: 1e-10 for the short v, where rounding (1e-16 /
    displacement) puts the product 1e-5 off autograd, and 1e-2 for the long one, where ELU
    inputs cross its kink and put it 1e-2 off."""
    surface, twin = surface_and_twin([16, 12], "elu")
    v = np.random.default_rng(7).standard_normal(surface.dim)
    v *= norm / np.linalg.norm(v)
    reference = hessian.autograd_hessian_vector_product(twin, surface.images, surface.labels, v)
    error = np.linalg.norm(surface.hessian_vector_product(v) - reference)
    assert error / np.linalg.norm(reference) < 1e-6


def test_gradient_and_loss_are_the_models_own():
    surface, twin = surface_and_twin([16, 12], "elu")
    loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(surface.images)),
                                             torch.from_numpy(surface.labels))
    reference = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, twin.parameters())])
    assert surface.loss(surface.theta) == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(surface.gradient(surface.theta), reference.numpy(), rtol=1e-9,
                               atol=1e-14)


def test_products_are_symmetric_and_linear():
    surface, _ = surface_and_twin([16, 12], "elu")
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal((2, surface.dim))
    hu, hv = surface.hessian_vector_product(u), surface.hessian_vector_product(v)
    assert u @ hv == pytest.approx(v @ hu, rel=1e-7)
    np.testing.assert_allclose(surface.hessian_vector_product(2 * u - 3 * v), 2 * hu - 3 * hv,
                               rtol=1e-6, atol=1e-9)


def test_lanczos_on_the_products_finds_the_full_hessians_extreme_eigenvalues():
    """A model small enough for its whole Hessian (torch's, 133 x 133): Lanczos from the NumPy
    products finds its smallest (negative) and largest eigenvalue."""
    surface, twin = surface_and_twin([8], "elu", inputs=10, classes=5, samples=40)
    params = list(twin.parameters())
    shapes = [p.shape for p in params]

    def loss_of(flat):
        pieces = iter(flat.split([int(np.prod(s)) for s in shapes]))
        values = {name: next(pieces).reshape(shape)
                  for (name, _), shape in zip(twin.named_parameters(), shapes)}
        logits = torch.func.functional_call(twin, values, (torch.from_numpy(surface.images),))
        return torch.nn.functional.cross_entropy(logits, torch.from_numpy(surface.labels))

    full = torch.autograd.functional.hessian(loss_of, torch.cat([p.detach().reshape(-1)
                                                                 for p in params])).numpy()
    exact = np.linalg.eigvalsh(full)
    assert exact[0] < 0 < exact[-1]
    pairs = spectrum.extreme_eigenpairs(surface.hessian_vector_product,
                                        np.random.default_rng(3).standard_normal(surface.dim), 133)
    assert pairs["smallest"]["value"] == pytest.approx(exact[0], abs=1e-6)
    assert pairs["largest"]["value"] == pytest.approx(exact[-1], abs=1e-6)


def test_curvature_from_losses_alone_agrees_with_the_products():
    surface, _ = surface_and_twin([16, 12], "tanh")
    u = np.random.default_rng(4).standard_normal(surface.dim)
    u /= np.linalg.norm(u)
    # Tanh is smooth, so t = 1e-3 is exact to O(t²), and the rounding (1e-16 L / t²) stays far
    # below this random direction's small curvature
    assert surface.curvature_along(u, 1e-3) == pytest.approx(
        u @ surface.hessian_vector_product(u), rel=1e-5)


def test_the_model_keeps_its_parameters_whatever_the_surface_evaluates():
    """Products, losses away from θ and the whole summary leave the model at θ, so that
    whatever reads the model afterwards (autograd's check) reads the point measured."""
    surface, twin = surface_and_twin([16], "elu")
    state = {name: value.copy() for name, value in surface.model.state_dict().items()}

    def assert_model_at_theta():
        for name, value in surface.model.state_dict().items():
            np.testing.assert_array_equal(value, state[name])

    surface.hessian_vector_product(np.ones(surface.dim))
    assert_model_at_theta()
    summary = hessian.spectrum_summary(surface, 10, 5, 2, np.random.default_rng(5))
    assert summary["curvature_along_smallest"] < 0
    assert_model_at_theta()
    assert hessian.autograd_relative_error(surface, twin, np.random.default_rng(6)) < 1e-6


def test_the_summary_reports_consistent_numbers():
    surface, _ = surface_and_twin([16], "elu")
    summary = hessian.spectrum_summary(surface, 30, 10, 2, np.random.default_rng(5))
    assert summary["parameters"] == surface.dim
    assert summary["smallest"]["value"] < 0 < summary["largest"]["value"]
    assert summary["curvature_along_smallest"] == pytest.approx(summary["smallest"]["value"],
                                                                rel=1e-3)
    for rule in summary["slq"]:
        assert min(rule["nodes"]) >= summary["smallest"]["value"] - 1e-6
        assert max(rule["nodes"]) <= summary["largest"]["value"] + 1e-6
        assert sum(rule["weights"]) == pytest.approx(1)


def test_models_whose_loss_depends_on_more_than_the_parameters_are_refused():
    for settings in (dict(use_batch_norm=True), dict(dropout=0.5)):
        with pytest.raises(ValueError, match="without BatchNorm and dropout"):
            hessian.LossSurface(MLP(5, [4], 3, **settings), np.zeros((2, 5)), np.zeros(2, int))
