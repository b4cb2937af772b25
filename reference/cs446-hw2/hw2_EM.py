"""Reference solution of cs446-hw2, file hw2_EM.py: EM for a mixture of K Bernoullis.

Model: p(x) = sum_k pi_k prod_d P_kd^x_d (1 - P_kd)^(1 - x_d) over D binary features.

Shapes: X (n, D) with entries in {0, 1} (float64), pi (K,), P (K, D), eta (n, K).

Numerics: everything is computed in the log domain. For D = 784 the product of the
D Bernoulli probabilities underflows float64 (e.g. 0.5^784 ~ 1e-236, and typical
values are far smaller), so responsibilities are normalised with
``scipy.special.logsumexp``. Inside the logarithms (and only there) P is clipped
into [EPS, 1 - EPS] with EPS = 1e-10, so that P_kd in {0, 1} (which the M-step
produces for a pixel that is constant among a component's points) gives a large
finite penalty instead of -inf/NaN. For P inside [EPS, 1 - EPS] the clip is a no-op
and the results are exact. log(pi_k) is taken without clipping: a component with
pi_k = 0 gets log pi_k = -inf and responsibility exactly 0. No input is modified.
"""

import numpy as np
from scipy.special import logsumexp

EPS = 1e-10


def _log_joint(X, pi, P):
    """(n, K) matrix of log pi_k + log p(x_i | P_k)."""
    Pc = np.clip(P, EPS, 1.0 - EPS)
    log_px = X @ np.log(Pc).T + (1.0 - X) @ np.log1p(-Pc).T
    with np.errstate(divide="ignore"):
        log_pi = np.log(pi)
    return log_px + log_pi


def e_step(X, pi, P):
    """Responsibilities eta_ik = p(z_i = k | x_i), shape (n, K); each row sums to 1."""
    log_r = _log_joint(X, pi, P)
    log_eta = log_r - logsumexp(log_r, axis=1, keepdims=True)
    return np.exp(log_eta)


def m_step(X, eta):
    """Closed-form M-step: pi_k = sum_i eta_ik / n, P_k = sum_i eta_ik x_i / sum_i eta_ik.

    A component with sum_i eta_ik = 0 gets pi_k = 0 and P_k = 0 (instead of 0/0).
    """
    n = X.shape[0]
    Nk = eta.sum(axis=0)
    pi = Nk / n
    P = (eta.T @ X) / np.where(Nk > 0, Nk, 1.0)[:, None]
    return pi, P


def log_likelihood(X, pi, P):
    """sum_i log sum_k pi_k p(x_i | P_k), as a Python float (log domain)."""
    return float(logsumexp(_log_joint(X, pi, P), axis=1).sum())


def em(X, pi0, P0, n_iter):
    """Run n_iter EM iterations (E-step then M-step) from (pi0, P0).

    Returns (pi, P, history): the final parameters and a list of n_iter floats,
    history[t] = log_likelihood(X, pi, P) after iteration t (non-decreasing, up to
    floating-point round-off). pi0 and P0 are not modified.
    """
    pi, P = np.array(pi0, dtype=float), np.array(P0, dtype=float)
    history = []
    for _ in range(n_iter):
        eta = e_step(X, pi, P)
        pi, P = m_step(X, eta)
        history.append(log_likelihood(X, pi, P))
    return pi, P, history
