"""Exercise 1: batch normalisation in training mode, forward and backward (numpy, float64)."""
from functools import partial

import pytest

from mlgrade import assert_close, assert_unchanged, check, fetch, reference, student

hw6 = student("hw6")
ref = reference("hw6.py")
close = partial(assert_close, rtol=1e-6, atol=1e-9)
SIZES = [(2, 3), (8, 5), (64, 16)]


def batch(rng, n, d, scale=1.0):
    x = rng.normal(loc=rng.normal(size=d), scale=scale * rng.uniform(0.5, 2, size=d), size=(n, d))
    return x, rng.normal(size=d), rng.normal(size=d)


@check("batchnorm_forward: random batch, N={n}, D={d}", weight=1)
@pytest.mark.parametrize("n,d", SIZES)
def test_forward(rng, n, d):
    x, gamma, beta = batch(rng, n, d)
    out = fetch(hw6.batchnorm_forward.remote(x, gamma, beta)[0])
    close(out, ref.batchnorm_forward(x, gamma, beta)[0], name="out")


@check("batchnorm_forward: features of tiny variance (where eps matters)", weight=1)
def test_forward_small_variance(rng):
    x, gamma, beta = batch(rng, 16, 4, scale=1e-3)
    out = fetch(hw6.batchnorm_forward.remote(x, gamma, beta)[0])
    close(out, ref.batchnorm_forward(x, gamma, beta)[0], name="out")


@check("batchnorm_forward: correct, and leaves x, gamma and beta unchanged", weight=1)
def test_forward_inputs(rng):
    x, gamma, beta = batch(rng, 8, 5)
    result = hw6.batchnorm_forward.remote(x, gamma, beta)
    close(fetch(result[0]), ref.batchnorm_forward(x, gamma, beta)[0], name="out")
    assert_unchanged(result, "batchnorm_forward", ["x", "gamma", "beta"])


@check("batchnorm_backward: gradients through its own cache, N={n}, D={d}", weight=2)
@pytest.mark.parametrize("n,d", SIZES)
def test_backward(rng, n, d):
    x, gamma, beta = batch(rng, n, d)
    dout = rng.normal(size=(n, d))
    cache = hw6.batchnorm_forward.remote(x, gamma, beta)[1]
    grads = hw6.batchnorm_backward(dout, cache)
    close(grads, ref.batchnorm_backward(dout, ref.batchnorm_forward(x, gamma, beta)[1]), name="(dx, dgamma, dbeta)")
