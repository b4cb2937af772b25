"""CS 446 / ECE 449, Homework 2, problem 1 in code (file hw2_EM.py).

EM for a mixture of K Bernoulli distributions over D binary features:

    p(x) = sum_k pi_k * prod_d P[k, d]**x_d * (1 - P[k, d])**(1 - x_d).

Shapes used throughout (numpy float64 arrays):
    X    (n, D)  data, every entry 0 or 1,
    pi   (K,)    mixing weights, non-negative, summing to 1,
    P    (K, D)  P[k, d] = probability that feature d is 1 under component k,
    eta  (n, K)  responsibilities eta[i, k] = p(z_i = k | x_i).

Work in the LOG DOMAIN. With D = 784 (28x28 binary images) the product over the
784 features is routinely smaller than the smallest float64 (about 1e-308) and
becomes 0, which turns the responsibilities into 0/0 = NaN. Compute
log pi_k + sum_d [x_d log P[k, d] + (1 - x_d) log(1 - P[k, d])] instead, and
normalise with ``scipy.special.logsumexp``. Your results must stay finite and
exact for D = 784. Do not modify the input arrays.

Keep every name and signature exactly as given; helper functions are allowed.
"""

import numpy as np
from scipy.special import logsumexp


# BEGIN HIDDEN
# Reference solution of cs446-hw2, file hw2_EM.py: EM for a mixture of K Bernoullis.
#
# Model: p(x) = sum_k pi_k prod_d P_kd^x_d (1 - P_kd)^(1 - x_d) over D binary features.
#
# Shapes: X (n, D) with entries in {0, 1} (float64), pi (K,), P (K, D), eta (n, K).
#
# Numerics: everything is computed in the log domain. For D = 784 the product of the
# D Bernoulli probabilities underflows float64 (e.g. 0.5^784 ~ 1e-236, and typical
# values are far smaller), so responsibilities are normalised with
# ``scipy.special.logsumexp``. Inside the logarithms (and only there) P is clipped
# into [EPS, 1 - EPS] with EPS = 1e-10, so that P_kd in {0, 1} (which the M-step
# produces for a pixel that is constant among a component's points) gives a large
# finite penalty instead of -inf/NaN. For P inside [EPS, 1 - EPS] the clip is a no-op
# and the results are exact. log(pi_k) is taken without clipping: a component with
# pi_k = 0 gets log pi_k = -inf and responsibility exactly 0. No input is modified.

EPS = 1e-10


def _log_joint(X, pi, P):
    """(n, K) matrix of log pi_k + log p(x_i | P_k)."""
    Pc = np.clip(P, EPS, 1.0 - EPS)
    log_px = X @ np.log(Pc).T + (1.0 - X) @ np.log1p(-Pc).T
    with np.errstate(divide="ignore"):
        log_pi = np.log(pi)
    return log_px + log_pi


# END HIDDEN
def e_step(X, pi, P):
    """E-step: the responsibilities of the components for every data point.

    Arguments:
        X: (n, D) array with entries in {0, 1}.
        pi: (K,) mixing weights.
        P: (K, D) Bernoulli parameters.

    Returns:
        eta: (n, K) array, eta[i, k] = pi_k p(x_i | P_k) / sum_j pi_j p(x_i | P_j).
        Every ROW sums to 1 (normalise over the components, not over the data).
        Compute it in the log domain (see the module docstring).
    """
    # BEGIN SOLUTION
    log_r = _log_joint(X, pi, P)
    log_eta = log_r - logsumexp(log_r, axis=1, keepdims=True)
    return np.exp(log_eta)
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


def m_step(X, eta):
    """M-step: the closed-form updates of problem 1(c).

    Arguments:
        X: (n, D) array with entries in {0, 1}.
        eta: (n, K) responsibilities.

    Returns:
        (pi, P) with
            pi[k]   = (sum_i eta[i, k]) / n                      shape (K,),
            P[k, :] = (sum_i eta[i, k] x_i) / (sum_i eta[i, k])  shape (K, D).
    """
    # BEGIN SOLUTION
    n = X.shape[0]
    Nk = eta.sum(axis=0)
    pi = Nk / n
    P = (eta.T @ X) / np.where(Nk > 0, Nk, 1.0)[:, None]
    return pi, P
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


def log_likelihood(X, pi, P):
    """The log-likelihood sum_i log sum_k pi_k p(x_i | P_k) of the data.

    Returns:
        a Python float. Compute it in the log domain (logsumexp over k).
    """
    # BEGIN SOLUTION
    return float(logsumexp(_log_joint(X, pi, P), axis=1).sum())
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


def em(X, pi0, P0, n_iter):
    """Run n_iter iterations of EM starting from (pi0, P0).

    One iteration is an E-step (with the current parameters) followed by an M-step.

    Returns:
        (pi, P, history): the parameters after the last iteration, and a list of
        n_iter Python floats, history[t] = log_likelihood(X, pi, P) computed with
        the parameters obtained at the end of iteration t. EM never decreases the
        log-likelihood, so history must be non-decreasing. Do not modify pi0 or P0.
    """
    # BEGIN SOLUTION
    pi, P = np.array(pi0, dtype=float), np.array(P0, dtype=float)
    history = []
    for _ in range(n_iter):
        eta = e_step(X, pi, P)
        pi, P = m_step(X, eta)
        history.append(log_likelihood(X, pi, P))
    return pi, P, history
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB
