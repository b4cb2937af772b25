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
