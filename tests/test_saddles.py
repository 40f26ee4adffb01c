"""Question 4's numbers (saddles.py): GOE sampling against exact values, the escape count against
its closed form, the linear network's gradient and saddle; and 4a's statement checked on
examples (the proof in derivations.md, not these checks, answers it)."""
import numpy as np
import pytest

from questions import saddles


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def numeric_gradient(f, x, step=1e-6):
    return np.array([(f(x + step * e) - f(x - step * e)) / (2 * step) for e in np.eye(len(x))])


def numeric_hessian(f, x, step=1e-4):
    """∂²f/∂x_i∂x_j from values of f alone (central differences of central differences)."""
    n, eye = len(x), np.eye(len(x)) * step
    return np.array([[(f(x + eye[i] + eye[j]) - f(x + eye[i] - eye[j]) - f(x - eye[i] + eye[j])
                       + f(x - eye[i] - eye[j])) / (4 * step * step) for j in range(n)]
                     for i in range(n)])


# --- 4b ---
def test_goe_matrices_are_symmetric_with_the_goe_variances(rng):
    """Diagonal variance 1 and off-diagonal 1/2: the ratio 2 is what makes the ensemble
    invariant under rotations (and the fractions below its, not another ensemble's)."""
    matrices = saddles.goe(3, 200_000, rng)
    assert np.array_equal(matrices, matrices.transpose(0, 2, 1))
    assert matrices[:, 0, 0].var() == pytest.approx(1.0, abs=0.02)
    assert matrices[:, 0, 1].var() == pytest.approx(0.5, abs=0.01)


def test_all_positive_fractions_match_the_exact_values_for_n_1_and_2(rng):
    """P(1) = 1/2; P(2) = (1 - 1/√2)/2 ≈ 0.1464 (derivations.md, Question 4b). 400,000 samples
    put a binomial standard error of 6e-4 on P(2), here allowed 4 of them."""
    samples = 400_000
    assert saddles.all_positive_count(1, samples, rng) / samples == pytest.approx(0.5, abs=3e-3)
    exact = (1 - 1 / np.sqrt(2)) / 2
    standard_error = np.sqrt(exact * (1 - exact) / samples)
    measured = saddles.all_positive_count(2, samples, rng) / samples
    assert measured == pytest.approx(exact, abs=4 * standard_error)


def test_fractions_stop_where_sampling_no_longer_resolves_them(rng):
    rows = saddles.all_positive_fractions(10, 20_000, rng, min_hits=10)
    assert [row["n"] for row in rows] == list(range(1, len(rows) + 1))
    assert all(row["hits"] >= 10 for row in rows[:-1]) and rows[-1]["hits"] < 10
    assert all(row["low"] <= row["hits"] / row["samples"] <= row["high"] for row in rows)


def test_a_size_with_exactly_min_hits_is_resolved_and_the_next_size_is_measured():
    """The count stops after the first size with fewer than min_hits, not at min_hits itself:
    with min_hits set to n = 3's own count, n = 4 is measured too, and the counts are the same
    as without the stop (each size draws its matrices after the one before)."""
    measured = saddles.all_positive_fractions(10, 2000, np.random.default_rng(0), min_hits=1)
    hits = [row["hits"] for row in measured]
    assert min(hits[:3]) == hits[2] > hits[3]
    rows = saddles.all_positive_fractions(10, 2000, np.random.default_rng(0), min_hits=hits[2])
    assert [row["hits"] for row in rows] == hits[:4]


def test_wilson_interval_covers_zero_hits_and_shrinks_with_samples():
    low, high = saddles.binomial_interval(0, 1000)
    assert low == pytest.approx(0, abs=1e-15) and 0.001 < high < 0.005
    wide, narrow = saddles.binomial_interval(50, 100), saddles.binomial_interval(5000, 10_000)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]


# --- 4c ---
@pytest.mark.parametrize("epsilon, lr", [(1e-6, 0.1), (1e-3, 0.05), (0.3, 0.5)])
def test_escape_from_the_quadratic_saddle_takes_the_closed_form_number_of_steps(epsilon, lr):
    """From (0, ε) every step multiplies y by 1 + η: the first t with (1 + η)^t ε >= 1 is
    ceil(log(1/ε) / log(1 + η)), counted exactly."""
    steps = saddles.steps_to_escape(saddles.saddle_gradient, [0.0, epsilon], lr,
                                    lambda p: np.hypot(*p) >= 1)
    assert steps == int(np.ceil(saddles.predicted_escape_steps(epsilon, lr)))


def test_a_start_on_the_stable_direction_never_escapes():
    """From (ε, 0) gradient descent falls into the saddle: the count gives up and says so."""
    assert saddles.steps_to_escape(saddles.saddle_gradient, [1e-3, 0.0], 0.1,
                                   lambda p: np.hypot(*p) >= 1, max_steps=10_000) is None


def test_escape_rows_measure_every_start(rng):
    rows = saddles.escape_from_quadratic_saddle([1e-2, 1e-8], 0.1, 5, rng)
    for row in rows:
        assert len(row["steps"]) == 5
        # the downhill share of a random start is at most ε, so no start beats the closed form
        assert min(row["steps"]) >= saddles.predicted_escape_steps(row["epsilon"], 0.1)
    assert np.median(rows[1]["steps"]) > np.median(rows[0]["steps"])


def test_linear_network_gradient_matches_finite_differences(rng):
    network = saddles.LinearNetwork(4, 3, 2, 30, rng)
    theta = rng.standard_normal(network.dim)
    np.testing.assert_allclose(network.gradient(theta), numeric_gradient(network.loss, theta),
                               rtol=1e-6, atol=1e-8)


def test_the_zero_weights_are_a_saddle_with_curvature_minus_s1(rng):
    """At W = 0 the gradient vanishes and the Hessian's eigenvalues are ±s for every singular
    value s of Y Xᵀ / N, each once per hidden unit, the rest 0."""
    network = saddles.LinearNetwork(4, 3, 2, 30, rng)
    zero = np.zeros(network.dim)
    assert np.abs(network.gradient(zero)).max() < 1e-15
    eigenvalues = np.linalg.eigvalsh(numeric_hessian(network.loss, zero))
    singular = np.linalg.svd(network.y @ network.x.T / network.x.shape[1], compute_uv=False)
    expected = np.sort(np.concatenate([np.repeat(singular, 3), -np.repeat(singular, 3),
                                       np.zeros(network.dim - 2 * 3 * len(singular))]))
    np.testing.assert_allclose(eigenvalues, expected, atol=1e-5)
    assert eigenvalues[0] == pytest.approx(-network.top_saddle_curvature(), abs=1e-5)


def test_gradient_descent_leaves_the_network_saddle_and_gets_below_halfway(rng):
    network = saddles.LinearNetwork(4, 3, 2, 30, rng)
    (row,) = saddles.escape_from_linear_network(network, [1e-6], 0.05, 3, rng)
    assert all(steps is not None and steps > 0 for steps in row["steps"])
    assert network.best_loss() < network.loss(np.zeros(network.dim))


def test_the_network_escape_is_counted_to_halfway_down_to_the_lowest_loss(rng):
    """'Away' is the first step whose loss is at or below (L(0) + L*) / 2, halfway from the
    saddle's loss to the lowest reachable. With targets mostly noise L* is 44 % of L(0), so that
    halfway (7.1) is far from half the saddle's loss (4.9): each count, replayed step by step from
    the same start, is the first step at or below it."""
    network = saddles.LinearNetwork(4, 3, 2, 30, rng)
    network.y = network.y + 2 * rng.standard_normal(network.y.shape)
    halfway = (network.loss(np.zeros(network.dim)) + network.best_loss()) / 2
    (row,) = saddles.escape_from_linear_network(network, [1e-6], 0.05, 3,
                                                np.random.default_rng(1))
    same = np.random.default_rng(1)
    for steps in row["steps"]:
        direction = same.standard_normal(network.dim)
        theta, losses = 1e-6 * direction / np.linalg.norm(direction), []
        for _ in range(steps + 1):
            losses.append(network.loss(theta))
            theta = theta - 0.05 * network.gradient(theta)
        assert losses[-1] <= halfway < min(losses[:-1])


# --- 4a on examples ---
def test_a_convex_quadratics_minimum_has_a_positive_semidefinite_hessian(rng):
    """f(x) = ½ xᵀ A x - bᵀ x with A = MᵀM: at its minimum x* = A⁻¹ b no direction goes down, and
    the Hessian measured from values of f has no negative eigenvalue."""
    for _ in range(5):
        m = rng.standard_normal((6, 6))
        a, b = m.T @ m, rng.standard_normal(6)
        minimum = np.linalg.solve(a, b)

        def f(x):
            return 0.5 * x @ a @ x - b @ x

        assert all(f(minimum + 1e-2 * d) > f(minimum) for d in rng.standard_normal((100, 6)))
        assert np.linalg.eigvalsh(numeric_hessian(f, minimum)).min() > -1e-6


def test_a_strict_minimum_can_have_a_singular_hessian():
    """f(x) = Σ x_i⁴ has a strict minimum at 0 and a zero Hessian there: 4a's 'non-negative'
    cannot be sharpened to 'positive'."""
    def f(x):
        return np.sum(x ** 4)

    np.testing.assert_allclose(numeric_hessian(f, np.zeros(3)), np.zeros((3, 3)), atol=1e-6)


def test_a_negative_eigenvalue_means_a_direction_that_goes_down():
    """The contrapositive of 4a at a critical point: f(x, y) = ½ (x² - y²) has ∇f(0) = 0 and the
    eigenvalue -1, and f decreases along its eigenvector."""
    def f(p):
        return 0.5 * (p[0] ** 2 - p[1] ** 2)

    hessian = numeric_hessian(f, np.zeros(2))
    values, vectors = np.linalg.eigh(hessian)
    assert values[0] == pytest.approx(-1, abs=1e-6)
    assert f(1e-3 * vectors[:, 0]) < f(np.zeros(2))
