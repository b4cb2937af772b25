"""Public checks of ml2-sheet10, shipped to students (`mlgrade check ml2-sheet10`).

No reference solution here: pca is checked on data whose principal components are known, err
against its formula and the gradient flip against autograd (with nets of the sheet's
architecture built in the worker), the theory against autograd and brute force. The inpainted
digits at d = 10, 60, 360 are on the self-check page: `mlgrade check ml2-sheet10 --page`. These
checks run the same in `mlgrade check` and in grading.
"""
import functools
import itertools
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlgrade import assert_close, check, student, wire
from mlgrade.networks import network, parameter_grads

sheet10 = student("sheet10")
theory = student("sheet10_theory")
close = partial(assert_close, rtol=1e-4, atol=1e-5)
ENET = [["Linear", 784, 32], ["LeakyReLU", 0.2], ["Linear", 32, 1]]
GNET = [["Linear", 784, 512], ["ReLU"], ["Linear", 512, 784], ["Tanh"]]  # the sheet's generator
PICTURE_DS = (10, 60, 360)


def sequential(layers):
    return torch.nn.Sequential(*(getattr(torch.nn, name)(*args) for name, *args in layers))


def patched(x, size=12):
    """(z, m): a size x size patch of each digit set to 0, at a place that moves with the row."""
    m = torch.zeros(len(x), 28, 28)
    for i in range(len(x)):
        r, c = 4 + (3 * i) % 12, 4 + (5 * i) % 12
        m[i, r:r + size, c:c + size] = 1
    m = m.reshape(len(x), 784)
    return x * (1 - m), m


@check("pca: data on a line: d=1 projects on that line; d=784 gives z back for data of rank 784 (public)")
def test_pca_rank_one(rng):
    u = torch.tensor(rng.normal(size=784), dtype=torch.float32)
    u /= u.norm()
    mean = torch.tensor(rng.uniform(-0.5, 0.5, size=784), dtype=torch.float32)
    x = mean + torch.tensor(rng.normal(size=(50, 1)), dtype=torch.float32) * 3 * u
    z = torch.tensor(rng.uniform(-1, 1, size=(4, 784)), dtype=torch.float32)
    close(sheet10.pca(z, x, 1), mean + ((z - mean) @ u)[:, None] * u, rtol=1e-3, atol=1e-4, name="pca(z, x, 1)")
    # d=784 needs data of rank 784 (the contract grades d up to the centred data's rank: 50 points have 49)
    full = torch.tensor(rng.normal(size=(1000, 784)), dtype=torch.float32)
    close(sheet10.pca(z, full, 784), z, rtol=1e-3, atol=1e-3, name="pca(z, x, 784), x of 1000 random points")


def grader_nets(seed=0):
    torch.manual_seed(seed)
    here = [sequential(GNET), sequential(ENET)]
    return here, [network(layers, [p.detach().clone() for p in net.parameters()]) for layers, net in zip((GNET, ENET), here)]


@check("err: mean(softplus(enet(x) - enet(r))), r = z*(1-m) + m*gnet(z) (public)")
def test_err_formula(rng):
    x = torch.tensor(rng.uniform(-1, 1, size=(5, 784)), dtype=torch.float32)
    z, m = patched(x)
    (gnet, enet), (g_ref, e_ref) = grader_nets()
    with torch.no_grad():
        expected = F.softplus(enet(x) - enet(z * (1 - m) + m * gnet(z))).mean()
    close(sheet10.err(x, m, z, g_ref, e_ref), expected, name="err")


@check("err: gnet's gradients are minus those of the loss, enet's those of the loss (public)")
def test_err_flip(rng):
    x = torch.tensor(rng.uniform(-1, 1, size=(5, 784)), dtype=torch.float32)
    z, m = patched(x)
    (gnet, enet), (g_ref, e_ref) = grader_nets()
    F.softplus(enet(x) - enet(z * (1 - m) + m * gnet(z))).mean().backward()
    _, (g_grads, e_grads) = parameter_grads(sheet10.err, x, m, z, g_ref, e_ref, of=(3, 4))
    if any(g is None for g in g_grads):
        raise AssertionError("no gradient reached gnet: keep the generator's output in the graph")
    close(g_grads, [-p.grad for p in gnet.parameters()], name="d err / d gnet's parameters")
    close(e_grads, [p.grad for p in enet.parameters()], name="d err / d enet's parameters")


@check("mdn_grads: autograd of E for one point, m=2, c=2 (public)")
def test_mdn_autograd():
    alpha, mu, sigma, t = np.array([0.3, 0.7]), np.array([[0.0, 1.0], [1.0, -1.0]]), np.array([0.8, 1.5]), np.array([0.5, 0.2])
    z_alpha, mu_t = torch.tensor(np.log(alpha), requires_grad=True), torch.tensor(mu, requires_grad=True)
    alpha_t = torch.tensor(alpha, requires_grad=True)

    def energy(weights):
        log_n = -np.log(2 * np.pi) - torch.log(torch.tensor(sigma) ** 2) - ((torch.tensor(t) - mu_t) ** 2).sum(1) / (2 * torch.tensor(sigma) ** 2)
        return -torch.logsumexp(torch.log(weights) + log_n, 0)

    d_alpha, d_mu = torch.autograd.grad(energy(alpha_t), (alpha_t, mu_t))
    (d_z,) = torch.autograd.grad(energy(torch.softmax(z_alpha, 0)), (z_alpha,))
    close(theory.mdn_grads(alpha, mu, sigma, t), (d_alpha.numpy(), d_mu.numpy(), d_z.numpy()), rtol=1e-6,
          name="(dE_dalpha, dE_dmu, dE_dz_alpha)")


@check("crbm_free_energy: brute force over every binary h, K=3 (public)")
def test_crbm_free_energy(rng):
    W, U, x, y = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=2), np.array([1.0, 0.0])
    expected = -np.log(sum(np.exp(x @ W @ np.array(h) + y @ U @ np.array(h)) for h in itertools.product((0, 1), repeat=3)))
    close(theory.crbm_free_energy(W, U, x, y), expected, rtol=1e-6, name="F(x, y)")


@functools.lru_cache(maxsize=1)
def digits():
    """(1000 training digits, ten test digits) as utils.getdata() gives them, quietly."""
    from contextlib import redirect_stdout
    from io import StringIO

    import utils

    with redirect_stdout(StringIO()):
        Xr, Xt = utils.getdata()
    return Xr[:1000], Xt[:10]


def projection(value, z, d):
    """``value`` if it is a float tensor shaped like z, else a failure saying what came back."""
    if not (isinstance(value, torch.Tensor) and value.shape == z.shape and value.is_floating_point()):
        raise AssertionError(f"pca(z, Xr, {d}) returned {wire.describe(value)}, not a float tensor of shape "
                             f"{tuple(z.shape)}")
    return value


@check("pca: inpaints digits, the patch closer to the truth at d=10 than left blank (public)")
def test_pca_inpaints():
    Xr, x = digits()
    z, m = patched(x)
    inpainted = {d: z * (1 - m) + m * projection(sheet10.pca(z, Xr, d), z, d) for d in PICTURE_DS}
    blank, filled = ((z - x) * m).pow(2).sum(), ((inpainted[10] - x) * m).pow(2).sum()
    if not filled < blank:
        raise AssertionError(f"pca(z, Xr, 10) fills the patch worse than leaving it blank "
                             f"(squared error {filled:.1f} against {blank:.1f})")
