"""modules.py beyond the course's checks in unittests.py: the layers the project adds (projection,
Tanh, GELU, BatchNorm, LayerNorm, the residual block, dropout) against finite differences and their
own rules, the Linear layer's initialization and its input layer that skips dL/dX, cross-entropy
with soft and smoothed targets and its fused gradient, numbers that must not overflow, float32 kept,
and what the modules take as inputs and labels, and what they refuse."""
import warnings

import numpy as np
import pytest
import torch
from helpers import RepeatingGenerator, orthonormal_columns
from unittests import REL_ERROR_MAX, backward_errors, numerical_gradient, random_shapes, rel_error

from mlp_numpy import MLP
from modules import (BatchNormModule, CrossEntropyModule, DropoutModule, ELUModule, GELUModule,
                     LayerNormModule, LinearModule, ProjectionModule, ReLUModule,
                     ResidualBlockModule, SoftMaxModule, TanhModule)


def check_backward(make_module, x, dout):
    assert backward_errors(make_module(), x, dout)["x"] < REL_ERROR_MAX


# --- Linear and the projection before it ---
def test_a_layer_without_input_grad_skips_dx_and_the_courses_input_layer_returns_it():
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal((4, 6)), rng.standard_normal((4, 3))
    plain, first = LinearModule(6, 3), LinearModule(6, 3, input_layer=True, input_grad=False)
    first.params["weight"][...] = plain.params["weight"]
    for layer in (plain, first):
        layer.forward(x)
    assert first.backward(dout) is None
    plain.backward(dout)
    np.testing.assert_array_equal(first.grads["weight"], plain.grads["weight"])
    course = LinearModule(6, 3, input_layer=True)  # the course's backward returns dL/dX
    course.params["weight"][...] = plain.params["weight"]
    course.forward(x)
    np.testing.assert_array_equal(course.backward(dout), plain.backward(dout))


def test_linear_backward_sets_new_gradient_arrays_as_the_courses_does():
    """A gradient kept from one step, as a grader's check may keep it, stays that step's."""
    rng = np.random.default_rng(2)
    layer, x = LinearModule(5, 3), rng.standard_normal((4, 5))
    kept = []
    for _ in range(2):
        dout = rng.standard_normal((4, 3))
        layer.forward(x)
        layer.backward(dout)
        kept.append((dict(layer.grads), dout))
    for grads, dout in kept:
        np.testing.assert_allclose(grads["weight"], dout.T @ x)
        np.testing.assert_allclose(grads["bias"], dout.sum(axis=0, keepdims=True))


def test_kaiming_std_and_zero_bias():
    np.random.seed(0)
    fan_in, fan_out = 1000, 400
    for input_layer, gain in [(False, 2.0), (True, 1.0), (False, 1.0), (True, 2.0)]:
        layer = LinearModule(fan_in, fan_out, input_layer=input_layer, gain=gain)
        weight = layer.params["weight"]
        assert weight.shape == (fan_out, fan_in)
        # 400,000 draws: the sample std is within 0.5% of the target with overwhelming odds
        assert abs(weight.std() / np.sqrt(gain / fan_in) - 1.0) <= 0.005
        assert abs(weight.mean()) < 5 * np.sqrt(gain / fan_in / weight.size)
        np.testing.assert_array_equal(layer.params["bias"], 0)


def test_forward_reads_weights_at_call_time():
    layer = LinearModule(3, 2)
    x = np.ones((1, 3))
    before = layer.forward(x).copy()
    layer.params["weight"] += 1.0
    np.testing.assert_allclose(layer.forward(x), before + 3.0)


def test_projection_backward_matches_finite_differences():
    rng = np.random.default_rng(30)
    for batch, fan_in, components in random_shapes(rng):
        layer = ProjectionModule(orthonormal_columns(rng, fan_in, min(components, fan_in)))
        x = rng.standard_normal((batch, fan_in))
        dout = rng.standard_normal((batch, layer.components.shape[1]))
        assert backward_errors(layer, x, dout).keys() == {"x"}  # nothing trained
        assert backward_errors(layer, x, dout)["x"] < REL_ERROR_MAX


def test_projection_forward_projects_onto_the_components():
    rng = np.random.default_rng(31)
    layer = ProjectionModule(orthonormal_columns(rng, 7, 3))
    inside = rng.standard_normal((4, 3)) @ layer.components.T  # in the components' span
    np.testing.assert_allclose(layer.forward(inside) @ layer.components.T, inside, atol=1e-12)


# --- activations beyond the course's ---
def test_tanh_backward():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 9))
    x += np.sign(x) * 0.01
    check_backward(TanhModule, x, rng.standard_normal((7, 9)))


def test_gelu_backward():
    rng = np.random.default_rng(11)
    for batch, features, _ in random_shapes(rng, 3):
        check_backward(GELUModule, rng.standard_normal((batch, features)) * 2,
                       rng.standard_normal((batch, features)))


def test_elu_has_no_overflow_for_huge_inputs():
    x = np.array([[-1000.0, -1.0, 0.0, 1.0, 1000.0]])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        module = ELUModule(1.0)
        out = module.forward(x)
        dx = module.backward(np.ones_like(x))
    np.testing.assert_allclose(out, [[-1.0, np.expm1(-1.0), 0.0, 1.0, 1000.0]])
    np.testing.assert_allclose(dx, [[0.0, np.exp(-1.0), 1.0, 1.0, 1.0]])


def test_softmax_is_finite_for_huge_logits():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        out = SoftMaxModule().forward(x)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_allclose(out, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])


def test_modules_keep_float32():
    x = np.random.default_rng(5).standard_normal((4, 6)).astype(np.float32)
    for module in (LinearModule(6, 6), ELUModule(1.0), ReLUModule(), TanhModule(),
                   GELUModule(), SoftMaxModule(), BatchNormModule(6), DropoutModule(0.5)):
        out = module.forward(x)
        assert out.dtype == np.float32, type(module).__name__
        assert module.backward(np.ones_like(out)).dtype == np.float32
    probs = SoftMaxModule().forward(x)
    assert CrossEntropyModule().logits_grad(probs, [0, 1, 2, 3]).dtype == np.float32


# --- BatchNorm and LayerNorm ---
def normalization(module_class, rng, features):
    """A BatchNormModule or LayerNormModule whose γ and β are not 1 and 0, so that they count."""
    module = module_class(features)
    module.params["gamma"] = rng.uniform(0.5, 2.0, (1, features))
    module.params["beta"] = rng.standard_normal((1, features))
    return module


# BatchNorm in training mode, through the batch's mean and variance; LayerNorm through each
# sample's, which needs 3 features for a gradient away from 0
@pytest.mark.parametrize("module_class, seed, shapes", [
    (BatchNormModule, 12, [(2, 1), (3, 5), (8, 4), (16, 9), (5, 30)]),
    (LayerNormModule, 30, [(1, 3), (3, 5), (8, 4), (16, 9), (5, 30)])])
def test_normalization_backward_matches_finite_differences(module_class, seed, shapes):
    rng = np.random.default_rng(seed)
    for batch, features in shapes:
        module = normalization(module_class, rng, features)
        x = rng.standard_normal((batch, features)) * 3 + 1
        dout = rng.standard_normal((batch, features))
        errors = backward_errors(module, x, dout)
        assert set(errors) == {"x", "gamma", "beta"}
        for name, error in errors.items():
            assert error < REL_ERROR_MAX, (batch, features, name)


def test_batch_norm_backward_in_evaluation_holds_the_running_statistics_constant():
    """After an evaluation forward, backward differentiates the layer evaluation computes (as
    torch's BatchNorm1d in eval mode), not the last training batch's."""
    rng = np.random.default_rng(15)
    module = normalization(BatchNormModule, rng, 6)
    for _ in range(3):  # running statistics away from 0 and 1, and a training cache left behind
        module.forward(rng.standard_normal((12, 6)) * 2 + 1)
    module.eval()
    x, dout = rng.standard_normal((5, 6)) * 2 + 1, rng.standard_normal((5, 6))
    errors = backward_errors(module, x, dout)
    assert set(errors) == {"x", "gamma", "beta"}
    assert max(errors.values()) < REL_ERROR_MAX, errors
    layer = torch.nn.BatchNorm1d(6, dtype=torch.float64).eval()
    with torch.no_grad():
        for name, value in (("weight", "gamma"), ("bias", "beta")):
            getattr(layer, name).copy_(torch.from_numpy(module.params[value][0]))
        layer.running_mean.copy_(torch.from_numpy(module.running_mean[0]))
        layer.running_var.copy_(torch.from_numpy(module.running_var[0]))
    x_torch = torch.from_numpy(x).requires_grad_()
    layer(x_torch).backward(torch.from_numpy(dout))
    module.forward(x)
    np.testing.assert_allclose(module.backward(dout), x_torch.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(module.grads["gamma"][0], layer.weight.grad.numpy(), rtol=1e-12)


def test_batch_norm_training_normalizes_with_the_batch_and_updates_running_statistics():
    rng = np.random.default_rng(13)
    module = normalization(BatchNormModule, rng, 4)
    x = rng.standard_normal((10, 4)) * 5 - 2
    out = module.forward(x)
    x_hat = (out - module.params["beta"]) / module.params["gamma"]
    np.testing.assert_allclose(x_hat.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(x_hat.var(axis=0), 1, rtol=1e-5)  # biased, with eps
    np.testing.assert_allclose(module.running_mean, 0.1 * x.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(module.running_var,
                               0.9 + 0.1 * x.var(axis=0, ddof=1, keepdims=True))


def test_batch_norm_evaluation_uses_running_statistics_sample_by_sample():
    rng = np.random.default_rng(14)
    module = normalization(BatchNormModule, rng, 3)
    for _ in range(5):
        module.forward(rng.standard_normal((20, 3)) * 2 + 1)
    module.eval()
    x = rng.standard_normal((6, 3))
    together = module.forward(x)
    alone = np.concatenate([module.forward(x[i:i + 1]) for i in range(6)])
    np.testing.assert_allclose(together, alone)
    expected = ((x - module.running_mean) / np.sqrt(module.running_var + module.eps)
                * module.params["gamma"] + module.params["beta"])
    np.testing.assert_allclose(together, expected)


def test_batch_norm_cannot_normalize_one_sample_in_training():
    with pytest.raises(ValueError, match="one sample"):
        BatchNormModule(3).forward(np.ones((1, 3)))


def test_layer_norm_normalizes_each_sample_on_its_own_in_training_and_evaluation():
    rng = np.random.default_rng(31)
    module = LayerNormModule(50)
    x = rng.standard_normal((4, 50)) * rng.uniform(1, 10, (4, 1)) + rng.uniform(-5, 5, (4, 1))
    y = module.forward(x)
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=1), 1, rtol=1e-4)  # eps lowers it a little
    # the batch plays no part
    np.testing.assert_allclose(module.forward(x[2:3]), y[2:3], rtol=1e-12)
    module.eval()
    np.testing.assert_array_equal(module.forward(x), y)


def residual_block(rng, width, inner):
    return ResidualBlockModule([normalization(LayerNormModule, rng, width),
                                LinearModule(width, inner, gain=1.0), GELUModule(),
                                LinearModule(inner, width)])


def test_residual_block_backward_matches_finite_differences():
    rng = np.random.default_rng(32)
    for batch, width, inner in [(1, 3, 2), (6, 5, 7), (9, 8, 4)]:
        block = residual_block(rng, width, inner)
        block.branch[-1].params["bias"] = rng.standard_normal((1, width))
        x, dout = rng.standard_normal((batch, width)), rng.standard_normal((batch, width))
        errors = backward_errors(block, x, dout)
        assert set(errors) == {"x", "branch.0.gamma", "branch.0.beta", "branch.1.weight",
                               "branch.1.bias", "branch.3.weight", "branch.3.bias"}
        for name, error in errors.items():
            assert error < REL_ERROR_MAX, (batch, width, inner, name)


def test_residual_block_adds_its_branch_to_its_input():
    rng = np.random.default_rng(33)
    block = residual_block(rng, 4, 6)
    x = rng.standard_normal((3, 4))
    branch = x
    for module in block.branch:
        branch = module.forward(branch)
    np.testing.assert_array_equal(block.forward(x), x + branch)
    block.branch[-1].params["weight"][...] = 0  # a branch of 0 leaves the identity
    np.testing.assert_array_equal(block.forward(x), x)


# --- dropout ---
def test_dropout_backward_matches_finite_differences_with_a_fixed_mask():
    rng = np.random.default_rng(15)
    for p in (0.1, 0.5, 0.8):
        module = DropoutModule(p, rng=RepeatingGenerator(int(p * 10)))
        x, dout = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
        assert backward_errors(module, x, dout)["x"] < REL_ERROR_MAX


def test_dropout_scales_inverted_and_is_the_identity_in_evaluation():
    module = DropoutModule(0.25, rng=np.random.default_rng(16))
    x = np.ones((400, 500))
    out = module.forward(x)
    assert set(np.unique(out)) == {0.0, 1 / 0.75}
    assert abs((out == 0).mean() - 0.25) <= 0.005  # 200,000 draws
    np.testing.assert_array_equal(module.backward(x), out)  # the mask of forward, reused
    module.eval()
    assert module.forward(x) is x


def test_dropout_probability_must_leave_something():
    for p in (1.0, -0.1):
        with pytest.raises(ValueError):
            DropoutModule(p)


# --- cross-entropy beyond integer and one-hot labels ---
def random_problem(rng, batch, classes):
    probs = rng.uniform(0.05, 1.0, (batch, classes))
    probs /= probs.sum(axis=1, keepdims=True)
    return probs, rng.integers(0, classes, batch)


def test_cross_entropy_with_soft_targets():
    rng = np.random.default_rng(7)
    probs, _ = random_problem(rng, 5, 4)
    targets = rng.dirichlet(np.ones(4), 5)
    loss = CrossEntropyModule()
    numeric = numerical_gradient(lambda: loss.forward(probs, targets), probs)
    assert rel_error(loss.backward(probs, targets), numeric) < REL_ERROR_MAX


def test_label_smoothing_mixes_targets_with_the_uniform_distribution():
    rng = np.random.default_rng(17)
    probs, labels = random_problem(rng, 6, 5)
    smooth = CrossEntropyModule(label_smoothing=0.2)
    expected = -np.mean(np.sum((0.8 * np.eye(5)[labels] + 0.04) * np.log(probs), axis=1))
    assert smooth.forward(probs, labels) == pytest.approx(expected, abs=5e-8)
    numeric = numerical_gradient(lambda: smooth.forward(probs, labels), probs)
    assert rel_error(smooth.backward(probs, labels), numeric) < REL_ERROR_MAX


def test_fused_gradient_equals_composed_gradient():
    rng = np.random.default_rng(8)
    for batch, classes, _ in random_shapes(rng):
        logits = rng.standard_normal((batch, classes))
        softmax, loss = SoftMaxModule(), CrossEntropyModule()
        probs = softmax.forward(logits)
        labels = rng.integers(0, classes, batch)
        composed = softmax.backward(loss.backward(probs, labels))
        fused = loss.logits_grad(probs, labels)
        assert rel_error(fused, composed) < 1e-10
        numeric = numerical_gradient(lambda: loss.forward(softmax.forward(logits), labels),
                                     logits)
        assert rel_error(fused, numeric) < REL_ERROR_MAX


def test_fused_gradient_survives_underflowed_probabilities():
    logits = np.array([[0.0, -1e4]])  # softmax gives exactly 0 for the true class
    probs = SoftMaxModule().forward(logits)
    assert probs[0, 1] == 0.0
    loss = CrossEntropyModule()
    assert np.isfinite(loss.forward(probs, [1]))
    np.testing.assert_allclose(loss.logits_grad(probs, [1]), [[1.0, -1.0]])


# --- what the modules take, and refuse ---
@pytest.mark.parametrize("dtype", [np.int64, np.uint8, bool])
def test_integer_and_boolean_inputs_are_taken_in_the_weights_precision(dtype):
    np.random.seed(0)
    model = MLP(6, [4], 3)
    x = (np.arange(12).reshape(2, 6) % 2).astype(dtype)
    np.testing.assert_array_equal(model.forward(x), model.forward(x.astype(np.float64)))
    layer = LinearModule(6, 4)
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x.astype(np.float64)))


@pytest.mark.parametrize("labels", [[-1, 0], [5, 0], [0.0, 1.0], [True, False]])
def test_labels_outside_the_classes_are_refused(labels):
    probabilities = np.full((2, 5), 0.2)
    for compute in (CrossEntropyModule().forward, CrossEntropyModule().backward,
                    CrossEntropyModule().logits_grad):
        with pytest.raises(ValueError, match="labels must be integers in 0..4"):
            compute(probabilities, np.array(labels))


@pytest.mark.parametrize("labels", [np.array([[0], [1], [2]]), np.array([1]), np.eye(4)[:2]])
def test_labels_that_do_not_fit_the_predictions_are_refused(labels):
    """Labels (S, 1) would broadcast against every class, and one label would stand for all."""
    with pytest.raises(ValueError, match="labels must be integers in 0..3, \\(3,\\), or target "
                                         "rows"):
        CrossEntropyModule().forward(np.full((3, 4), 0.25), labels)
