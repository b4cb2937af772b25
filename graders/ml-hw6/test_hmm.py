"""Exercise 4: hidden Markov models: forward, backward, likelihood, Viterbi, Baum-Welch."""
import itertools
from functools import partial

import numpy as np
import pytest

from mlgrade import assert_close, assert_unchanged, check, fetch, reference, student
from mlgrade.compare import Mismatch
from ml_hw6.worked_examples import (
    URN_A, URN_B, URN_O, URN_PI,
)
from mlgrade.compare import assert_dtypes

hw6 = student("hw6")
ref = reference("hw6.py")
# values at float32 precision (the contract's dtype is checked once per function, by test_dtype)
close = partial(assert_close, rtol=1e-5, atol=1e-10, check_dtype="kind")
SMALL = [(2, 2, 1), (3, 2, 6), (4, 3, 30)]  # (states, symbols, T)


def rows_normalised(alpha):
    """Each time step divided by its sum: scaled and unscaled recursions agree on this."""
    alpha = np.asarray(alpha)
    if alpha.dtype.kind not in "iuf":  # True is not a probability: no truthy answer is normalised into one
        raise Mismatch(f"expected an array of numbers, got an array of {alpha.dtype}")
    alpha = alpha.astype(float)
    return alpha / alpha.sum(axis=1, keepdims=True)


@check("forward: random HMM, N={n}, M={m}, T={T} (each row up to its scale)")
@pytest.mark.parametrize("n,m,T", SMALL)
def test_forward(hmm_factory, n, m, T):
    A, B, pi, O = hmm_factory(n, m, T)
    alpha = hw6.forward(A, B, pi, O)
    close(np.shape(alpha), (T, n), name="alpha.shape")
    close(rows_normalised(alpha), rows_normalised(ref.forward(A, B, pi, O)), name="alpha (rows normalised)")


@check("backward: random HMM, N={n}, M={m}, T={T} (each row up to its scale)")
@pytest.mark.parametrize("n,m,T", SMALL)
def test_backward(hmm_factory, n, m, T):
    A, B, pi, O = hmm_factory(n, m, T)
    beta = hw6.backward(A, B, O)
    close(np.shape(beta), (T, n), name="beta.shape")
    close(rows_normalised(beta), rows_normalised(ref.backward(A, B, O)), name="beta (rows normalised)")


@check("sequence_log_likelihood: brute force over all state paths, T=4")
def test_loglik_brute_force(hmm_factory):
    A, B, pi, O = hmm_factory(3, 2, 4)
    total = sum(pi[p[0]] * B[p[0], O[0]] * np.prod([A[p[t - 1], p[t]] * B[p[t], O[t]] for t in range(1, 4)])
                for p in itertools.product(range(3), repeat=4))
    close(hw6.sequence_log_likelihood(A, B, pi, O), float(np.log(total)), name="log P(O)")


@check("sequence_log_likelihood: random HMM, N={n}, M={m}, T={T}")
@pytest.mark.parametrize("n,m,T", [(2, 3, 10), (5, 4, 200), (3, 2, 2000)])
def test_loglik(hmm_factory, n, m, T):
    A, B, pi, O = hmm_factory(n, m, T)
    close(hw6.sequence_log_likelihood(A, B, pi, O), ref.sequence_log_likelihood(A, B, pi, O), rtol=1e-7,
          name="log P(O)")


@check("viterbi: three-urn worked example", weight=1)
def test_viterbi_urns():
    close(hw6.viterbi(URN_A, URN_B, URN_PI, URN_O), ref.viterbi(URN_A, URN_B, URN_PI, URN_O),
          check_dtype="kind", name="path")


@check("viterbi: brute force over all state paths, N=3, T=5", weight=1)
def test_viterbi_brute_force(hmm_factory):
    best = ()
    while len(set(best)) < 2:  # a constant best path could be matched by a constant answer
        A, B, pi, O = hmm_factory(3, 3, 5)
        def log_p(p):
            return np.log(pi[p[0]] * B[p[0], O[0]]) + sum(np.log(A[p[t - 1], p[t]] * B[p[t], O[t]]) for t in range(1, 5))
        best = max(itertools.product(range(3), repeat=5), key=log_p)
    close(hw6.viterbi(A, B, pi, O), np.array(best), check_dtype="kind", name="path")


@check("viterbi: random HMM, N={n}, M={m}, T={T}", weight=1)
@pytest.mark.parametrize("n,m,T", [(4, 3, 50), (3, 2, 2000)])
def test_viterbi(hmm_factory, n, m, T):
    A, B, pi, O = hmm_factory(n, m, T)
    close(hw6.viterbi(A, B, pi, O), ref.viterbi(A, B, pi, O), check_dtype="kind", name="path")


@check("viterbi: ties go to the lower state index", visibility="after_due_date")
def test_viterbi_ties():
    # states 1 and 2 are identical (a tie at every step), state 0 is the best state for symbol 1:
    # the path alternates, so neither zeros nor any constant path earns this point
    A, pi = np.full((3, 3), 1 / 3), np.full(3, 1 / 3)
    B = np.array([[0.2, 0.8], [0.6, 0.4], [0.6, 0.4]])
    close(hw6.viterbi(A, B, pi, np.array([0, 1, 0, 1])), np.array([1, 0, 1, 0]), check_dtype="kind", name="path")


@check("baum_welch: random HMM, N={n}, M={m}, T={T}, {iters} iterations", weight=2)
@pytest.mark.parametrize("n,m,T,iters", [(2, 3, 50, 5), (4, 4, 300, 10)])
def test_baum_welch(hmm_factory, n, m, T, iters):
    A, B, pi, O = hmm_factory(n, m, T)
    close(hw6.baum_welch(A, B, pi, O, iters), ref.baum_welch(A, B, pi, O, iters), name="(A, B, pi)")


@check("baum_welch: correct, and leaves A, B, pi and O unchanged", weight=1)
def test_baum_welch_inputs(hmm_factory):
    A, B, pi, O = hmm_factory(3, 3, 40)
    result = hw6.baum_welch.remote(A, B, pi, O, 3)
    close(fetch(result), ref.baum_welch(A, B, pi, O, 3), name="(A, B, pi)")
    assert_unchanged(result, "baum_welch", ["A", "B", "pi", "O"])


@check("baum_welch: T=2000 stays finite and raises the likelihood", weight=2)
def test_baum_welch_long(hmm_factory):
    A, B, pi, O = hmm_factory(3, 4, 2000)
    fitted = hw6.baum_welch.within(60)(A, B, pi, O, 5)
    close(fitted, ref.baum_welch(A, B, pi, O, 5), name="(A, B, pi)")
    before, after = ref.sequence_log_likelihood(A, B, pi, O), ref.sequence_log_likelihood(*fitted, O)
    if not after >= before - 1e-9:
        raise AssertionError(f"log-likelihood went down: {before:.6f} before, {after:.6f} after 5 iterations")


@check("baum_welch: a state never visited keeps its rows (no NaN)", weight=1, visibility="after_due_date")
def test_baum_welch_unvisited_state(rng):
    # state 2 can neither start nor be reached: its expected occupancy is zero
    A = np.array([[0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.2, 0.3, 0.5]])
    B = rng.dirichlet(np.ones(3), size=3)
    pi = np.array([0.5, 0.5, 0.0])
    O = rng.integers(0, 3, size=40)
    close(hw6.baum_welch(A, B, pi, O, 3), ref.baum_welch(A, B, pi, O, 3), name="(A, B, pi)")


@check("{function}: float64 results, the contract's dtype")
@pytest.mark.parametrize("function", ["forward", "backward", "sequence_log_likelihood", "baum_welch"])
def test_dtype(hmm_factory, function):
    # the value tests accept any float precision that holds the values; the dtype counts here, once
    A, B, pi, O = hmm_factory(3, 2, 6)
    args = {"forward": (A, B, pi, O), "backward": (A, B, O), "sequence_log_likelihood": (A, B, pi, O),
            "baum_welch": (A, B, pi, O, 2)}[function]
    got, want = getattr(hw6, function)(*args), getattr(ref, function)(*args)
    if function in ("forward", "backward"):  # each row up to its scale
        close(rows_normalised(got), rows_normalised(want), rtol=1e-4, name=function)
    else:
        close(got, want, rtol=1e-4, name=function)
    assert_dtypes(got, want, name=function)
