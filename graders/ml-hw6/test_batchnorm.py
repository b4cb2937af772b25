"""Exercise 1: batch normalisation in training mode, forward and backward (numpy, float64)."""
from functools import partial

import pytest

from mlgrade import assert_close, assert_unchanged, check, fetch, reference, student
from mlgrade.compare import assert_dtypes

hw6 = student("hw6")
ref = reference("hw6.py")
# values at float32 precision (the contract's dtype is checked once per function, by test_dtype);
# atol at float32's precision of values of order one: dx of N=2 is a cancellation, ~1e-4 from eps alone
close = partial(assert_close, rtol=1e-5, atol=1e-6, check_dtype="kind")
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


@check("{function}: float64 results, the contract's dtype")
@pytest.mark.parametrize("function", ["batchnorm_forward", "batchnorm_backward"])
def test_dtype(rng, function):
    # the value tests accept any float precision that holds the values; the dtype counts here, once
    x, gamma, beta = batch(rng, 8, 5)
    result = hw6.batchnorm_forward.remote(x, gamma, beta)
    if function == "batchnorm_forward":
        got, want = fetch(result[0]), ref.batchnorm_forward(x, gamma, beta)[0]
    else:
        dout = rng.normal(size=(8, 5))
        got = hw6.batchnorm_backward(dout, result[1])
        want = ref.batchnorm_backward(dout, ref.batchnorm_forward(x, gamma, beta)[1])
    close(got, want, rtol=1e-4, name=function)
    assert_dtypes(got, want, name=function)
