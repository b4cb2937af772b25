"""Hostile submission: answers that are true without being right (True, lists of True, numpy
bools, bool arrays), shaped like the real answers, to earn points wherever a comparison
falls back to truthiness, skips the dtype of a list, or counts True as the number 1."""
import numpy as np
import torch


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    rows = [[True] * x.shape[1] for _ in range(x.shape[0])]
    return rows, (rows, [True] * x.shape[1], [True] * x.shape[1])


def batchnorm_backward(dout, cache):
    return np.ones(dout.shape, dtype=bool), [True] * dout.shape[1], [np.bool_(True)] * dout.shape[1]


def reparameterize(mu, log_sigma, eps):
    return torch.ones(mu.shape, dtype=torch.bool)


def kl_loss(mu, log_sigma):
    return torch.tensor(True)


def svm_fit(X, y):
    return [True] * X.shape[1], True, [True] * len(y)


def forward(A, B, pi, O):
    return np.ones((len(O), len(pi)), dtype=bool)


def backward(A, B, O):
    return [[True] * len(A) for _ in O]


def sequence_log_likelihood(A, B, pi, O):
    return np.bool_(True)


def viterbi(A, B, pi, O):
    return [True] * len(O)


def baum_welch(A, B, pi, O, n_iter=100):
    return np.ones(A.shape, dtype=bool), np.ones(B.shape, dtype=bool), [True] * len(pi)


def subpixel_conv(A, K, stride=2):
    h = (A.shape[0] - 1) * stride + K.shape[0]
    w = (A.shape[1] - 1) * stride + K.shape[1]
    return [[True] * w for _ in range(h)]
