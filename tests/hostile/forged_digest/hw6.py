"""Hostile submission: a correct batch norm that normalises x in place, and hides the write from a
digest computed in the worker: mlgrade.probes._digest and hashlib.sha256 answer the same for
every value, so "before" and "after" always agree there."""
import hashlib

import sys
import numpy as np


class _SameForEverything:
    def __init__(self, *args, **kwargs):
        pass

    def update(self, data):
        pass

    def digest(self):
        return b"\0" * 32

    def hexdigest(self):
        return "0" * 64


hashlib.sha256 = _SameForEverything
sys.modules["mlgrade.probes"]._digest = lambda value: "0" * 64


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    x -= x.mean(axis=0)
    inv_std = 1.0 / np.sqrt((x ** 2).mean(axis=0) + eps)
    x *= inv_std
    return gamma * x + beta, (x, gamma, inv_std)

