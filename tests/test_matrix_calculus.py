"""The matrix-calculus identities of the assignment's Section 1, each closed form checked in float64
against central finite differences, with random non-symmetric B, V, W and a non-square Q, so that
a wrong transpose fails. Denominator layout: the gradient of a scalar has the shape of its
argument."""
import numpy as np
import pytest

STEP = 1e-6


def numeric_gradient(f, x):
    """∂f/∂x of a scalar f by central differences, one entry of x at a time."""
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = STEP
        gradient[index] = (f(x + step) - f(x - step)) / (2 * STEP)
    return gradient


def numeric_jacobian(f, x):
    """∂f_k/∂x_i of an array-valued f, with the axes of f first: shape f(x).shape + x.shape."""
    jacobian = np.zeros(f(x).shape + x.shape)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = STEP
        jacobian[(...,) + index] = (f(x + step) - f(x - step)) / (2 * STEP)
    return jacobian


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_gradient_of_a_dot_product(rng):
    """f = x·a = Σ_i x_i a_i, so ∂f/∂x_i = a_i: ∂f/∂x = a."""
    x, a = rng.standard_normal(5), rng.standard_normal(5)
    np.testing.assert_allclose(numeric_gradient(lambda x: x @ a, x), a, atol=1e-8)


def test_gradient_of_a_bilinear_form_in_its_matrix(rng):
    """f = bᵀXc = Σ_ij b_i X_ij c_j, so ∂f/∂X_ij = b_i c_j: ∂f/∂X = b cᵀ (an outer product)."""
    b, c, X = rng.standard_normal(4), rng.standard_normal(3), rng.standard_normal((4, 3))
    np.testing.assert_allclose(numeric_gradient(lambda X: b @ X @ c, X), np.outer(b, c),
                               atol=1e-8)


def test_gradient_of_a_quadratic_form(rng):
    """f = xᵀBx = Σ_ij x_i B_ij x_j, so ∂f/∂x_k = Σ_j B_kj x_j + Σ_i x_i B_ik: (B + Bᵀ) x, which
    is 2Bx only for a symmetric B."""
    B, x = rng.standard_normal((5, 5)), rng.standard_normal(5)
    np.testing.assert_allclose(numeric_gradient(lambda x: x @ B @ x, x), (B + B.T) @ x,
                               atol=1e-8)
    assert not np.allclose((B + B.T) @ x, 2 * B @ x)  # B is not symmetric: 2Bx would fail


def test_jacobian_of_a_gram_matrix(rng):
    """F = QᵀQ, F_kl = Σ_i Q_ik Q_il, so ∂F_kl/∂Q_ij = δ_lj Q_ik + δ_kj Q_il; along a direction H,
    dF = HᵀQ + QᵀH. Q is 4 x 3: a transpose in the wrong place has the wrong shape or value."""
    Q, H = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    identity = np.eye(3)
    closed_form = (np.einsum("ik,lj->klij", Q, identity)
                   + np.einsum("kj,il->klij", identity, Q))
    np.testing.assert_allclose(numeric_jacobian(lambda Q: Q.T @ Q, Q), closed_form, atol=1e-8)
    np.testing.assert_allclose(np.einsum("klij,ij->kl", closed_form, H), H.T @ Q + Q.T @ H,
                               atol=1e-12)


def test_gradient_of_the_trace_of_a_product(rng):
    """f = tr(VXW) = Σ_ijk V_ij X_jk W_ki, so ∂f/∂X_jk = Σ_i W_ki V_ij = (WV)_kj: ∂f/∂X = VᵀWᵀ."""
    V, X, W = (rng.standard_normal(shape) for shape in ((3, 4), (4, 5), (5, 3)))
    np.testing.assert_allclose(numeric_gradient(lambda X: np.trace(V @ X @ W), X), V.T @ W.T,
                               atol=1e-8)


def test_gradient_of_the_euclidean_norm(rng):
    """f = ‖w‖ = (Σ_i w_i²)^½, so ∂f/∂w_i = w_i / ‖w‖: the unit vector along w (for w ≠ 0)."""
    w = rng.standard_normal(6)
    np.testing.assert_allclose(numeric_gradient(np.linalg.norm, w), w / np.linalg.norm(w),
                               atol=1e-8)


def test_gradient_of_the_trace(rng):
    """f = tr(S) = Σ_i S_ii, so ∂f/∂S_ij = δ_ij: ∂f/∂S = I, whatever S is."""
    S = rng.standard_normal((4, 4))
    np.testing.assert_allclose(numeric_gradient(np.trace, S), np.eye(4), atol=1e-8)


def test_the_checks_fail_on_a_wrong_transpose(rng):
    """The finite differences tell each closed form from its transposed or symmetrized twin."""
    B, x = rng.standard_normal((5, 5)), rng.standard_normal(5)
    assert not np.allclose(numeric_gradient(lambda x: x @ B @ x, x), 2 * B @ x, atol=1e-6)
    V, X, W = (rng.standard_normal(shape) for shape in ((3, 4), (4, 4), (4, 3)))
    assert not np.allclose(numeric_gradient(lambda X: np.trace(V @ X @ W), X), W @ V, atol=1e-6)
