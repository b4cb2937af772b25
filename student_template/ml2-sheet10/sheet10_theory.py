"""ML2 sheet 10, exercises 1 and 2 as code: mixture density network gradients, conditional RBM.

numpy or torch; these take and return numpy float64 arrays.

Exercise 1 (one data point t of a mixture density network with m isotropic Gaussians in c
dimensions): E = -ln sum_k alpha_k N(t | mu_k, sigma_k^2 I), with alpha = softmax(z_alpha) and
the posterior gamma_k = alpha_k N_k / sum_j alpha_j N_j.

Exercise 2 (conditional RBM, binary y (c,) and h (K,), input x (d,)): the energy
E(x, y, h) = -x^T W h - y^T U h, with W (d, K) and U (c, K).
"""
import numpy as np


def mdn_grads(alpha, mu, sigma, t):
    """(dE/dalpha (m,), dE/dmu (m, c), dE/dz_alpha (m,)) for one data point t (c,).

    dE/dalpha treats the mixing coefficients as free parameters; dE/dz_alpha goes through
    alpha = softmax(z_alpha). alpha (m,), mu (m, c), sigma (m,) and t (c,) are float64 arrays.
    """
    raise NotImplementedError  # TODO


def crbm_conditionals(W, U, x, y, h):
    """(p(h_k=1 | x, y) (K,), p(y_j=1 | h, x) (c,))."""
    raise NotImplementedError  # TODO


def crbm_free_energy(W, U, x, y):
    """The free energy F(x, y) = -ln sum_h exp(-E(x, y, h)) of 2(b), in closed form (no sum over h)."""
    raise NotImplementedError  # TODO
