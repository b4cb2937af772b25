"""Independent oracles of ml2-sheet10's checks (no reference code): PCA by numpy's eigh
(of the covariance, or of the smaller Gram matrix when there are fewer points than pixels).

The leading eigenvectors of each data set are remembered for the life of the grading process
(inputs are seeded by test id, so every submission asks about the same data sets): an eigh of
a 784 x 784 covariance costs up to a second on a busy machine, the projection nothing.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

__all__ = ["pca_by_eigh"]

KEPT = 16  # leading components remembered per data set (784 x 16 floats each)
REMEMBERED = 64  # data sets
_LEADING: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()


def _leading(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, the KEPT leading eigenvectors of the covariance as columns) of the rows of x."""
    key = hashlib.sha256(np.ascontiguousarray(x).tobytes() + str(x.shape).encode()).hexdigest()
    if key not in _LEADING:
        mean = x.mean(axis=0)
        centred = x - mean
        n, dim = centred.shape
        if n < dim:  # the same nonzero eigenvalues from the smaller (n, n) Gram matrix: C v = l v for v = X^T u
            values, u = np.linalg.eigh(centred @ centred.T / n)
            order = np.argsort(values)[::-1][:KEPT]
            vectors = centred.T @ u[:, order]
            vectors /= np.linalg.norm(vectors, axis=0)
        else:
            values, vectors = np.linalg.eigh(centred.T @ centred / n)
            vectors = vectors[:, np.argsort(values)[::-1][:KEPT]]
        _LEADING[key] = (mean, vectors)
        while len(_LEADING) > REMEMBERED:
            _LEADING.popitem(last=False)
    _LEADING.move_to_end(key)
    return _LEADING[key]


def pca_by_eigh(z: torch.Tensor, x: torch.Tensor, d: int) -> torch.Tensor:
    """The projection of z on the d (<= KEPT) leading eigenvectors of x's covariance, float32."""
    if d > KEPT:
        raise ValueError(f"pca_by_eigh keeps {KEPT} components, not {d}")
    mean, top = _leading(x.double().numpy())
    top = top[:, :d]
    return torch.tensor((z.double().numpy() - mean) @ top @ top.T + mean, dtype=torch.float32)
