"""Question 4 in numbers: how rare minima are among critical points in high dimension (4b), and
how long gradient descent lingers near a saddle point (4c).

4b. Near a critical point the loss is its Hessian's quadratic form, and the point, where no
eigenvalue is zero, is a minimum exactly when every eigenvalue is positive. Model the Hessian as
a random symmetric matrix of the Gaussian orthogonal ensemble (GOE: H = (A + Aᵀ)/2 with A of
independent N(0, 1) entries) and count how often all its eigenvalues are positive.

4c. Gradient descent x <- x - η ∇f(x) near a saddle point: counted step by step until it is a
given distance away, from starts ever closer to the saddle."""
import numpy as np


# --- 4b: the GOE ---
def goe(n, count, rng):
    """count matrices (count, n, n) of the GOE: diagonal entries N(0, 1), off-diagonal N(0, 1/2),
    independent up to symmetry."""
    a = rng.standard_normal((count, n, n))
    return (a + a.transpose(0, 2, 1)) / 2


def all_positive_count(n, samples, rng, chunk=200_000):
    """How many of `samples` GOE matrices of size n have only positive eigenvalues."""
    positive = 0
    for start in range(0, samples, chunk):
        matrices = goe(n, min(chunk, samples - start), rng)
        positive += int((np.linalg.eigvalsh(matrices)[:, 0] > 0).sum())
    return positive


def binomial_interval(hits, samples, z=1.96):
    """Wilson's 95 % interval for a fraction hits / samples: sensible also for 0 or few hits."""
    p = hits / samples
    centre = (p + z * z / (2 * samples)) / (1 + z * z / samples)
    half = z * np.sqrt(p * (1 - p) / samples + z * z / (4 * samples ** 2)) / (1 + z * z / samples)
    return centre - half, centre + half


# Dean and Majumdar (2006): P(all n eigenvalues of a GOE matrix > 0) ~ exp(-θ n²), θ = ln(3) / 4
DEAN_MAJUMDAR_THETA = np.log(3) / 4


def anchored_law(n):
    """exp(-θ n² - b n + c): Dean and Majumdar's leading term, θ = ln(3) / 4, completed by a
    linear term and a constant fixed by the exact P(1) = 1/2 and P(2) = (1 - 1/√2) / 2
    (derivations.md): no parameter is fitted to n >= 3."""
    log_p1, log_p2 = np.log(0.5), np.log((1 - 1 / np.sqrt(2)) / 2)
    b = log_p1 - log_p2 - 3 * DEAN_MAJUMDAR_THETA
    c = log_p1 + DEAN_MAJUMDAR_THETA + b
    return np.exp(-DEAN_MAJUMDAR_THETA * np.square(n) - b * np.asarray(n) + c)


def all_positive_fractions(max_n, samples, rng, min_hits=10):
    """[{'n', 'hits', 'samples', 'low', 'high'}] for n = 1, 2, ... up to max_n, stopping after
    the first n with fewer than min_hits: past it a fraction is no longer resolved by this many
    samples (an interval, not a value)."""
    rows = []
    for n in range(1, max_n + 1):
        hits = all_positive_count(n, samples, rng)
        low, high = binomial_interval(hits, samples)
        rows.append({"n": n, "hits": hits, "samples": samples, "low": low, "high": high})
        if hits < min_hits:
            break
    return rows


# --- 4c: escaping a saddle ---
def steps_to_escape(gradient, start, lr, escaped, max_steps=1_000_000):
    """The number of gradient-descent steps x <- x - lr ∇f(x) from start until escaped(x);
    None if it has not after max_steps."""
    x = np.array(start, dtype=np.float64)
    for step in range(max_steps + 1):
        if escaped(x):
            return step
        x = x - lr * gradient(x)
    return None


def saddle_gradient(p):
    """∇f of f(x, y) = ½ (x² - y²), whose saddle is the origin: (x, -y)."""
    return np.array([p[0], -p[1]])


def predicted_escape_steps(epsilon, lr, rate=1.0):
    """log(1/ε) / log(1 + η λ): along the direction of curvature -λ each step multiplies the
    distance from the saddle by (1 + η λ), so this many steps take ε to 1."""
    return np.log(1 / epsilon) / np.log(1 + lr * rate)


def escape_from_quadratic_saddle(epsilons, lr, starts, rng):
    """For each ε: the steps needed to reach distance 1 from f's saddle, from `starts` points at
    distance ε in uniformly random directions (the downhill component is ε |sin φ|)."""
    rows = []
    for epsilon in epsilons:
        angles = rng.uniform(0, 2 * np.pi, starts)
        steps = [steps_to_escape(saddle_gradient, epsilon * np.array([np.cos(a), np.sin(a)]), lr,
                                 lambda p: np.hypot(*p) >= 1) for a in angles]
        rows.append({"epsilon": epsilon, "steps": steps})
    return rows


class LinearNetwork:
    """A two-layer linear network Ŷ = W₂ W₁ X on fixed data, with the loss
    L = ‖W₂ W₁ X - Y‖² / 2N. At W₁ = W₂ = 0 the gradient vanishes,
    ∂L/∂W₁ = W₂ᵀ R Xᵀ / N and ∂L/∂W₂ = R (W₁ X)ᵀ / N with R = W₂ W₁ X - Y, and the Hessian
    there pairs every singular value s of Σ = Y Xᵀ / N into eigenvalues +s and -s: a saddle,
    escaped along -s₁ at the rate 1 + η s₁."""

    def __init__(self, inputs, hidden, outputs, samples, rng):
        self.shapes = [(hidden, inputs), (outputs, hidden)]
        self.x = rng.standard_normal((inputs, samples))
        self.y = rng.standard_normal((outputs, inputs)) @ self.x \
            + 0.1 * rng.standard_normal((outputs, samples))

    @property
    def dim(self):
        return sum(a * b for a, b in self.shapes)

    def unpack(self, theta):
        (h, i), (o, _) = self.shapes
        return theta[:h * i].reshape(h, i), theta[h * i:].reshape(o, h)

    def residual(self, theta):
        w1, w2 = self.unpack(theta)
        return w2 @ w1 @ self.x - self.y

    def loss(self, theta):
        return float((self.residual(theta) ** 2).sum() / (2 * self.x.shape[1]))

    def gradient(self, theta):
        w1, w2 = self.unpack(theta)
        r = self.residual(theta) / self.x.shape[1]
        return np.concatenate([(w2.T @ r @ self.x.T).ravel(), (r @ (w1 @ self.x).T).ravel()])

    def top_saddle_curvature(self):
        """s₁, the largest singular value of Σ = Y Xᵀ / N: the Hessian's most negative eigenvalue
        at the saddle is -s₁."""
        return float(np.linalg.svd(self.y @ self.x.T / self.x.shape[1], compute_uv=False)[0])

    def best_loss(self):
        """The lowest loss the network can reach (hidden >= the rank it needs): least squares."""
        weights = np.linalg.lstsq(self.x.T, self.y.T, rcond=None)[0].T
        return float(((weights @ self.x - self.y) ** 2).sum() / (2 * self.x.shape[1]))


def escape_from_linear_network(network, epsilons, lr, starts, rng):
    """For each ε: the steps until the loss is halfway from its value at the saddle (W = 0) to
    the lowest it can reach, from `starts` random points at distance ε from the saddle."""
    at_saddle, best = network.loss(np.zeros(network.dim)), network.best_loss()
    halfway = (at_saddle + best) / 2
    rows = []
    for epsilon in epsilons:
        steps = []
        for _ in range(starts):
            direction = rng.standard_normal(network.dim)
            steps.append(steps_to_escape(network.gradient,
                                         epsilon * direction / np.linalg.norm(direction), lr,
                                         lambda theta: network.loss(theta) <= halfway))
        rows.append({"epsilon": epsilon, "steps": steps})
    return rows
