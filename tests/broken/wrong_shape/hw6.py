"""Broken submission: batchnorm_forward returns its output transposed; the rest is correct."""
import numpy as np
import torch
from cvxopt import matrix, solvers

_QP_OPTIONS = {"show_progress": False, "abstol": 1e-10, "reltol": 1e-10,
               "feastol": 1e-10, "maxiters": 200}


def batchnorm_forward(x, gamma, beta, eps=1e-05):
    x = np.asarray(x, dtype=np.float64)
    gamma = np.asarray(gamma, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc ** 2).mean(axis=0)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = xc * inv_std
    out = gamma * x_hat + beta
    cache = (x_hat, gamma, inv_std)
    return (out.T, cache)


def batchnorm_backward(dout, cache):
    x_hat, gamma, inv_std = cache
    dout = np.asarray(dout, dtype=np.float64)
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = inv_std / n * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    return (dx, dgamma, dbeta)


def reparameterize(mu, log_sigma, eps):
    return mu + torch.exp(log_sigma) * eps


def kl_loss(mu, log_sigma):
    return 0.5 * torch.sum(mu ** 2 + torch.exp(2 * log_sigma) - 2 * log_sigma - 1)


def svm_fit(X, y):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = X.shape[0]
    s = np.abs(X).max()
    s = s if s > 0 else 1.0
    Yx = y[:, None] * (X / s)
    P = matrix(Yx @ Yx.T)
    q = matrix(-np.ones(n))
    G = matrix(-np.eye(n))
    h = matrix(np.zeros(n))
    A = matrix(y.reshape(1, n))
    b = matrix(0.0)
    sol = solvers.qp(P, q, G, h, A, b, options=_QP_OPTIONS)
    alpha = np.array(sol['x'], dtype=np.float64).reshape(-1) / s ** 2
    w = (y[:, None] * X).T @ alpha
    sv = alpha > 1e-06 * alpha.max()
    b_val = float(np.mean(y[sv] - X[sv] @ w))
    return (w, b_val, alpha)


def forward(A, B, pi, O):
    A, B, pi = (np.asarray(m, dtype=np.float64) for m in (A, B, pi))
    O = np.asarray(O, dtype=np.int64)
    T, N = (len(O), A.shape[0])
    alpha = np.zeros((T, N))
    alpha[0] = pi * B[:, O[0]]
    for t in range(1, T):
        alpha[t] = alpha[t - 1] @ A * B[:, O[t]]
    return alpha


def backward(A, B, O):
    A, B = (np.asarray(m, dtype=np.float64) for m in (A, B))
    O = np.asarray(O, dtype=np.int64)
    T, N = (len(O), A.shape[0])
    beta = np.zeros((T, N))
    beta[T - 1] = 1.0
    for t in range(T - 2, -1, -1):
        beta[t] = A @ (B[:, O[t + 1]] * beta[t + 1])
    return beta


def _scaled_forward(A, B, pi, O):
    T, N = (len(O), A.shape[0])
    alpha = np.zeros((T, N))
    c = np.zeros(T)
    a = pi * B[:, O[0]]
    for t in range(T):
        if t > 0:
            a = alpha[t - 1] @ A * B[:, O[t]]
        c[t] = a.sum()
        if c[t] == 0.0:
            break
        alpha[t] = a / c[t]
    return (alpha, c)


def _scaled_backward(A, B, O, c):
    T, N = (len(O), A.shape[0])
    beta = np.zeros((T, N))
    beta[T - 1] = 1.0
    for t in range(T - 2, -1, -1):
        beta[t] = A @ (B[:, O[t + 1]] * beta[t + 1]) / c[t + 1]
    return beta


def sequence_log_likelihood(A, B, pi, O):
    A, B, pi = (np.asarray(m, dtype=np.float64) for m in (A, B, pi))
    O = np.asarray(O, dtype=np.int64)
    _, c = _scaled_forward(A, B, pi, O)
    if np.any(c == 0.0):
        return float('-inf')
    return float(np.sum(np.log(c)))


def viterbi(A, B, pi, O):
    A, B, pi = (np.asarray(m, dtype=np.float64) for m in (A, B, pi))
    O = np.asarray(O, dtype=np.int64)
    T, N = (len(O), A.shape[0])
    with np.errstate(divide='ignore'):
        logA, logB, logpi = (np.log(A), np.log(B), np.log(pi))
    delta = np.zeros((T, N))
    psi = np.zeros((T, N), dtype=np.int64)
    delta[0] = logpi + logB[:, O[0]]
    for t in range(1, T):
        scores = delta[t - 1][:, None] + logA
        psi[t] = np.argmax(scores, axis=0)
        delta[t] = scores[psi[t], np.arange(N)] + logB[:, O[t]]
    path = np.zeros(T, dtype=np.int64)
    path[T - 1] = np.argmax(delta[T - 1])
    for t in range(T - 2, -1, -1):
        path[t] = psi[t + 1, path[t + 1]]
    return path


def baum_welch(A, B, pi, O, n_iter=100):
    A, B, pi = (np.array(m, dtype=np.float64) for m in (A, B, pi))
    O = np.asarray(O, dtype=np.int64)
    M = B.shape[1]
    for _ in range(n_iter):
        alpha, c = _scaled_forward(A, B, pi, O)
        if np.any(c == 0.0):
            break
        beta = _scaled_backward(A, B, O, c)
        gamma = alpha * beta
        xi = alpha[:-1, :, None] * A[None, :, :] * (B[:, O[1:]].T * beta[1:])[:, None, :] / c[1:, None, None]
        new_pi = gamma[0]
        occ_A = gamma[:-1].sum(axis=0)
        new_A = A.copy()
        rows = occ_A > 0
        new_A[rows] = xi.sum(axis=0)[rows] / occ_A[rows, None]
        occ_B = gamma.sum(axis=0)
        B_num = np.stack([gamma[O == k].sum(axis=0) for k in range(M)], axis=1)
        new_B = B.copy()
        rows = occ_B > 0
        new_B[rows] = B_num[rows] / occ_B[rows, None]
        A, B, pi = (new_A, new_B, new_pi)
    return (A, B, pi)


def subpixel_conv(A, K, stride=2):
    A = np.asarray(A, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if int(stride) != stride or stride < 1:
        raise ValueError(f'stride must be an integer >= 1, got {stride!r}')
    stride = int(stride)
    h, w = A.shape
    kh, kw = K.shape
    dilated = np.zeros(((h - 1) * stride + 1, (w - 1) * stride + 1))
    dilated[::stride, ::stride] = A
    padded = np.pad(dilated, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
    out_h = padded.shape[0] - kh + 1
    out_w = padded.shape[1] - kw + 1
    out = np.zeros((out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            out += K[i, j] * padded[i:i + out_h, j:j + out_w]
    return np.maximum(out, 0.0)
