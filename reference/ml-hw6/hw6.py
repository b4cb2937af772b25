# %% active="py"
"""Homework 6: batch norm, VAE, SVM, HMM, subpixel convolution.

Fill in every function below and submit this file as `hw6.py` (or the
notebook `hw6.ipynb`). Do not rename the functions or change their
signatures: the autograder calls them by name.

General rules
- numpy functions take float64 arrays and return float64 arrays (or Python
  floats / int64 arrays where stated). `reparameterize` and `kl_loss` take
  and return torch tensors (float32) and must stay differentiable.
- Never modify the arrays or tensors you are given (no `x -= ...` on an
  input): work on new arrays. The grader checks this.
- Your code is compared with a reference solution on random inputs of
  several shapes and on the worked examples quoted below.
"""

# %% [markdown]
# # Homework 6: batch norm, VAE, SVM, HMM, subpixel convolution
#
# Implement every function below. Keep the names and signatures: the autograder imports them from this notebook (or from `hw6.py`). Only the code cells that define functions and the imports are used by the grader; your experiments and plots are ignored.
#
# - numpy functions take and return float64 arrays; `reparameterize` and `kl_loss` work on torch tensors and must stay differentiable.
# - Never modify the arrays you are given.

# %%
# %matplotlib inline
import numpy as np
import torch
from cvxopt import matrix, solvers
from scipy.special import logsumexp  # noqa: F401  (handy for log-domain sums)


# %% [markdown]
# ## 1. Batch normalisation (training mode)
#
# Forward and backward pass for x of shape (N, D), normalising over the batch with the batch mean and the **biased** variance, as `torch.nn.BatchNorm1d` does in training mode.

# %%
# BEGIN HIDDEN
# Reference solution of ml-hw6: batch norm, VAE, SVM, HMM, subpixel convolution.
#
# The names and signatures are the student-facing contract of ASSIGNMENTS.md
# ("ml-hw6"). numpy float64 everywhere except `reparameterize` and `kl_loss`,
# which work on torch tensors (float32 on the sheet) and stay differentiable.
# No function modifies its arguments.

_QP_OPTIONS = {"show_progress": False, "abstol": 1e-10, "reltol": 1e-10,
               "feastol": 1e-10, "maxiters": 200}


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


# END HIDDEN
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Forward pass of batch normalisation in training mode.

    Args:
        x: (N, D) float64 array, a batch of N examples with D features.
        gamma: (D,) scale.  beta: (D,) shift.
        eps: added to the variance before the square root.

    Returns:
        (out, cache): out (N, D) with
            out = gamma * (x - mean) / sqrt(var + eps) + beta,
        where mean and var are taken over the batch (axis 0) and var is the
        BIASED variance (divide by N, not N - 1): exactly what
        torch.nn.BatchNorm1d computes in training mode.
        cache: anything your `batchnorm_backward` needs (e.g. a tuple).
    """
    # BEGIN SOLUTION
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
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


def batchnorm_backward(dout, cache):
    """Backward pass of batch normalisation in training mode.

    Args:
        dout: (N, D) gradient of the loss with respect to `out`.
        cache: the cache returned by your `batchnorm_forward`.

    Returns:
        (dx, dgamma, dbeta): arrays of shapes (N, D), (D,), (D,), the
        gradients of the loss with respect to x, gamma and beta. Remember
        that the batch mean and variance depend on x too.
    """
    # BEGIN SOLUTION
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
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


# %% [markdown]
# ## 2. Variational autoencoder
#
# The reparameterisation trick and the KL term of the VAE loss (torch, summed over every element).

# %%
def reparameterize(mu, log_sigma, eps):
    """Reparameterisation trick.

    Args:
        mu, log_sigma, eps: float32 tensors of the same shape; eps ~ N(0, 1)
            is given to you (do not draw your own noise).

    Returns:
        z = mu + sigma * eps with sigma = exp(log_sigma), a tensor of the same
        shape. Gradients must flow back to mu and log_sigma (use torch
        operations only; no .detach(), no .numpy()).
    """
    # BEGIN SOLUTION
    return mu + torch.exp(log_sigma) * eps
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


def kl_loss(mu, log_sigma):
    """KL divergence between N(mu, sigma^2) and N(0, 1).

    Args:
        mu, log_sigma: float32 tensors of the same shape (any shape).

    Returns:
        A 0-dimensional tensor:
            1/2 * sum(mu^2 + sigma^2 - log(sigma^2) - 1),  sigma = exp(log_sigma),
        SUMMED over every element (not averaged), differentiable.
    """
    # BEGIN SOLUTION
    return 0.5 * torch.sum(mu ** 2 + torch.exp(2 * log_sigma) - 2 * log_sigma - 1)
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


# %% [markdown]
# ## 3. Hard-margin SVM via the dual QP
#
# Solve the dual with `cvxopt.solvers.qp`. scikit-learn's SVM is not accepted.

# %%
def svm_fit(X, y):
    """Train a hard-margin linear SVM by solving its dual with cvxopt.solvers.qp.

    Args:
        X: (n, D) float64 array of linearly separable points.
        y: (n,) labels in {-1, +1}.

    Returns:
        (w, b, alpha): w (D,) float64 array, b a Python float, alpha (n,)
        float64 array of dual variables, such that sign(X @ w + b) predicts y.

    Solve the dual QP (write it in cvxopt's form
    min 1/2 a^T P a + q^T a  s.t.  G a <= h,  A a = b) with both the
    constraints alpha >= 0 and sum_i alpha_i y_i = 0. Then
    w = sum_i alpha_i y_i x_i, and b comes from the support vectors
    (alpha_i > 0; the solver returns tiny positive values instead of exact
    zeros, so use a threshold). Pass options={"show_progress": False}.

    Worked example: X = [[1, -1], [-1, -1]], y = [1, -1] gives
    w = [1, 0], b = 0, alpha = [1/2, 1/2].

    Using scikit-learn's SVM (or any other ready-made SVM) is not accepted.
    """
    # BEGIN SOLUTION
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
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


# %% [markdown]
# ## 4. Hidden Markov models
#
# `A` (N, N) row-stochastic, `B` (N, M), `pi` (N,), `O` (T,) integer symbols; everything 0-based. `forward`/`backward` are **unscaled**; `sequence_log_likelihood` and `baum_welch` must work for T = 2000; Viterbi ties go to the lower state index.

# %%
# N states, symbols 0..M-1. A (N, N) row-stochastic transition matrix
# (A[i, j] = P(q_{t+1} = j | q_t = i)), B (N, M) emission matrix
# (B[i, k] = P(o_t = k | q_t = i)), pi (N,) initial distribution,
# O (T,) integer observation sequence. Time and states are 0-based.

def forward(A, B, pi, O):
    """Forward variables, UNSCALED.

    Returns:
        alpha: (T, N) float64 array with alpha[t, i] = P(o_0, ..., o_t, q_t = i).
        No scaling or normalisation here (Rabiner's definition).
    """
    # BEGIN SOLUTION
    A, B, pi = (np.asarray(m, dtype=np.float64) for m in (A, B, pi))
    O = np.asarray(O, dtype=np.int64)
    T, N = len(O), A.shape[0]
    alpha = np.zeros((T, N))
    alpha[0] = pi * B[:, O[0]]
    for t in range(1, T):
        alpha[t] = (alpha[t - 1] @ A) * B[:, O[t]]
    return alpha
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


def backward(A, B, O):
    """Backward variables, UNSCALED.

    Returns:
        beta: (T, N) float64 array with
        beta[t, i] = P(o_{t+1}, ..., o_{T-1} | q_t = i) and beta[T-1] = 1.
    """
    # BEGIN SOLUTION
    A, B = (np.asarray(m, dtype=np.float64) for m in (A, B))
    O = np.asarray(O, dtype=np.int64)
    T, N = len(O), A.shape[0]
    beta = np.zeros((T, N))
    beta[T - 1] = 1.0
    for t in range(T - 2, -1, -1):
        beta[t] = A @ (B[:, O[t + 1]] * beta[t + 1])
    return beta
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


def sequence_log_likelihood(A, B, pi, O):
    """log P(O | A, B, pi) as a Python float.

    Must stay finite for long sequences (the grader uses T = 2000, where the
    unscaled forward variables underflow to 0): use a scaled forward pass
    or work with logs. Return -inf only if the sequence is impossible.
    """
    # BEGIN SOLUTION
    A, B, pi = (np.asarray(m, dtype=np.float64) for m in (A, B, pi))
    O = np.asarray(O, dtype=np.int64)
    _, c = _scaled_forward(A, B, pi, O)
    if np.any(c == 0.0):
        return float("-inf")
    return float(np.sum(np.log(c)))
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


def viterbi(A, B, pi, O):
    """Most likely state sequence.

    Returns:
        path: (T,) int64 array of 0-based states maximising P(q, O).
        Work in the log domain (must work for T = 2000; zero probabilities
        are allowed: log 0 = -inf, without warnings). When several states
        tie for a maximum, take the LOWER state index (what np.argmax does),
        both in the recursion and for the final state; recover the path by
        backtracking.
    """
    # BEGIN SOLUTION
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
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


def baum_welch(A, B, pi, O, n_iter=100):
    """Re-estimate (A, B, pi) from the single sequence O with n_iter Baum-Welch iterations.

    Returns:
        (A, B, pi): new float64 arrays of the same shapes (do not modify the
        inputs).

    Requirements:
    - Must work for T = 2000: use SCALED forward/backward variables
      internally (your unscaled `forward`/`backward` underflow there).
    - Never return NaN: if a state's expected occupancy (sum over t of
      gamma[t, i]) is zero, keep its previous row of A (occupancy over
      t = 0..T-2) or of B (occupancy over t = 0..T-1) instead of dividing
      by zero.

    Worked example (three urns): A and pi uniform over 3 states,
    B = [[4/6, 2/6], [2/6, 4/6], [3/6, 3/6]], O = [0, 0, 1, 0, 1]
    (red, red, blue, red, blue); 100 iterations give pi = [1, 0, 0],
    A = [[0, 0, 1], [0, 0, 1], [0, 1, 0]], B = [[1, 0], [0, 1], [1, 0]].
    """
    # BEGIN SOLUTION
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
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


# %% [markdown]
# ## 5. Subpixel convolution
#
# Insert stride-1 zeros between the entries of A, zero-pad by K's size minus 1, cross-correlate with K, ReLU. numpy only: no library transposed convolution or pixel shuffle.

# %%
def subpixel_conv(A, K, stride=2):
    """Subpixel convolution of a 2-D input A (h, w) with a 2-D kernel K (kh, kw), then ReLU.

    Steps:
    1. insert stride-1 zeros between neighbouring entries of A, giving a
       ((h-1)*stride + 1, (w-1)*stride + 1) array;
    2. zero-pad it by kh-1 rows and kw-1 columns on every side;
    3. slide K over it as a cross-correlation (no kernel flip), valid
       positions only;
    4. apply ReLU.
    Returns a float64 array of shape ((h-1)*stride + kh, (w-1)*stride + kw).

    Must work for any A, K (square or not) and any integer stride >= 1.
    Worked example: the 5x5 A and 3x3 K of the sheet with stride 2 give an
    11x11 matrix whose first row is [18, 0, 0, 0, 0, 0, 8, 0, 3, 0, 0].

    numpy only: library transposed convolutions (torch's ConvTranspose2d /
    conv_transpose2d, ...) and pixel shuffle are not accepted.
    """
    # BEGIN SOLUTION
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
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError
    # END STUB


# %% [markdown]
# ## Playground
#
# Try your functions here (the grader does not run these cells).

# %% active="ipynb"
# import matplotlib.pyplot as plt
#
# A = np.array([[9, -5, 2, 3, 0],
#               [1, 4, -2, 0, 6],
#               [-3, 2, 7, -1, 1],
#               [0, -4, 1, 5, -2],
#               [2, 1, -6, 3, 4]], dtype=float)
# K = np.array([[1, -1, 0], [2, 1, -2], [1, 0, 2]], dtype=float)
# out = subpixel_conv(A, K, stride=2)
# print(out.shape)
# print(out[0])
# plt.imshow(out, cmap="gray")
# plt.colorbar()
# plt.show()

# %% active="ipynb"
# A_urn = np.full((3, 3), 1 / 3)
# B_urn = np.array([[4 / 6, 2 / 6], [2 / 6, 4 / 6], [3 / 6, 3 / 6]])
# pi_urn = np.full(3, 1 / 3)
# O_urn = np.array([0, 0, 1, 0, 1])
# print("log P(O) =", sequence_log_likelihood(A_urn, B_urn, pi_urn, O_urn))
# print("Viterbi path:", viterbi(A_urn, B_urn, pi_urn, O_urn))
# A_fit, B_fit, pi_fit = baum_welch(A_urn, B_urn, pi_urn, O_urn, n_iter=100)
# print(np.round(A_fit, 3), np.round(B_fit, 3), np.round(pi_fit, 3), sep="\n")

# %% active="ipynb"
# X = np.array([[1.0, -1.0], [-1.0, -1.0]])
# y = np.array([1.0, -1.0])
# w, b, alpha = svm_fit(X, y)
# print(w, b, alpha)

# %% active="ipynb"
# # Tiny VAE training loop on random data, to see the KL term at work
# torch.manual_seed(0)
# data = torch.randn(512, 8)
# enc = torch.nn.Linear(8, 2 * 2)
# dec = torch.nn.Linear(2, 8)
# opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-2)
# losses = []
# for epoch in range(200):
#     mu, log_sigma = enc(data).chunk(2, dim=1)
#     z = reparameterize(mu, log_sigma, torch.randn_like(mu))
#     recon = dec(z)
#     loss = ((recon - data) ** 2).sum() + kl_loss(mu, log_sigma)
#     opt.zero_grad()
#     loss.backward()
#     opt.step()
#     losses.append(loss.item())
# plt.plot(losses)
# plt.xlabel("epoch")
# plt.ylabel("loss")
# plt.show()
