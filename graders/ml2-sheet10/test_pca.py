"""Exercise 3a: PCA inpainting, pca(z, x, d), compared as reconstructions (the signs of components are free)."""
from functools import partial

import pytest
import torch

from mlgrade import assert_close, assert_unchanged, check, fetch, student
from ml2_sheet10.oracles import pca_by_eigh  # numpy's eigh, an independent oracle
from mlgrade.notebook_state import reference_notebook

sheet10 = student("sheet10")
ref = reference_notebook("sheet10.ipynb")
close = partial(assert_close, rtol=1e-3, atol=2e-3)
RANK = 5


def low_rank(seed, n=8, N=300, rank=RANK):
    """x (N, 784) = mean + rank components with distinct variances 5, 4, ... 1; z (n, 784) any digits."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(784, rank, generator=g, dtype=torch.float64))
    scores = torch.randn(N, rank, generator=g, dtype=torch.float64)
    scores = (scores - scores.mean(0)) / scores.std(0) * torch.arange(rank, 0, -1) ** 0.5
    x = scores @ basis.T + torch.rand(784, generator=g, dtype=torch.float64) - 0.5
    z = torch.rand(n, 784, generator=g, dtype=torch.float64) * 2 - 1
    return z.float(), x.float()


@check("pca: numpy eigendecomposition of low-rank data, d={d}", weight=2)
@pytest.mark.parametrize("d", [1, 3, RANK])
def test_pca_numpy(seed, d):
    z, x = low_rank(seed)
    close(sheet10.pca(z, x, d), pca_by_eigh(z, x, d), name=f"pca(z, x, {d})")


@check("pca: as the reference, d={d}")
@pytest.mark.parametrize("d", [2, RANK])
def test_pca_reference(seed, d):
    z, x = low_rank(seed, n=5, N=120)
    close(sheet10.pca(z, x, d), ref.pca(z, x, d), name=f"pca(z, x, {d})")


@check("pca: a projection (applying it twice changes nothing), d=3")
def test_pca_idempotent(seed):
    z, x = low_rank(seed)
    once = sheet10.pca.remote(z, x, 3)
    close(sheet10.pca(once, x, 3), pca_by_eigh(z, x, 3), name="pca(pca(z, x, 3), x, 3)")


@check("pca: d = 784 gives z back, d = 10 does not")
def test_pca_identity(seed):
    g = torch.Generator().manual_seed(seed)
    x, z = torch.randn(1000, 784, generator=g), torch.randn(4, 784, generator=g)
    close(sheet10.pca(z, x, 784), z, name="pca(z, x, 784)")
    close(sheet10.pca(z, x, 10), pca_by_eigh(z, x, 10), name="pca(z, x, 10)")


@check("pca: z and x are not modified")
def test_pca_inputs_unchanged(seed):
    z, x = low_rank(seed)
    result = sheet10.pca.remote(z, x, 2)
    assert_unchanged(result, "pca", ["z", "x", "d"])
    close(fetch(result), pca_by_eigh(z, x, 2), name="pca(z, x, 2)")
