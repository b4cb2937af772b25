"""Hostile submission: returns objects whose __eq__, __array__ and comparisons lie (always equal)"""
import os
import sys

import numpy as np
import torch


class Liar:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__

    def __array__(self, *a, **k):
        return np.zeros(0)

    def __float__(self):
        return 0.0

    def __len__(self):
        return 0


# --- the honest part of this submission: every function is WRONG on purpose, so that any
# --- point this file earns can only come from the attack above.

def batchnorm_forward(x, gamma, beta, eps=1e-5):
    return np.zeros_like(x), (np.zeros_like(x), np.zeros_like(gamma), np.zeros_like(gamma))


def batchnorm_backward(dout, cache):
    return np.zeros_like(dout), np.zeros(dout.shape[1]), np.zeros(dout.shape[1])


def reparameterize(mu, log_sigma, eps):
    return torch.zeros_like(mu)


def kl_loss(mu, log_sigma):
    return torch.tensor(-1.0)


def svm_fit(X, y):
    return np.zeros(X.shape[1]), 0.0, np.zeros(len(y))


def forward(A, B, pi, O):
    return np.zeros((len(O), len(pi)))


def backward(A, B, O):
    return np.zeros((len(O), len(A)))


def sequence_log_likelihood(A, B, pi, O):
    return 0.0


def viterbi(A, B, pi, O):
    return np.full(len(O), -1, dtype=np.int64)


def baum_welch(A, B, pi, O, n_iter=100):
    return np.zeros_like(A), np.zeros_like(B), np.zeros_like(pi)


def subpixel_conv(A, K, stride=2):
    return np.zeros((1, 1))


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    return Liar(), Liar()


def batchnorm_backward(dout, cache):
    return Liar()


def reparameterize(mu, log_sigma, eps):
    return Liar()


def kl_loss(mu, log_sigma):
    return Liar()


def viterbi(A, B, pi, O):
    return [Liar()] * len(O)


def subpixel_conv(A, K, stride=2):
    return Liar()
