"""ML2 sheet 10, exercises 1 and 2 as code: mixture density network gradients, conditional RBM.

numpy or torch; these take and return numpy float64 arrays.

Exercise 1 (one data point t of a mixture density network with m isotropic Gaussians in c
dimensions): E = -ln sum_k alpha_k N(t | mu_k, sigma_k^2 I), with alpha = softmax(z_alpha) and
the posterior gamma_k = alpha_k N_k / sum_j alpha_j N_j.

Exercise 2 (conditional RBM, binary y (c,) and h (K,), input x (d,)): the energy
E(x, y, h) = -x^T W h - y^T U h, with W (d, K) and U (c, K).
"""
import numpy as np


# BEGIN HIDDEN
def _log_gaussians(mu, sigma, t):
    """ln N(t | mu_k, sigma_k^2 I) for each component k."""
    c = len(t)
    squared = np.sum((t[None, :] - mu) ** 2, axis=1)
    return -0.5 * c * np.log(2 * np.pi * sigma ** 2) - squared / (2 * sigma ** 2)


# END HIDDEN
def mdn_grads(alpha, mu, sigma, t):
    """(dE/dalpha (m,), dE/dmu (m, c), dE/dz_alpha (m,)) for one data point t (c,).

    dE/dalpha treats the mixing coefficients as free parameters; dE/dz_alpha goes through
    alpha = softmax(z_alpha). alpha (m,), mu (m, c), sigma (m,) and t (c,) are float64 arrays.
    """
    # BEGIN SOLUTION
    alpha, mu, sigma, t = (np.asarray(a, dtype=np.float64) for a in (alpha, mu, sigma, t))
    log_weighted = np.log(alpha) + _log_gaussians(mu, sigma, t)
    log_total = np.logaddexp.reduce(log_weighted)
    gamma = np.exp(log_weighted - log_total)
    dE_dalpha = -np.exp(_log_gaussians(mu, sigma, t) - log_total)  # -gamma_k / alpha_k
    dE_dmu = gamma[:, None] * (mu - t[None, :]) / sigma[:, None] ** 2
    dE_dz_alpha = alpha - gamma
    return dE_dalpha, dE_dmu, dE_dz_alpha
    # END SOLUTION


def crbm_conditionals(W, U, x, y, h):
    """(p(h_k=1 | x, y) (K,), p(y_j=1 | h, x) (c,))."""
    # BEGIN SOLUTION
    W, U, x, y, h = (np.asarray(a, dtype=np.float64) for a in (W, U, x, y, h))
    p_h = 1 / (1 + np.exp(-(x @ W + y @ U)))
    p_y = 1 / (1 + np.exp(-(U @ h)))
    return p_h, p_y
    # END SOLUTION


def crbm_free_energy(W, U, x, y):
    """The free energy F(x, y) = -ln sum_h exp(-E(x, y, h)) of 2(b), in closed form (no sum over h)."""
    # BEGIN SOLUTION
    W, U, x, y = (np.asarray(a, dtype=np.float64) for a in (W, U, x, y))
    return float(-np.sum(np.logaddexp(0, x @ W + y @ U)))
    # END SOLUTION
