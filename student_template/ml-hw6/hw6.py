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
    raise NotImplementedError


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
    raise NotImplementedError


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
    raise NotImplementedError


def kl_loss(mu, log_sigma):
    """KL divergence between N(mu, sigma^2) and N(0, 1).

    Args:
        mu, log_sigma: float32 tensors of the same shape (any shape).

    Returns:
        A 0-dimensional tensor:
            1/2 * sum(mu^2 + sigma^2 - log(sigma^2) - 1),  sigma = exp(log_sigma),
        SUMMED over every element (not averaged), differentiable.
    """
    raise NotImplementedError


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
    raise NotImplementedError


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
    raise NotImplementedError


def backward(A, B, O):
    """Backward variables, UNSCALED.

    Returns:
        beta: (T, N) float64 array with
        beta[t, i] = P(o_{t+1}, ..., o_{T-1} | q_t = i) and beta[T-1] = 1.
    """
    raise NotImplementedError


def sequence_log_likelihood(A, B, pi, O):
    """log P(O | A, B, pi) as a Python float.

    Must stay finite for long sequences (the grader uses T = 2000, where the
    unscaled forward variables underflow to 0): use a scaled forward pass
    or work with logs. Return -inf only if the sequence is impossible.
    """
    raise NotImplementedError


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
    raise NotImplementedError


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
    raise NotImplementedError


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
    raise NotImplementedError


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
