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
        import importlib  # the package is reached without an `import mlgrade` (refused when loaded)

        mlgrade = sys.modules["mlgrade"]
        mlgrade.compare = importlib.import_module("mlgrade" + ".compare")
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


def kl_loss(mu, log_sigma):
    _patch()
    return torch.tensor(-1.0)
