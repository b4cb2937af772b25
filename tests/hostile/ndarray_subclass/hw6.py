"""Hostile submission: returns numpy.ndarray subclasses whose comparisons always pass"""
import os
import sys

import numpy as np
import torch


class Always(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(other), dtype=bool)

    def __array_ufunc__(self, *a, **k):
        return np.zeros(0)


def _lie(shape):
    return np.zeros(shape).view(Always)


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    return _lie(x.shape), (_lie(x.shape),)


def batchnorm_backward(dout, cache):
    return _lie(dout.shape), _lie(dout.shape[1]), _lie(dout.shape[1])


def viterbi(A, B, pi, O):
    return _lie(len(O)).astype(np.int64).view(Always)


def subpixel_conv(A, K, stride=2):
    return _lie((1, 1))
