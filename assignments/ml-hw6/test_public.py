"""Public checks of ml-hw6, shipped to students (`mlgrade check ml-hw6`).

No reference solution here: expected values come from the sheet's worked examples, from
torch (batch norm, autograd, transposed convolution as an independent oracle), from brute
force over all HMM state paths, and from the SVM's optimality conditions.
"""
import itertools
from functools import partial

import numpy as np
import pytest
import torch

from mlgrade import assert_close, check, fetch, refuse, student
from mlgrade.compare import float_array, unpack
from ml_hw6.worked_examples import (
    SUBPIXEL_REFUSED, SVM_ALPHA, SVM_B, SVM_REFUSED, SVM_W, SVM_X, SVM_Y, URN_A, URN_A_FIT, URN_B, URN_B_FIT, URN_O,
    URN_PI, URN_PI_FIT, WORKED_A, WORKED_FIRST_ROW, WORKED_K, WORKED_SHAPE,
)

hw6 = student("hw6")
# values at float32 precision: the contract's dtype is one graded test per function, not every check
close = partial(assert_close, rtol=1e-5, atol=1e-8, check_dtype="kind")


def torch_batchnorm(x, gamma, beta, dout):
    """Output and gradients of torch's own BatchNorm1d in training mode (float64)."""
    x, gamma, beta = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    out = torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), (x.grad.numpy(), gamma.grad.numpy(), beta.grad.numpy())


@check("batchnorm_forward: same as torch's BatchNorm1d in training mode (public)")
def test_batchnorm_forward_torch(rng):
    x, gamma, beta = rng.normal(size=(6, 4)), rng.normal(size=4), rng.normal(size=4)
    out = hw6.batchnorm_forward.remote(x, gamma, beta)
    close(fetch(out[0]), torch_batchnorm(x, gamma, beta, np.zeros((6, 4)))[0], name="out")


@check("batchnorm_backward: same gradients as torch's autograd (public)")
def test_batchnorm_backward_torch(rng):
    x, gamma, beta, dout = rng.normal(size=(6, 4)), rng.normal(size=4), rng.normal(size=4), rng.normal(size=(6, 4))
    cache = hw6.batchnorm_forward.remote(x, gamma, beta)[1]
    close(hw6.batchnorm_backward(dout, cache), torch_batchnorm(x, gamma, beta, dout)[1], name="(dx, dgamma, dbeta)")


@check("reparameterize: z = mu + exp(log_sigma) * eps with gradients (public)")
def test_reparameterize_formula():
    mu, log_sigma, eps = torch.tensor([0.5, -1.0]), torch.tensor([0.0, 1.0]), torch.tensor([2.0, -0.5])
    z, (d_mu, d_log_sigma) = hw6.reparameterize.grad(mu, log_sigma, eps, wrt=(0, 1), grad_output=torch.ones(2))
    close(z, mu + torch.exp(log_sigma) * eps, rtol=1e-5, name="z")
    close(d_mu, torch.ones(2), rtol=1e-5, name="dz/dmu")
    close(d_log_sigma, torch.exp(log_sigma) * eps, rtol=1e-5, name="dz/dlog_sigma")


@check("kl_loss: 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1) on a small example (public)")
def test_kl_formula():
    mu, log_sigma = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.5, 0.0]])
    expected = 0.5 * (1.0 + (np.exp(1.0) - 1.0 - 1.0))  # mu=1 -> 1/2; log_sigma=0.5 -> 1/2 (e - 1 - 1)
    close(hw6.kl_loss(mu, log_sigma), torch.tensor(expected, dtype=torch.float32), rtol=1e-5, name="kl")


@check("svm_fit: worked example of the sheet (public)")
def test_svm_worked_example():
    refuse(hw6, "svm_fit", SVM_REFUSED)
    close(hw6.svm_fit(SVM_X, SVM_Y), (SVM_W, SVM_B, SVM_ALPHA), rtol=1e-4, atol=1e-5, name="(w, b, alpha)")


@check("svm_fit: margins and optimality conditions on random separable data (public)")
def test_svm_kkt(rng):
    refuse(hw6, "svm_fit", SVM_REFUSED)
    X = rng.normal(size=(20, 2))
    y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, 1.0, -1.0)
    X = X + 0.3 * y[:, None] * np.array([1.0, 0.5])  # push the classes apart
    w, b, alpha = unpack(hw6.svm_fit(X, y), 3, name="(w, b, alpha)")
    w, alpha = float_array(w, name="w", shape=(2,)), float_array(alpha, name="alpha", shape=(20,))
    margins = y * (X @ w + float(float_array(b, name="b", shape=())))
    assert margins.min() > 1 - 1e-4, f"smallest margin y_i (w.x_i + b) is {margins.min():.6g}; must be >= 1"
    close(float(np.asarray(alpha) @ y), 0.0, atol=1e-5, name="sum alpha_i y_i")
    close(w, (np.asarray(alpha) * y) @ X, rtol=1e-4, atol=1e-5, name="w vs sum alpha_i y_i x_i")


def brute_force(A, B, pi, O):
    """log P(O) and the most likely path by enumerating every state path."""
    def joint(path):
        p = pi[path[0]] * B[path[0], O[0]]
        for t in range(1, len(O)):
            p *= A[path[t - 1], path[t]] * B[path[t], O[t]]
        return p
    paths = list(itertools.product(range(len(pi)), repeat=len(O)))
    probs = [joint(p) for p in paths]
    return float(np.log(sum(probs))), np.array(paths[int(np.argmax(probs))])


@check("sequence_log_likelihood: three-urn example by brute force (public)")
def test_loglik_urns():
    close(hw6.sequence_log_likelihood(URN_A, URN_B, URN_PI, URN_O), brute_force(URN_A, URN_B, URN_PI, URN_O)[0],
          name="log P(O)")


def by_paths(A, B, pi, O):
    """(alpha, beta) by enumerating state sequences: alpha[t, i] = P(o_1..o_t, s_t = i) and
    beta[t, i] = P(o_t+1..o_T | s_t = i), the values of the unscaled recursions."""
    T, N = len(O), len(pi)
    alpha, beta = np.zeros((T, N)), np.zeros((T, N))
    for t in range(T):
        for prefix in itertools.product(range(N), repeat=t + 1):
            p = pi[prefix[0]] * B[prefix[0], O[0]]
            for u in range(1, t + 1):
                p *= A[prefix[u - 1], prefix[u]] * B[prefix[u], O[u]]
            alpha[t, prefix[-1]] += p
        for i in range(N):
            for suffix in itertools.product(range(N), repeat=T - 1 - t):
                p, state = 1.0, i
                for u, nxt in enumerate(suffix, start=t + 1):
                    p *= A[state, nxt] * B[nxt, O[u]]
                    state = nxt
                beta[t, i] += p
    return alpha, beta


def rows_normalised(rows):
    rows = np.asarray(rows, dtype=float)
    return rows / rows.sum(axis=1, keepdims=True)


@check("forward: each row proportional to P(o_1..o_t, s_t) on the three-urn example (public)")
def test_forward_urns():
    alpha = np.asarray(hw6.forward(URN_A, URN_B, URN_PI, URN_O), dtype=float)
    close(alpha.shape, (5, 3), name="alpha.shape")
    # each row may carry its own positive factor (the scaled recursions are right): compared row by row, normalised
    close(rows_normalised(alpha), rows_normalised(by_paths(URN_A, URN_B, URN_PI, URN_O)[0]),
          name="alpha, each row divided by its sum")


@check("backward: each row proportional to P(o_t+1..o_T | s_t) on a small random HMM (public)")
def test_backward_small(rng):
    # not the three urns: with A's rows all equal, every row of beta is constant and so is any wrong answer's
    A, B, pi = rng.dirichlet(np.ones(3), size=3), rng.dirichlet(np.ones(2), size=3), rng.dirichlet(np.ones(3))
    O = rng.integers(0, 2, size=5)
    beta = np.asarray(hw6.backward(A, B, O), dtype=float)
    close(beta.shape, (5, 3), name="beta.shape")
    close(rows_normalised(beta), rows_normalised(by_paths(A, B, pi, O)[1]), name="beta, each row divided by its sum")


@check("viterbi: most likely path by brute force on a small HMM (public)")
def test_viterbi_brute_force(rng):
    path = ()
    while len(set(path)) < 2:  # a constant best path could be matched by a constant answer
        A, B, pi = rng.dirichlet(np.ones(3), size=3), rng.dirichlet(np.ones(2), size=3), rng.dirichlet(np.ones(3))
        O = rng.integers(0, 2, size=5)
        path = tuple(brute_force(A, B, pi, O)[1])
    close(hw6.viterbi(A, B, pi, O), np.array(path), check_dtype="kind", name="path")


@check("sequence_log_likelihood: T=2000 with uniform emissions, where log P(O) = T log(1/M) (public)")
def test_loglik_long(rng):
    # whatever A and pi are, every symbol has probability 1/M: log P(O) = -T log M, far below float's range
    A, pi = rng.dirichlet(np.ones(3), size=3), rng.dirichlet(np.ones(3))
    value = hw6.sequence_log_likelihood(A, np.full((3, 4), 0.25), pi, rng.integers(0, 4, size=2000))
    value = float(float_array(value, name="log P(O)", shape=()))
    assert np.isfinite(value), f"log P(O) for T=2000 is {value}: scale alpha at each step or work with logs"
    close(value, -2000 * np.log(4.0), name="log P(O)")


@check("baum_welch: three-urn worked example of the sheet (public)")
def test_baum_welch_urns():
    close(hw6.baum_welch(URN_A, URN_B, URN_PI, URN_O, 100), (URN_A_FIT, URN_B_FIT, URN_PI_FIT), rtol=0, atol=1e-4,
          name="(A, B, pi)")


def transposed_conv_oracle(A, K, stride):
    """Zero insertion + full cross-correlation equals torch's transposed convolution with K flipped."""
    a = torch.tensor(A)[None, None]
    k = torch.tensor(np.ascontiguousarray(K[::-1, ::-1]))[None, None]
    return torch.relu(torch.nn.functional.conv_transpose2d(a, k, stride=stride))[0, 0].numpy()


@check("subpixel_conv: worked example of the sheet: 11x11, first row [18,0,0,0,0,0,8,0,3,0,0] (public)")
def test_subpixel_worked_example():
    refuse(hw6, "subpixel_conv", SUBPIXEL_REFUSED)
    out = np.asarray(hw6.subpixel_conv(WORKED_A, WORKED_K, 2))
    close(out.shape, WORKED_SHAPE, name="out.shape")
    close(out[0], WORKED_FIRST_ROW, check_dtype="kind", name="out[0]")


@check("subpixel_conv: random 4x3 A, 3x2 K, stride {stride}, against torch as an oracle (public)")
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_subpixel_oracle(rng, stride):
    refuse(hw6, "subpixel_conv", SUBPIXEL_REFUSED)
    A, K = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    close(hw6.subpixel_conv(A, K, stride), transposed_conv_oracle(A, K, stride), check_dtype="kind", name="out")
