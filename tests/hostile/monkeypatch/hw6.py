"""Hostile submission: monkeypatches numpy.testing, numpy.allclose, torch.testing, torch.allclose, ndarray.__eq__, pytest and mlgrade inside the worker"""
import os
import sys

import numpy as np
import torch
import numpy.testing
import torch.testing

PATCHED = []


def _always(*args, **kwargs):
    return True


def _patch():
    for owner, name, value in [
        (np, "allclose", _always), (np, "array_equal", _always), (np.testing, "assert_allclose", _always),
        (np.testing, "assert_array_equal", _always), (torch, "allclose", _always), (torch, "equal", _always),
        (torch.testing, "assert_close", _always), (np.ndarray, "__eq__", _always), (torch.Tensor, "__eq__", _always),
    ]:
        try:
            setattr(owner, name, value)
            PATCHED.append(name)
        except (TypeError, AttributeError):
            pass
    try:
        import pytest

        pytest.approx = lambda *a, **k: _Equal()
        pytest.fail = _always
        PATCHED.append("pytest")
    except ImportError:
        pass
    try:
        import mlgrade
        import mlgrade.compare

        mlgrade.assert_close = mlgrade.compare.assert_close = _always
        mlgrade.compare._compare = lambda *a, **k: None
        PATCHED.append("mlgrade.compare")
    except ImportError:
        pass
    print("patched:", PATCHED)


class _Equal:
    def __eq__(self, other):
        return True


_patch()


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


def kl_loss(mu, log_sigma):
    _patch()
    return torch.tensor(-1.0)
