"""Lanczos and stochastic Lanczos quadrature (spectrum.py) on matrices whose spectrum is known:
A = U diag(λ) Uᵀ with a random orthogonal U and λ chosen here."""
import numpy as np
import pytest

from questions import spectrum


def matrix_with_spectrum(eigenvalues, rng):
    u, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return (u * eigenvalues) @ u.T


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_lanczos_basis_is_orthonormal_and_tridiagonalizes(rng):
    a = matrix_with_spectrum(rng.uniform(-1, 3, 200), rng)
    alpha, beta, basis = spectrum.lanczos(lambda v: a @ v, rng.standard_normal(200), 30)
    assert basis.shape == (30, 200)
    np.testing.assert_allclose(basis @ basis.T, np.eye(30), atol=1e-12)
    t = np.diag(alpha) + np.diag(beta[:-1], 1) + np.diag(beta[:-1], -1)
    np.testing.assert_allclose(basis @ a @ basis.T, t, atol=1e-12)


def test_lanczos_stays_orthonormal_on_a_spectrum_of_tight_clusters(rng):
    """Five clusters of 40 eigenvalues each, 1e-8 wide, like a Hessian's bulk piled up near zero.
    After five steps the Krylov space nearly holds an invariant subspace: what A q_5 has outside
    the basis, β_5, is 2e-7 against ‖A‖ = 3, what is left once its components along the basis
    are subtracted. One pass leaves their rounding (1e-16 ‖A‖) in it, and q_6 comes out 6e-9 off
    orthogonal; the later steps build on it until the basis is off by 1 after 30 steps and the
    smallest Ritz value is -5.9 for a λ_min of -2. The second pass removes what the first left."""
    eigenvalues = np.repeat([-2.0, -1.0, 0.5, 1.0, 3.0], 40) + 1e-8 * rng.standard_normal(200)
    a = matrix_with_spectrum(eigenvalues, rng)
    alpha, beta, basis = spectrum.lanczos(lambda v: a @ v, rng.standard_normal(200), 30)
    assert len(alpha) == 30
    np.testing.assert_allclose(basis @ basis.T, np.eye(30), atol=1e-12)
    values = spectrum.ritz(alpha, beta)[0]
    assert eigenvalues.min() - 1e-12 <= values[0] <= eigenvalues.min() + 1e-8
    assert eigenvalues.max() - 1e-8 <= values[-1] <= eigenvalues.max() + 1e-12


def test_extreme_eigenpairs_are_found_with_honest_residuals(rng):
    """The outermost eigenvalues, separated from the rest, converge to rounding; every residual
    bound equals ‖A y - θ y‖ of the returned vector."""
    eigenvalues = np.concatenate([[-2.5, 40.0], rng.uniform(-1, 10, 498)])
    a = matrix_with_spectrum(eigenvalues, rng)
    pairs = spectrum.extreme_eigenpairs(lambda v: a @ v, rng.standard_normal(500), 60)
    assert pairs["smallest"]["value"] == pytest.approx(-2.5, abs=1e-9)
    assert pairs["largest"]["value"] == pytest.approx(40.0, abs=1e-9)
    for pair in pairs.values():
        y, theta = pair["vector"], pair["value"]
        assert np.linalg.norm(y) == pytest.approx(1)
        assert np.linalg.norm(a @ y - theta * y) == pytest.approx(pair["residual"], abs=1e-10)


def test_lanczos_stops_at_an_invariant_subspace_with_exact_eigenvalues(rng):
    eigenvalues = np.array([-3.0, -1.0, 0.5, 2.0, 7.0])
    a = matrix_with_spectrum(eigenvalues, rng)
    alpha, beta, basis = spectrum.lanczos(lambda v: a @ v, rng.standard_normal(5), 50)
    assert len(alpha) == 5
    np.testing.assert_allclose(spectrum.ritz(alpha, beta)[0], eigenvalues, atol=1e-10)


def test_each_quadrature_rule_is_exact_for_polynomials_of_degree_below_2m(rng):
    """Gauss quadrature from m Lanczos steps: Σ_k τ_k θ_k^j = vᵀ A^j v / vᵀ v for j < 2m, where
    v is the probe; a rule built from the wrong entries of T's eigenvectors fails this."""
    n, steps = 300, 8
    a = matrix_with_spectrum(rng.uniform(-1, 1, n), rng)
    probes = np.random.default_rng(1)
    rules = spectrum.slq(lambda v: a @ v, n, steps, 3, probes)
    same = np.random.default_rng(1)
    for nodes, weights in rules:
        v = same.choice([-1.0, 1.0], size=n)
        assert np.all(np.isin(v, [-1.0, 1.0]))
        power = v / np.linalg.norm(v)
        for degree in range(2 * steps):
            assert weights @ nodes ** degree == pytest.approx(v @ power / np.linalg.norm(v),
                                                              abs=1e-10)
            power = a @ power


def test_slq_density_recovers_a_known_spectrum(rng):
    """70 % of the eigenvalues near 0 with both signs, 20 % clearly negative, 10 % large: the
    estimated shares below -0.5 and above 2 match the true ones within 0.03, and the smoothed
    density integrates to 1."""
    n = 2000
    eigenvalues = np.concatenate([rng.normal(0, 0.05, 1400), rng.uniform(-3, -1, 400),
                                  rng.uniform(4, 20, 200)])
    a = matrix_with_spectrum(eigenvalues, rng)
    rules = spectrum.slq(lambda v: a @ v, n, 40, 10, rng)
    assert all(weights.sum() == pytest.approx(1) for _, weights in rules)
    assert spectrum.mass_below(rules, -0.5).mean() == pytest.approx(0.2, abs=0.03)
    assert 1 - spectrum.mass_below(rules, 2.0).mean() == pytest.approx(0.1, abs=0.03)
    grid = np.linspace(-6, 24, 3001)
    density = spectrum.smoothed_density(rules, grid, 0.2)
    assert np.sum(density) * (grid[1] - grid[0]) == pytest.approx(1, abs=1e-3)
