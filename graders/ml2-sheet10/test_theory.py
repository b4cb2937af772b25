"""Exercises 1 and 2 as code (sheet10_theory.py): MDN gradients against autograd, the conditional
RBM against brute-force enumeration of every binary configuration."""
import itertools
from functools import partial

import numpy as np
import pytest
import torch

from mlgrade import assert_close, check, reference, student

theory = student("sheet10_theory")
ref = reference("sheet10_theory.py")
close = partial(assert_close, rtol=1e-6, atol=1e-9)


def mdn_point(rng, m, c, alpha=None):
    alpha = rng.dirichlet(np.ones(m)) if alpha is None else np.asarray(alpha, dtype=float)
    return alpha, rng.normal(size=(m, c)), rng.uniform(0.5, 2.0, size=m), rng.normal(size=c)


def autograd_mdn(alpha, mu, sigma, t):
    """dE/dalpha, dE/dmu and dE/dz_alpha (alpha = softmax(z_alpha)) of E = -ln sum_k alpha_k N(t | mu_k, sigma_k^2 I)."""
    z_alpha = torch.tensor(np.log(alpha), requires_grad=True)
    alpha_t = torch.tensor(alpha, requires_grad=True)
    mu_t, sigma_t, t_t = torch.tensor(mu, requires_grad=True), torch.tensor(sigma), torch.tensor(t)

    def energy(weights):
        c = t_t.shape[0]
        log_n = -0.5 * c * torch.log(2 * torch.pi * sigma_t ** 2) - ((t_t - mu_t) ** 2).sum(1) / (2 * sigma_t ** 2)
        return -torch.logsumexp(torch.log(weights) + log_n, 0)

    d_alpha, d_mu = torch.autograd.grad(energy(alpha_t), (alpha_t, mu_t))
    (d_z,) = torch.autograd.grad(energy(torch.softmax(z_alpha, 0)), (z_alpha,))
    return d_alpha.numpy(), d_mu.numpy(), d_z.numpy()


@check("mdn_grads: autograd of E, m={m}, c={c}", weight=2)
@pytest.mark.parametrize("m,c", [(1, 1), (3, 2), (5, 4)])
def test_mdn_autograd(rng, m, c):
    point = mdn_point(rng, m, c)
    close(theory.mdn_grads(*point), autograd_mdn(*point), name="(dE_dalpha, dE_dmu, dE_dz_alpha)")


@check("mdn_grads: alpha near 0 and 1", weight=2)
def test_mdn_extreme_alpha(rng):
    point = mdn_point(rng, 3, 2, alpha=[1 - 2e-6, 1e-6, 1e-6])
    close(theory.mdn_grads(*point), autograd_mdn(*point), rtol=1e-5, name="(dE_dalpha, dE_dmu, dE_dz_alpha)")


@check("mdn_grads: as the reference, m=4, c=3")
def test_mdn_reference(rng):
    point = mdn_point(rng, 4, 3)
    close(theory.mdn_grads(*point), ref.mdn_grads(*point), name="(dE_dalpha, dE_dmu, dE_dz_alpha)")


def crbm(rng, d=3, c=3, K=4):
    return rng.normal(size=(d, K)), rng.normal(size=(c, K)), rng.normal(size=d)


def binary(n):
    return [np.array(bits, dtype=float) for bits in itertools.product((0, 1), repeat=n)]


def unnormalised(W, U, x, y, h):
    """exp(-E(x, y, h)) with E = -x^T W h - y^T U h."""
    return np.exp(x @ W @ h + y @ U @ h)


@check("crbm_conditionals: brute force over every binary h and y", weight=2)
def test_crbm_conditionals(rng):
    W, U, x = crbm(rng)
    y, h = rng.integers(0, 2, size=3).astype(float), rng.integers(0, 2, size=4).astype(float)
    hs, ys = binary(4), binary(3)
    p_h = sum(unnormalised(W, U, x, y, hh) * hh for hh in hs) / sum(unnormalised(W, U, x, y, hh) for hh in hs)
    p_y = sum(unnormalised(W, U, x, yy, h) * yy for yy in ys) / sum(unnormalised(W, U, x, yy, h) for yy in ys)
    close(theory.crbm_conditionals(W, U, x, y, h), (p_h, p_y), name="(p_h, p_y)")


@check("crbm_free_energy: brute force over every binary h, c={c}, K={K}", weight=2)
@pytest.mark.parametrize("c,K", [(2, 3), (3, 5)])
def test_crbm_free_energy(rng, c, K):
    W, U, x = crbm(rng, d=4, c=c, K=K)
    y = rng.integers(0, 2, size=c).astype(float)
    expected = -np.log(sum(unnormalised(W, U, x, y, h) for h in binary(K)))
    close(theory.crbm_free_energy(W, U, x, y), expected, name="F(x, y)")
