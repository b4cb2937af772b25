"""Reference solution of ml-hw6: batch norm, VAE, SVM, HMM, subpixel convolution.

The names and signatures are the student-facing contract of ASSIGNMENTS.md
("ml-hw6"). numpy float64 everywhere except `reparameterize` and `kl_loss`,
which work on torch tensors (float32 on the sheet) and stay differentiable.
No function modifies its arguments.
"""

import numpy as np
import torch
from cvxopt import matrix, solvers


# ---------------------------------------------------------------------------
# Batch normalisation (training mode)
# ---------------------------------------------------------------------------

def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch norm of x (N, D) over the batch axis, as torch's BatchNorm1d in training mode.

    Uses the batch mean and the biased batch variance. Returns (out, cache),
    out (N, D) and cache = (x_hat, gamma, inv_std) for `batchnorm_backward`.
    """
    x = np.asarray(x, dtype=np.float64)
    gamma = np.asarray(gamma, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc ** 2).mean(axis=0)          # biased: divide by N
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = xc * inv_std
    out = gamma * x_hat + beta
    cache = (x_hat, gamma, inv_std)
    return out, cache


def batchnorm_backward(dout, cache):
    """Gradients (dx, dgamma, dbeta) of batch norm given the upstream gradient dout (N, D).

    Compact form: dx = inv_std / N * (N*dx_hat - sum(dx_hat) - x_hat*sum(dx_hat*x_hat)),
    with dx_hat = dout * gamma and sums over the batch axis.
    """
    x_hat, gamma, inv_std = cache
    dout = np.asarray(dout, dtype=np.float64)
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = (inv_std / n) * (n * dx_hat
                          - dx_hat.sum(axis=0)
                          - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------
# VAE
# ---------------------------------------------------------------------------

def reparameterize(mu, log_sigma, eps):
    """Reparameterisation trick z = mu + exp(log_sigma) * eps (torch, differentiable)."""
    return mu + torch.exp(log_sigma) * eps


def kl_loss(mu, log_sigma):
    """KL(N(mu, sigma^2) || N(0, 1)) = 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1).

    Summed over every element; sigma = exp(log_sigma). Returns a 0-d tensor.
    """
    return 0.5 * torch.sum(mu ** 2 + torch.exp(2 * log_sigma) - 2 * log_sigma - 1)


# ---------------------------------------------------------------------------
# Hard-margin linear SVM through the dual QP
# ---------------------------------------------------------------------------

_QP_OPTIONS = {"show_progress": False, "abstol": 1e-10, "reltol": 1e-10,
               "feastol": 1e-10, "maxiters": 200}


def svm_fit(X, y):
    """Hard-margin linear SVM trained through its dual QP with cvxopt.

    X (n, D), y (n,) in {-1, +1}. Solves
        min_a 1/2 a^T P a - 1^T a  s.t.  a >= 0,  y^T a = 0,   P_ij = y_i y_j x_i.x_j
    and returns (w, b, alpha): w (D,) float64 ndarray, b Python float,
    alpha (n,) float64 ndarray.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = X.shape[0]
    # Solve for X / s with s = max|X|: the QP then has multipliers of order 1,
    # which the solver's absolute tolerance handles well. Mapping back is exact:
    # w = w_s / s, b = b_s, alpha = alpha_s / s^2.
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
    alpha = np.array(sol["x"], dtype=np.float64).reshape(-1) / s ** 2
    w = (y[:, None] * X).T @ alpha
    # The interior-point solver never returns exact zeros: non-support vectors
    # come back as alpha ~ 1e-10 (the tolerances above). A threshold relative to
    # the largest multiplier is independent of the scale of X, and 1e-6 sits far
    # above the solver's noise and far below any genuine support vector's alpha.
    # Averaging y_s - w.x_s over all support vectors cancels the solver's error
    # instead of inheriting the error of one point.
    sv = alpha > 1e-6 * alpha.max()
    b_val = float(np.mean(y[sv] - X[sv] @ w))
    return w, b_val, alpha


# ---------------------------------------------------------------------------
# Hidden Markov models
# ---------------------------------------------------------------------------

def forward(A, B, pi, O):
    """Unscaled forward variables alpha (T, N): alpha[t, i] = P(o_0..o_t, q_t = i)."""
    A, B, pi = (np.asarray(m, dtype=np.float64) for m in (A, B, pi))
    O = np.asarray(O, dtype=np.int64)
    T, N = len(O), A.shape[0]
    alpha = np.zeros((T, N))
    alpha[0] = pi * B[:, O[0]]
    for t in range(1, T):
        alpha[t] = (alpha[t - 1] @ A) * B[:, O[t]]
    return alpha


def backward(A, B, O):
    """Unscaled backward variables beta (T, N).

    beta[t, i] = P(o_{t+1}..o_{T-1} | q_t = i), and beta[T-1] = 1.
    """
    A, B = (np.asarray(m, dtype=np.float64) for m in (A, B))
    O = np.asarray(O, dtype=np.int64)
    T, N = len(O), A.shape[0]
    beta = np.zeros((T, N))
    beta[T - 1] = 1.0
    for t in range(T - 2, -1, -1):
        beta[t] = A @ (B[:, O[t + 1]] * beta[t + 1])
    return beta


def _scaled_forward(A, B, pi, O):
    """Scaled forward pass: (alpha_hat (T, N), c (T,)) with alpha_hat[t] summing to 1.

    c[t] = P(o_t | o_0..o_{t-1}), so log P(O) = sum(log c). If the sequence is
    impossible, c stops at the first zero and the remaining rows are left at 0.
    """
    T, N = len(O), A.shape[0]
    alpha = np.zeros((T, N))
    c = np.zeros(T)
    a = pi * B[:, O[0]]
    for t in range(T):
        if t > 0:
            a = (alpha[t - 1] @ A) * B[:, O[t]]
        c[t] = a.sum()
        if c[t] == 0.0:
            break
        alpha[t] = a / c[t]
    return alpha, c


def _scaled_backward(A, B, O, c):
    """Backward pass scaled with the forward pass's c: beta_hat[t] = beta[t] / prod(c[t+1:])."""
    T, N = len(O), A.shape[0]
    beta = np.zeros((T, N))
    beta[T - 1] = 1.0
    for t in range(T - 2, -1, -1):
        beta[t] = A @ (B[:, O[t + 1]] * beta[t + 1]) / c[t + 1]
    return beta


def sequence_log_likelihood(A, B, pi, O):
    """log P(O | A, B, pi) as a Python float, via a scaled forward pass (finite for long T).

    -inf if the sequence is impossible under the model.
    """
    A, B, pi = (np.asarray(m, dtype=np.float64) for m in (A, B, pi))
    O = np.asarray(O, dtype=np.int64)
    _, c = _scaled_forward(A, B, pi, O)
    if np.any(c == 0.0):
        return float("-inf")
    return float(np.sum(np.log(c)))


def viterbi(A, B, pi, O):
    """Most likely state path (T,) int64, computed in the log domain.

    Ties (at each max and in the final state) go to the lower state index.
    """
    A, B, pi = (np.asarray(m, dtype=np.float64) for m in (A, B, pi))
    O = np.asarray(O, dtype=np.int64)
    T, N = len(O), A.shape[0]
    with np.errstate(divide="ignore"):           # log 0 = -inf, on purpose
        logA, logB, logpi = np.log(A), np.log(B), np.log(pi)
    delta = np.zeros((T, N))
    psi = np.zeros((T, N), dtype=np.int64)
    delta[0] = logpi + logB[:, O[0]]
    for t in range(1, T):
        scores = delta[t - 1][:, None] + logA    # scores[i, j]: come from i, go to j
        psi[t] = np.argmax(scores, axis=0)       # first maximum = lower index
        delta[t] = scores[psi[t], np.arange(N)] + logB[:, O[t]]
    path = np.zeros(T, dtype=np.int64)
    path[T - 1] = np.argmax(delta[T - 1])
    for t in range(T - 2, -1, -1):
        path[t] = psi[t + 1, path[t + 1]]
    return path


def baum_welch(A, B, pi, O, n_iter=100):
    """Baum-Welch re-estimation of (A, B, pi) from the single sequence O, n_iter iterations.

    Uses scaled forward/backward variables (works for long T). A state whose
    expected occupancy is zero keeps its previous row: of A if it is never
    occupied at t = 0..T-2, of B if it is never occupied at t = 0..T-1.
    If O is impossible under the current parameters there is nothing to
    re-estimate and the current parameters are returned.
    """
    A, B, pi = (np.array(m, dtype=np.float64) for m in (A, B, pi))
    O = np.asarray(O, dtype=np.int64)
    M = B.shape[1]
    for _ in range(n_iter):
        alpha, c = _scaled_forward(A, B, pi, O)
        if np.any(c == 0.0):
            break
        beta = _scaled_backward(A, B, O, c)
        gamma = alpha * beta                                     # (T, N), rows sum to 1
        # xi[t, i, j] = P(q_t = i, q_{t+1} = j | O)
        xi = (alpha[:-1, :, None] * A[None, :, :]
              * (B[:, O[1:]].T * beta[1:])[:, None, :] / c[1:, None, None])
        new_pi = gamma[0]

        occ_A = gamma[:-1].sum(axis=0)
        new_A = A.copy()
        rows = occ_A > 0
        new_A[rows] = xi.sum(axis=0)[rows] / occ_A[rows, None]

        occ_B = gamma.sum(axis=0)
        B_num = np.stack([gamma[O == k].sum(axis=0) for k in range(M)], axis=1)  # (N, M)
        new_B = B.copy()
        rows = occ_B > 0
        new_B[rows] = B_num[rows] / occ_B[rows, None]

        A, B, pi = new_A, new_B, new_pi
    return A, B, pi


# ---------------------------------------------------------------------------
# Subpixel (transposed) convolution, by hand
# ---------------------------------------------------------------------------

def subpixel_conv(A, K, stride=2):
    """Subpixel convolution of A (h, w) with K (kh, kw), then ReLU.

    Inserts stride-1 zeros between the entries of A (size ((h-1)*stride+1,
    (w-1)*stride+1)), zero-pads by kh-1 rows and kw-1 columns on every side,
    slides K as a cross-correlation (valid positions only) and applies ReLU.
    Output shape ((h-1)*stride+kh, (w-1)*stride+kw), float64.
    """
    A = np.asarray(A, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
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
