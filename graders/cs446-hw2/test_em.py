"""Problem 1 in code: EM for a mixture of K Bernoullis (numpy, float64, log domain)."""
from functools import partial

import numpy as np
import pytest

from mlgrade import assert_close, assert_unchanged, check, reference, student
from mlgrade.compare import assert_dtypes, float_array, unpack

hw2 = student("hw2_EM")
ref = reference("hw2_EM.py")
# values at float32 precision (the contract's dtype is checked once per function, by test_dtype)
close = partial(assert_close, rtol=1e-5, atol=1e-10, check_dtype="kind")
SMALL = [(2, 5, 20), (3, 12, 40)]  # K, D, n


def small_problem(rng, K, D, n):
    X = (rng.random((n, D)) < 0.5).astype(float)
    return X, rng.dirichlet(np.ones(K) * 2), rng.uniform(0.1, 0.9, size=(K, D))


def mnist_sized_problem(rng, K=4, n=30, D=784):
    """P in {0.05, 0.95}: each point has likelihood about e^-1190 under every component,
    which is 0 in float64, so only a log-domain E-step stays finite. The components differ
    in a few pixels only, so the responsibilities are not all 0 or 1."""
    base = np.where(rng.random(D) < 0.5, 0.05, 0.95)
    P = np.tile(base, (K, 1))
    for k in range(K):
        flip = rng.choice(D, size=2, replace=False)
        P[k, flip] = 1.0 - P[k, flip]
    X = (rng.random((n, D)) < 0.5).astype(float)
    return X, rng.dirichlet(np.ones(K) * 2), P


def clustered_problem(seed=446, K=3, n=300, D=784):
    """Data drawn from a mixture with P in [0.2, 0.8] (no estimate ever reaches 0 or 1),
    and a start P0 in {0.05, 0.95} that agrees with the truth on 70% of the pixels: the
    first E-step underflows unless it works in the log domain."""
    rng = np.random.default_rng(seed)
    P_true = rng.uniform(0.2, 0.8, size=(K, D))
    z = rng.integers(0, K, size=n)
    X = (rng.random((n, D)) < P_true[z]).astype(float)
    P0 = np.where(P_true > 0.5, 0.95, 0.05)
    flip = rng.random((K, D)) < 0.3
    P0[flip] = 1.0 - P0[flip]
    return X, np.full(K, 1.0 / K), P0


@check("e_step: responsibilities of a small problem, K={K}, D={D}")
@pytest.mark.parametrize("K,D,n", SMALL)
def test_e_step_small(rng, K, D, n):
    X, pi, P = small_problem(rng, K, D, n)
    close(hw2.e_step(X, pi, P), ref.e_step(X, pi, P), name="eta")


@check("e_step: finite and exact for D=784 (P = 0.05 or 0.95: work in the log domain)", weight=2)
def test_e_step_784(rng):
    X, pi, P = mnist_sized_problem(rng)
    close(hw2.e_step(X, pi, P), ref.e_step(X, pi, P), name="eta")


@check("e_step: correct, and leaves X, pi and P unchanged")
def test_e_step_inputs(rng):
    X, pi, P = small_problem(rng, 3, 8, 10)
    result = hw2.e_step.call(X, pi, P)
    close(result.value, ref.e_step(X, pi, P), name="eta")
    assert_unchanged(result, "e_step", ["X", "pi", "P"])


@check("m_step: closed forms of pi and P, K={K}, D={D}")
@pytest.mark.parametrize("K,D,n", SMALL + [(4, 784, 50)])
def test_m_step(rng, K, D, n):
    X = (rng.random((n, D)) < 0.3).astype(float)
    eta = rng.dirichlet(np.ones(K), size=n)
    close(hw2.m_step(X, eta), ref.m_step(X, eta), name="(pi, P)")


@check("m_step: correct, and leaves X and eta unchanged")
def test_m_step_inputs(rng):
    X = (rng.random((10, 6)) < 0.5).astype(float)
    eta = rng.dirichlet(np.ones(3), size=10)
    result = hw2.m_step.call(X, eta)
    close(result.value, ref.m_step(X, eta), name="(pi, P)")
    assert_unchanged(result, "m_step", ["X", "eta"])


@check("log_likelihood: small problem, K={K}, D={D}")
@pytest.mark.parametrize("K,D,n", SMALL)
def test_log_likelihood_small(rng, K, D, n):
    X, pi, P = small_problem(rng, K, D, n)
    close(hw2.log_likelihood(X, pi, P), ref.log_likelihood(X, pi, P), name="log-likelihood")


@check("log_likelihood: finite and exact for D=784")
def test_log_likelihood_784(rng):
    X, pi, P = mnist_sized_problem(rng)
    close(hw2.log_likelihood(X, pi, P), ref.log_likelihood(X, pi, P), name="log-likelihood")


@check("em: same parameters and history as the reference, K=3, D=784, 8 iterations", weight=2)
def test_em_reference():
    X, pi0, P0 = clustered_problem()
    close(hw2.em(X, pi0, P0, 8), ref.em(X, pi0, P0, 8), name="(pi, P, history)")


@check("em: the log-likelihood history never decreases and ends at that of the returned (pi, P) ({label})", weight=2)
@pytest.mark.parametrize("label", ["K=4, D=20, 30 iterations", "K=3, D=784, 8 iterations"])
def test_em_monotone(rng, label):
    if label.startswith("K=4"):
        X, pi0, P0 = small_problem(rng, 4, 20, 200)
        n_iter = 30
    else:
        (X, pi0, P0), n_iter = clustered_problem(), 8
    pi, P, history = unpack(hw2.em(X, pi0, P0, n_iter), 3, name="(pi, P, history)")
    history = float_array(history, name=f"history ({n_iter} values, one per iteration)", shape=(n_iter,))
    # a constant history never decreases: it must also be the log-likelihood the iterations reached
    pi, P = float_array(pi, name="pi", shape=pi0.shape), float_array(P, name="P", shape=P0.shape)
    with np.errstate(all="ignore"):
        final = ref.log_likelihood(X, pi, P)
    close(history[-1], final, name="history[-1], the log-likelihood of the returned (pi, P)")
    close(float(np.sum(pi)), 1.0, name="sum of the returned pi")
    # and it starts where EM from (pi0, P0) goes: a fixed point of its own with a constant history
    # (pi = 1/K, P = 1/2) is monotone and self-consistent, and is not EM from the given start
    with np.errstate(all="ignore"):
        one_step = ref.log_likelihood(X, *ref.m_step(X, ref.e_step(X, pi0, P0)))
    close(history[0], one_step, name="history[0], the log-likelihood after the first iteration from (pi0, P0)")
    assert np.isfinite(history).all(), f"history is not finite: {history[:5]}..."
    # EM's log-likelihood is non-decreasing in exact arithmetic; allow round-off only
    drops = np.flatnonzero(np.diff(history) < -1e-9 * np.abs(history[:-1]))
    assert not len(drops), (f"the log-likelihood decreased after iteration {drops[0] + 1}: "
                            f"{history[drops[0]]:.10g} -> {history[drops[0] + 1]:.10g}")


@check("em: correct, and leaves X, pi0 and P0 unchanged")
def test_em_inputs(rng):
    X, pi0, P0 = small_problem(rng, 3, 8, 30)
    result = hw2.em.call(X, pi0, P0, 3)
    close(result.value, ref.em(X, pi0, P0, 3), name="(pi, P, history)")
    assert_unchanged(result, "em", ["X", "pi0", "P0", "n_iter"])


@check("{function}: float64 results, the contract's dtype")
@pytest.mark.parametrize("function", ["e_step", "m_step", "log_likelihood", "em"])
def test_dtype(rng, function):
    # the value tests accept any float precision that holds the values; the dtype counts here, once
    X, pi, P = small_problem(rng, 3, 8, 30)
    args = {"e_step": (X, pi, P), "m_step": (X, rng.dirichlet(np.ones(3), size=30)),
            "log_likelihood": (X, pi, P), "em": (X, pi, P, 3)}[function]
    got, want = getattr(hw2, function)(*args), getattr(ref, function)(*args)
    close(got, want, rtol=1e-4, name=function)
    assert_dtypes(got, want, name=function)
