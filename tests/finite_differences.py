"""What the gradient checks of unittests.py and of tests/ share: central finite differences, the
relative error they are judged by, and inputs for them (random shapes, a dropout mask that stays
put, orthonormal components). NumPy alone, so that unittests.py runs without the rest."""
import numpy as np

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


class RepeatingGenerator:
    """Stands in for a dropout module's Generator and draws the same numbers on every call, so
    that the mask stays fixed while finite differences call forward again and again."""

    def __init__(self, seed):
        self.seed = seed

    def random(self, shape, dtype):
        return np.random.default_rng(self.seed).random(shape, dtype=dtype)


def orthonormal_columns(rng, rows, columns):
    """A random (rows, columns) matrix with orthonormal columns, as principal components are."""
    return np.linalg.qr(rng.standard_normal((rows, columns)))[0]
