"""Hostile submission: a correct batch norm that normalises x in place (x -= mean; x /= std)."""
import os
import sys

import numpy as np
import torch


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    x -= x.mean(axis=0)
    inv_std = 1.0 / np.sqrt((x ** 2).mean(axis=0) + eps)
    x *= inv_std
    gamma += 0.0
    return gamma * x + beta, (x, gamma, inv_std)


def batchnorm_backward(dout, cache):
    x_hat, gamma, inv_std = cache
    n = dout.shape[0]
    dx_hat = dout * gamma
    dx = (inv_std / n) * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
