"""Gradient checks for modules.py and mlp_numpy.py, in float64 against central finite differences.

    python -m pytest unittests.py        (or: python unittests.py)

Every analytic backward pass is compared with (f(x + h) - f(x - h)) / 2h, element by element.
The matrix-calculus identities of the assignment's Section 1 are checked the same way in
tests/test_matrix_calculus.py, and the Hessian-vector products of Question 4 in
tests/test_hessian.py; derivations.md derives each formula and names its test."""
import unittest
import warnings

import numpy as np

from mlp_numpy import MLP
from modules import (
    BatchNormModule,
    CrossEntropyModule,
    DropoutModule,
    ELUModule,
    GELUModule,
    LinearModule,
    ProjectionModule,
    ReLUModule,
    SoftMaxModule,
    TanhModule,
)

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

    def test_input_layer_skips_dx_but_fills_grads(self):
        rng = np.random.default_rng(1)
        x, dout = rng.standard_normal((4, 6)), rng.standard_normal((4, 3))
        plain, first = LinearModule(6, 3), LinearModule(6, 3, input_layer=True)
        first.params["weight"][...] = plain.params["weight"]
        for layer in (plain, first):
            layer.forward(x)
        self.assertIsNone(first.backward(dout))
        plain.backward(dout)
        np.testing.assert_array_equal(first.grads["weight"], plain.grads["weight"])
        asked = LinearModule(6, 3, input_layer=True, input_grad=True)  # a bottleneck after it
        asked.params["weight"][...] = plain.params["weight"]
        asked.forward(x)
        np.testing.assert_array_equal(asked.backward(dout), plain.backward(dout))

    def test_kaiming_std_and_zero_bias(self):
        np.random.seed(0)
        fan_in, fan_out = 1000, 400
        for input_layer, gain in [(False, 2.0), (True, 1.0), (False, 1.0), (True, 2.0)]:
            layer = LinearModule(fan_in, fan_out, input_layer=input_layer, gain=gain)
            weight = layer.params["weight"]
            self.assertEqual(weight.shape, (fan_out, fan_in))
            # 400,000 draws: the sample std is within 0.5% of the target with overwhelming odds
            self.assertAlmostEqual(weight.std() / np.sqrt(gain / fan_in), 1.0, delta=0.005)
            self.assertLess(abs(weight.mean()), 5 * np.sqrt(gain / fan_in / weight.size))
            np.testing.assert_array_equal(layer.params["bias"], 0)

    def test_forward_reads_weights_at_call_time(self):
        layer = LinearModule(3, 2)
        x = np.ones((1, 3))
        before = layer.forward(x).copy()
        layer.params["weight"] += 1.0
        np.testing.assert_allclose(layer.forward(x), before + 3.0)


def orthonormal_columns(rng, rows, columns):
    """A random (rows, columns) matrix with orthonormal columns, as principal components are."""
    return np.linalg.qr(rng.standard_normal((rows, columns)))[0]


class TestProjectionModule(unittest.TestCase):
    def test_backward_matches_finite_differences(self):
        rng = np.random.default_rng(30)
        for batch, fan_in, components in random_shapes(rng):
            layer = ProjectionModule(orthonormal_columns(rng, fan_in, min(components, fan_in)))
            x = rng.standard_normal((batch, fan_in))
            dout = rng.standard_normal((batch, layer.components.shape[1]))
            self.assertEqual(backward_errors(layer, x, dout).keys(), {"x"})  # nothing trained
            self.assertLess(backward_errors(layer, x, dout)["x"], REL_ERROR_MAX)

    def test_forward_projects_onto_the_components(self):
        rng = np.random.default_rng(31)
        layer = ProjectionModule(orthonormal_columns(rng, 7, 3))
        inside = rng.standard_normal((4, 3)) @ layer.components.T  # in the components' span
        np.testing.assert_allclose(layer.forward(inside) @ layer.components.T, inside, atol=1e-12)


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

    def test_relu_and_tanh_backward(self):
        rng = np.random.default_rng(3)
        x = rng.standard_normal((7, 9))
        x += np.sign(x) * 0.01
        for make_module in (ReLUModule, TanhModule):
            self.check_backward(make_module, x, rng.standard_normal((7, 9)))

    def test_gelu_backward(self):
        rng = np.random.default_rng(11)
        for batch, features, _ in random_shapes(rng, 3):
            self.check_backward(GELUModule, rng.standard_normal((batch, features)) * 2,
                                rng.standard_normal((batch, features)))

    def test_softmax_backward(self):
        rng = np.random.default_rng(4)
        for batch, classes, _ in random_shapes(rng):
            self.check_backward(SoftMaxModule, rng.standard_normal((batch, classes)) * 3,
                                rng.standard_normal((batch, classes)))

    def test_elu_has_no_overflow_for_huge_inputs(self):
        x = np.array([[-1000.0, -1.0, 0.0, 1.0, 1000.0]])
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            module = ELUModule(1.0)
            out = module.forward(x)
            dx = module.backward(np.ones_like(x))
        np.testing.assert_allclose(out, [[-1.0, np.expm1(-1.0), 0.0, 1.0, 1000.0]])
        np.testing.assert_allclose(dx, [[0.0, np.exp(-1.0), 1.0, 1.0, 1.0]])

    def test_softmax_is_finite_for_huge_logits(self):
        x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
        with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
            out = SoftMaxModule().forward(x)
        self.assertTrue(np.all(np.isfinite(out)))
        np.testing.assert_allclose(out.sum(axis=1), 1.0)
        np.testing.assert_allclose(out, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])

    def test_modules_keep_float32(self):
        x = np.random.default_rng(5).standard_normal((4, 6)).astype(np.float32)
        for module in (LinearModule(6, 6), ELUModule(1.0), ReLUModule(), TanhModule(),
                       GELUModule(), SoftMaxModule(), BatchNormModule(6), DropoutModule(0.5)):
            out = module.forward(x)
            self.assertEqual(out.dtype, np.float32, type(module).__name__)
            self.assertEqual(module.backward(np.ones_like(out)).dtype, np.float32)
        probs = SoftMaxModule().forward(x)
        self.assertEqual(CrossEntropyModule().logits_grad(probs, [0, 1, 2, 3]).dtype, np.float32)


class RepeatingGenerator:
    """Stands in for a dropout module's Generator and draws the same numbers on every call, so
    that the mask stays fixed while finite differences call forward again and again."""

    def __init__(self, seed):
        self.seed = seed

    def random(self, shape, dtype):
        return np.random.default_rng(self.seed).random(shape, dtype=dtype)


class TestBatchNorm(unittest.TestCase):
    def make(self, rng, features):
        module = BatchNormModule(features)
        module.params["gamma"] = rng.uniform(0.5, 2.0, (1, features))  # not 1 and 0: they count
        module.params["beta"] = rng.standard_normal((1, features))
        return module

    def test_backward_matches_finite_differences_in_training_mode(self):
        rng = np.random.default_rng(12)
        for batch, features in [(2, 1), (3, 5), (8, 4), (16, 9), (5, 30)]:
            module = self.make(rng, features)
            x = rng.standard_normal((batch, features)) * 3 + 1
            dout = rng.standard_normal((batch, features))
            errors = backward_errors(module, x, dout)
            self.assertEqual(set(errors), {"x", "gamma", "beta"})
            for name, error in errors.items():
                self.assertLess(error, REL_ERROR_MAX, (batch, name))

    def test_training_normalizes_with_the_batch_and_updates_running_statistics(self):
        rng = np.random.default_rng(13)
        module = self.make(rng, 4)
        x = rng.standard_normal((10, 4)) * 5 - 2
        out = module.forward(x)
        x_hat = (out - module.params["beta"]) / module.params["gamma"]
        np.testing.assert_allclose(x_hat.mean(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(x_hat.var(axis=0), 1, rtol=1e-5)  # biased, with eps
        np.testing.assert_allclose(module.running_mean, 0.1 * x.mean(axis=0, keepdims=True))
        np.testing.assert_allclose(module.running_var,
                                   0.9 + 0.1 * x.var(axis=0, ddof=1, keepdims=True))

    def test_evaluation_uses_running_statistics_sample_by_sample(self):
        rng = np.random.default_rng(14)
        module = self.make(rng, 3)
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

    def test_one_sample_cannot_be_normalized_in_training(self):
        with self.assertRaisesRegex(ValueError, "one sample"):
            BatchNormModule(3).forward(np.ones((1, 3)))


class TestDropout(unittest.TestCase):
    def test_backward_matches_finite_differences_with_a_fixed_mask(self):
        rng = np.random.default_rng(15)
        for p in (0.1, 0.5, 0.8):
            module = DropoutModule(p, rng=RepeatingGenerator(int(p * 10)))
            x, dout = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
            self.assertLess(backward_errors(module, x, dout)["x"], REL_ERROR_MAX)

    def test_inverted_scaling_and_identity_in_evaluation(self):
        module = DropoutModule(0.25, rng=np.random.default_rng(16))
        x = np.ones((400, 500))
        out = module.forward(x)
        self.assertEqual(set(np.unique(out)), {0.0, 1 / 0.75})
        self.assertAlmostEqual((out == 0).mean(), 0.25, delta=0.005)  # 200,000 draws
        np.testing.assert_array_equal(module.backward(x), out)  # the mask of forward, reused
        module.eval()
        self.assertIs(module.forward(x), x)

    def test_probability_must_leave_something(self):
        for p in (1.0, -0.1):
            with self.assertRaises(ValueError):
                DropoutModule(p)


class TestCrossEntropy(unittest.TestCase):
    def random_problem(self, rng, batch, classes):
        probs = rng.uniform(0.05, 1.0, (batch, classes))
        probs /= probs.sum(axis=1, keepdims=True)
        return probs, rng.integers(0, classes, batch)

    def test_backward_with_integer_and_one_hot_labels(self):
        rng = np.random.default_rng(6)
        for batch, classes, _ in random_shapes(rng):
            probs, labels = self.random_problem(rng, batch, classes)
            one_hot = np.eye(classes)[labels]
            for y in (labels, one_hot):
                loss = CrossEntropyModule()
                analytic = loss.backward(probs, y)
                numeric = numerical_gradient(lambda: loss.forward(probs, y), probs)
                self.assertLess(rel_error(analytic, numeric), REL_ERROR_MAX)
            self.assertAlmostEqual(CrossEntropyModule().forward(probs, labels),
                                   -np.mean(np.log(probs[np.arange(batch), labels])))

    def test_soft_targets(self):
        rng = np.random.default_rng(7)
        probs, _ = self.random_problem(rng, 5, 4)
        targets = rng.dirichlet(np.ones(4), 5)
        loss = CrossEntropyModule()
        numeric = numerical_gradient(lambda: loss.forward(probs, targets), probs)
        self.assertLess(rel_error(loss.backward(probs, targets), numeric), REL_ERROR_MAX)

    def test_label_smoothing_mixes_targets_with_the_uniform_distribution(self):
        rng = np.random.default_rng(17)
        probs, labels = self.random_problem(rng, 6, 5)
        smooth = CrossEntropyModule(label_smoothing=0.2)
        expected = -np.mean(np.sum((0.8 * np.eye(5)[labels] + 0.04) * np.log(probs), axis=1))
        self.assertAlmostEqual(smooth.forward(probs, labels), expected)
        numeric = numerical_gradient(lambda: smooth.forward(probs, labels), probs)
        self.assertLess(rel_error(smooth.backward(probs, labels), numeric), REL_ERROR_MAX)

    def test_fused_gradient_equals_composed_gradient(self):
        rng = np.random.default_rng(8)
        for batch, classes, _ in random_shapes(rng):
            logits = rng.standard_normal((batch, classes))
            softmax, loss = SoftMaxModule(), CrossEntropyModule()
            probs = softmax.forward(logits)
            labels = rng.integers(0, classes, batch)
            composed = softmax.backward(loss.backward(probs, labels))
            fused = loss.logits_grad(probs, labels)
            self.assertLess(rel_error(fused, composed), 1e-10)
            numeric = numerical_gradient(lambda: loss.forward(softmax.forward(logits), labels),
                                         logits)
            self.assertLess(rel_error(fused, numeric), REL_ERROR_MAX)

    def test_fused_gradient_survives_underflowed_probabilities(self):
        logits = np.array([[0.0, -1e4]])  # softmax gives exactly 0 for the true class
        probs = SoftMaxModule().forward(logits)
        self.assertEqual(probs[0, 1], 0.0)
        loss = CrossEntropyModule()
        self.assertTrue(np.isfinite(loss.forward(probs, [1])))
        np.testing.assert_allclose(loss.logits_grad(probs, [1]), [[1.0, -1.0]])


class TestMLP(unittest.TestCase):
    def test_parameter_gradients_of_whole_model(self):
        rng = np.random.default_rng(9)
        for hidden in ([], [7], [6, 5]):
            for activation in ("elu", "tanh"):
                model = MLP(8, hidden, 4, activation=activation, dtype=np.float64)
                x, labels = rng.standard_normal((5, 8)), rng.integers(0, 4, 5)
                loss = CrossEntropyModule()
                probs = model.forward(x)
                model.backward_logits(loss.logits_grad(probs, labels))
                for layer in model.linear_layers:
                    for name in ("weight", "bias"):
                        numeric = numerical_gradient(
                            lambda: loss.forward(model.forward(x), labels), layer.params[name])
                        self.assertLess(rel_error(layer.grads[name], numeric), REL_ERROR_MAX,
                                        f"{hidden} {activation} {name}")

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

    def test_batch_norm_and_dropout_model_gradients(self):
        rng = np.random.default_rng(19)
        for hidden, activation in ([6], "elu"), ([7, 5], "gelu"), ([6, 6], "tanh"):
            model = MLP(8, hidden, 4, use_batch_norm=True, activation=activation, dropout=0.3)
            kinds = [type(layer).__name__ for layer in model.layers]
            self.assertEqual(kinds[:4], ["LinearModule", "BatchNormModule",
                                         type(model.layers[2]).__name__, "DropoutModule"])
            for i, layer in enumerate(model.layers):
                if isinstance(layer, DropoutModule):
                    layer.rng = RepeatingGenerator(i)
                if isinstance(layer, BatchNormModule):
                    layer.params["gamma"] += rng.uniform(-0.5, 0.5, layer.params["gamma"].shape)
                    layer.params["beta"] += rng.standard_normal(layer.params["beta"].shape)
            before_batch_norm = {f"layers.{i - 1}" for i, layer in enumerate(model.layers)
                                 if isinstance(layer, BatchNormModule)}
            x, labels = rng.standard_normal((9, 8)), rng.integers(0, 4, 9)
            loss = CrossEntropyModule(label_smoothing=0.1)
            model.backward_logits(loss.logits_grad(model.forward(x), labels))
            names = [name for name, _, _ in model.parameters()]
            self.assertIn("layers.1.gamma", names)
            for name, param, grad in model.parameters():
                numeric = numerical_gradient(lambda: loss.forward(model.forward(x), labels), param)
                if name.endswith(".bias") and name.replace(".bias", "") in before_batch_norm:
                    # the batch mean cancels this bias: its gradient is exactly 0
                    self.assertLess(np.abs(grad).max(), 1e-14, name)
                    self.assertLess(np.abs(numeric).max(), 1e-8, name)
                    continue
                self.assertLess(rel_error(grad, numeric), REL_ERROR_MAX, (hidden, name))

    def test_linear_bottleneck_model_gradients(self):
        """A linear layer of 3 units first, straight into the first hidden Linear."""
        rng = np.random.default_rng(20)
        for hidden in ([6], [5, 4], []):
            model = MLP(8, hidden, 4, activation="gelu", bottleneck=3)
            kinds = [type(layer).__name__ for layer in model.layers]
            self.assertEqual(kinds[:2], ["LinearModule", "LinearModule"])
            self.assertEqual(model.layers[0].params["weight"].shape, (3, 8))
            x, labels = rng.standard_normal((5, 8)), rng.integers(0, 4, 5)
            loss = CrossEntropyModule()
            model.backward_logits(loss.logits_grad(model.forward(x), labels))
            for name, param, grad in model.parameters():
                numeric = numerical_gradient(lambda: loss.forward(model.forward(x), labels), param)
                self.assertLess(rel_error(grad, numeric), REL_ERROR_MAX, (hidden, name))

    def test_projection_model_gradients(self):
        """A fixed projection of 8 inputs onto 5 components first: the Linear after it is the
        input layer, and no gradient flows into the projection, which has nothing to train."""
        rng = np.random.default_rng(22)
        for hidden, use_batch_norm, bottleneck in (([6], False, 0), ([5, 4], True, 0),
                                                   ([], False, 0), ([6], False, 3)):
            model = MLP(8, hidden, 4, use_batch_norm, "gelu", bottleneck=bottleneck,
                        projection=orthonormal_columns(rng, 8, 5))
            self.assertEqual(type(model.layers[0]).__name__, "ProjectionModule")
            self.assertFalse(model.linear_layers[0].input_grad)
            x, labels = rng.standard_normal((6, 8)), rng.integers(0, 4, 6)
            loss = CrossEntropyModule()
            model.backward_logits(loss.logits_grad(model.forward(x), labels))
            self.assertNotIn("layers.0", " ".join(name for name, _, _ in model.parameters()))
            before_batch_norm = {f"layers.{i - 1}.bias" for i, layer in enumerate(model.layers)
                                 if isinstance(layer, BatchNormModule)}
            for name, param, grad in model.parameters():
                if name in before_batch_norm:
                    continue  # the batch mean cancels it: 0, checked in the test above
                numeric = numerical_gradient(lambda: loss.forward(model.forward(x), labels), param)
                self.assertLess(rel_error(grad, numeric), REL_ERROR_MAX, (hidden, name))

    def test_projection_is_saved_with_the_model_and_filters_reach_the_pixels(self):
        rng = np.random.default_rng(23)
        model = MLP(8, [5], 3, projection=orthonormal_columns(rng, 8, 4))
        other = MLP(8, [5], 3, projection=np.zeros((8, 4)))
        other.load_state_dict(model.state_dict())
        x = rng.standard_normal((3, 8))
        np.testing.assert_array_equal(model.forward(x), other.forward(x))
        first = model.linear_layers[0]
        np.testing.assert_allclose(x @ model.input_filters().T + first.params["bias"],
                                   first.forward(model.layers[0].forward(x)), atol=1e-12)

    def test_linear_20_to_40_with_batch_norm_has_920_parameters(self):
        """The seed's Q5b, counted on the NumPy model: 20*40 + 40 (Linear) + 40 + 40 (γ, β)."""
        model = MLP(20, [40], 10, use_batch_norm=True)
        first_block = [name for name in model.state_dict() if name.startswith(("layers.0.",
                                                                                "layers.1."))]
        parameters = {name: param.size for name, param, _ in model.parameters()}
        self.assertEqual(sum(parameters[name] for name in first_block if name in parameters), 920)
        self.assertEqual(sorted(first_block), ["layers.0.bias", "layers.0.weight",
                                               "layers.1.beta", "layers.1.gamma",
                                               "layers.1.running_mean", "layers.1.running_var"])

    def test_train_and_eval_switch_every_layer(self):
        model = MLP(5, [4], 3, use_batch_norm=True, dropout=0.5)
        self.assertTrue(all(layer.training for layer in model.layers))
        model.eval()
        self.assertFalse(model.training or any(layer.training for layer in model.layers))
        x = np.random.default_rng(20).standard_normal((3, 5))
        np.testing.assert_array_equal(model.forward(x), model.forward(x))  # no dropout now
        model.train()
        self.assertTrue(all(layer.training for layer in model.layers))

    def test_course_backward_path_equals_fused_path(self):
        rng = np.random.default_rng(10)
        model = MLP(6, [5], 3, dtype=np.float64)
        x, labels = rng.standard_normal((4, 6)), rng.integers(0, 3, 4)
        loss = CrossEntropyModule()
        probs = model.forward(x)
        model.backward(loss.backward(probs, labels))
        course = [layer.grads["weight"].copy() for layer in model.linear_layers]
        model.backward_logits(loss.logits_grad(probs, labels))
        for a, b in zip(course, [layer.grads["weight"] for layer in model.linear_layers]):
            self.assertLess(rel_error(a, b), 1e-10)

    def test_logistic_regression_has_one_layer(self):
        model = MLP(10, [], 3)
        self.assertEqual(len(model.layers), 1)
        self.assertEqual(model.forward(np.zeros((2, 10), np.float32)).shape, (2, 3))

    def test_state_dict_round_trip_and_mismatch_message(self):
        model, other = MLP(6, [5], 3, use_batch_norm=True), MLP(6, [5], 3, use_batch_norm=True)
        model.forward(np.random.default_rng(21).standard_normal((8, 6)))  # running statistics move
        other.load_state_dict(model.state_dict())
        model.eval()
        other.eval()
        x = np.ones((2, 6))
        np.testing.assert_array_equal(model.forward(x), other.forward(x))
        with self.assertRaisesRegex(ValueError, r"\(4, 6\).*\(5, 6\)"):
            other.load_state_dict(MLP(6, [4], 3, use_batch_norm=True).state_dict())


if __name__ == "__main__":
    unittest.main()
