"""The eigenvalues of a symmetric operator A known only through its products v -> A v (such as a
Hessian: hessian.py): Lanczos for the extreme ones, stochastic Lanczos quadrature (SLQ) for the
density of all of them. NumPy only.

Lanczos builds an orthonormal basis Q = [q_1 ... q_m] of the Krylov space span{v, Av, ...,
A^(m-1) v}, in which A is the tridiagonal T = Qᵀ A Q: α_j = q_jᵀ A q_j on its diagonal, β_j beside
it. T's eigenvalues θ_k (the Ritz values) approach A's outermost eigenvalues first, and
‖A y_k - θ_k y_k‖ = β_m |s_mk| for the Ritz vector y_k = Q s_k.

SLQ (Golub and Meurant's Gauss quadrature; Ubaru, Chen and Saad 2017; Ghorbani, Krishnan and Xiao
2019): for a unit vector v, vᵀ f(A) v = Σ_i f(λ_i) (u_iᵀ v)² is a sum over A's spectrum weighted
by (u_iᵀ v)², whose mean over random v is 1/n for each eigenvector u_i. Lanczos from v gives the
Gauss rule of that sum: Σ_k τ_k f(θ_k), τ_k = s_1k² the squared first entry of T's k-th
eigenvector, exact for every polynomial f of degree up to 2m - 1. So the nodes θ_k with weights
τ_k, averaged over random v, estimate the spectral density (1/n) Σ_i δ(λ - λ_i)."""
import numpy as np


def lanczos(matvec, start, steps):
    """Up to `steps` Lanczos iterations from the vector start (n,): (alpha (m,), beta (m,),
    Q (m, n)), m <= steps.

    T has alpha on its diagonal and beta[:-1] beside it; beta[-1] is the norm of what A q_m has
    outside the basis. Lanczos stops early (m < steps) where that is 0 to rounding: the Krylov
    space holds an invariant subspace and T's eigenvalues are eigenvalues of A. Each new vector is
    orthogonalized against all the earlier ones, twice: without it, rounding lets converged Ritz
    values come back as copies that take weight from the rest of SLQ's density."""
    basis = np.zeros((steps, len(start)))
    alpha, beta = np.zeros(steps), np.zeros(steps)
    q = start / np.linalg.norm(start)
    for j in range(steps):
        basis[j] = q
        w = matvec(q)
        alpha[j] = q @ w
        for _ in range(2):  # removes α_j q_j and β_(j-1) q_(j-1), and rounding's other parts
            w = w - basis[:j + 1].T @ (basis[:j + 1] @ w)
        beta[j] = np.linalg.norm(w)
        scale = max(np.abs(alpha[:j + 1]).max(), beta[:j].max(initial=0.0))  # about ‖A‖
        if beta[j] <= 1e-10 * scale:
            return alpha[:j + 1], beta[:j + 1], basis[:j + 1]
        q = w / beta[j]
    return alpha, beta, basis


def ritz(alpha, beta):
    """T's eigen-decomposition: (θ (m,) ascending, S (m, m)) with T = S diag(θ) Sᵀ."""
    off_diagonal = beta[:-1]
    return np.linalg.eigh(np.diag(alpha) + np.diag(off_diagonal, 1) + np.diag(off_diagonal, -1))


def extreme_eigenpairs(matvec, start, steps):
    """Lanczos's smallest and largest Ritz pairs from start: {'smallest', 'largest'}, each
    {'value': θ, 'residual': ‖A y - θ y‖, 'vector': y (n,) of unit norm}. A has an eigenvalue
    within 'residual' of each θ; the smallest θ is never below λ_min, the largest never above
    λ_max."""
    alpha, beta, basis = lanczos(matvec, start, steps)
    values, vectors = ritz(alpha, beta)
    pairs = {}
    for name, k in (("smallest", 0), ("largest", -1)):
        pairs[name] = {"value": float(values[k]),
                       "residual": float(beta[-1] * abs(vectors[-1, k])),
                       "vector": basis.T @ vectors[:, k]}
    return pairs


def slq(matvec, dim, steps, probes, rng):
    """Stochastic Lanczos quadrature: a list, one per probe, of (nodes θ (m,), weights τ (m,)),
    each weights summing to 1. Probes are random sign vectors (Rademacher) of length dim."""
    rules = []
    for _ in range(probes):
        alpha, beta, _ = lanczos(matvec, rng.choice([-1.0, 1.0], size=dim), steps)
        nodes, vectors = ritz(alpha, beta)
        rules.append((nodes, vectors[0] ** 2))
    return rules


def smoothed_density(rules, grid, width):
    """The SLQ density on grid, each node spread as a Gaussian of standard deviation width:
    mean over probes of Σ_k τ_k N(λ; θ_k, width²)."""
    total = np.zeros(len(grid))
    for nodes, weights in rules:
        gaussians = np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / width) ** 2)
        total += gaussians @ weights / (width * np.sqrt(2 * np.pi))
    return total / len(rules)


def mass_below(rules, threshold):
    """Each probe's estimate of the fraction of eigenvalues below threshold: Σ_k τ_k [θ_k <
    threshold]; their mean estimates it, their spread says how well."""
    return np.array([weights[nodes < threshold].sum() for nodes, weights in rules])
