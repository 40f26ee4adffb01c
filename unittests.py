"""The course's gradient checks, for modules.py and mlp_numpy.py, in float64 against central finite
differences.

    python -m pytest unittests.py        (or: python unittests.py)

What the course's own unittests.py checks, in its 2021, 2022, 2024 and 2025 editions: the Linear
layer's backward pass, the activation of each edition (ReLU, ELU with its alpha), SoftMax and
cross-entropy; and, as the course's graders build it, the whole MLP. Every analytic backward pass
is compared with (f(x + h) - f(x - h)) / 2h, element by element. The project's own modules and
options are checked in tests/ (tests/test_modules.py, tests/test_mlp_numpy.py), the
matrix-calculus identities of the assignment's Section 1 in tests/test_matrix_calculus.py;
derivations.md derives each formula and names its test."""
import unittest

import numpy as np

from mlp_numpy import MLP
from modules import CrossEntropyModule, ELUModule, LinearModule, ReLUModule, SoftMaxModule

REL_ERROR_MAX = 1e-7


def rel_error(x, y):
    """||x - y|| / (||x|| + ||y||): relative to the whole gradient, so that entries that are zero
    analytically (finite differences give ~1e-11 there) do not count as huge relative errors."""
    return np.linalg.norm(x - y) / max(1e-12, np.linalg.norm(x) + np.linalg.norm(y))


def numerical_gradient(f, x, h=1e-6):
    """dF/dx for a scalar function f() of the array x, which is perturbed in place."""
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        original = x[ix]
        x[ix] = original + h
        f_plus = f()
        x[ix] = original - h
        f_minus = f()
        x[ix] = original
        grad[ix] = (f_plus - f_minus) / (2 * h)
    return grad


def numerical_gradient_array(f, x, dout, h=1e-6):
    """dL/dx for L = sum(f() * dout), i.e. the vector-Jacobian product a backward must return."""
    return numerical_gradient(lambda: np.sum(f() * dout), x, h)


def backward_errors(module, x, dout):
    """Relative error of each gradient a module's backward gives at x (dL/dx as 'x', then every
    parameter's) against central differences of L = sum(forward(x) * dout)."""
    module.forward(x)
    analytic = {"x": module.backward(dout), **getattr(module, "grads", {})}
    inputs = {"x": x, **getattr(module, "params", {})}
    return {name: rel_error(grad, numerical_gradient_array(lambda: module.forward(x),
                                                           inputs[name], dout))
            for name, grad in analytic.items()}


def random_shapes(rng, count=5):
    return [(int(rng.integers(1, 12)), int(rng.integers(1, 30)), int(rng.integers(1, 12)))
            for _ in range(count)]


class TestLinearModule(unittest.TestCase):
    def test_backward_matches_finite_differences(self):
        rng = np.random.default_rng(0)
        for batch, fan_in, fan_out in random_shapes(rng):
            layer = LinearModule(fan_in, fan_out)
            layer.params["bias"] = rng.standard_normal((1, fan_out))
            x = rng.standard_normal((batch, fan_in))
            dout = rng.standard_normal((batch, fan_out))
            errors = backward_errors(layer, x, dout)
            self.assertEqual(set(errors), {"x", "weight", "bias"})
            for name, error in errors.items():
                self.assertLess(error, REL_ERROR_MAX, name)


class TestActivations(unittest.TestCase):
    def check_backward(self, make_module, x, dout):
        self.assertLess(backward_errors(make_module(), x, dout)["x"], REL_ERROR_MAX)

    def test_elu_backward_for_several_alphas(self):
        rng = np.random.default_rng(2)
        for alpha in (0.1, 0.5, 1.0, 1.7):
            for batch, features, _ in random_shapes(rng, 3):
                # keep inputs away from the kink at 0, where the derivative jumps for alpha != 1
                x = rng.standard_normal((batch, features))
                x += np.sign(x) * 0.01
                self.check_backward(lambda: ELUModule(alpha), x,
                                    rng.standard_normal((batch, features)))

    def test_relu_backward(self):
        rng = np.random.default_rng(3)
        x = rng.standard_normal((7, 9))
        x += np.sign(x) * 0.01
        self.check_backward(ReLUModule, x, rng.standard_normal((7, 9)))

    def test_softmax_backward(self):
        rng = np.random.default_rng(4)
        for batch, classes, _ in random_shapes(rng):
            self.check_backward(SoftMaxModule, rng.standard_normal((batch, classes)) * 3,
                                rng.standard_normal((batch, classes)))


class TestCrossEntropy(unittest.TestCase):
    def test_backward_with_integer_and_one_hot_labels(self):
        rng = np.random.default_rng(6)
        for batch, classes, _ in random_shapes(rng):
            probs = rng.uniform(0.05, 1.0, (batch, classes))
            probs /= probs.sum(axis=1, keepdims=True)
            labels = rng.integers(0, classes, batch)
            one_hot = np.eye(classes)[labels]
            for y in (labels, one_hot):
                loss = CrossEntropyModule()
                analytic = loss.backward(probs, y)
                numeric = numerical_gradient(lambda: loss.forward(probs, y), probs)
                self.assertLess(rel_error(analytic, numeric), REL_ERROR_MAX)
            self.assertAlmostEqual(CrossEntropyModule().forward(probs, labels),
                                   -np.mean(np.log(probs[np.arange(batch), labels])))


class TestMLP(unittest.TestCase):
    def test_default_model_is_float64_and_passes_the_course_check(self):
        """Built without arguments, as the course's graders build it, at their 1e-5."""
        rng = np.random.default_rng(18)
        model = MLP(7, [5, 4], 3)
        x, labels = rng.standard_normal((6, 7)), rng.integers(0, 3, 6)
        self.assertEqual(model.forward(x).dtype, np.float64)
        loss = CrossEntropyModule()
        model.backward(loss.backward(model.forward(x), labels))
        for name, param, grad in model.parameters():
            numeric = numerical_gradient(lambda: loss.forward(model.forward(x), labels), param)
            self.assertLess(rel_error(grad, numeric), 1e-5, name)


if __name__ == "__main__":
    unittest.main()
