"""Exercise 3b: the energy-based inpainting loss err(x, m, z, gnet, enet) and its gradient flip.

The nets are the grader's (the sheet's architecture, built in the worker): the notebook's own
enet and gnet cells are never run. One SGD optimizer minimises err for both nets, so enet's
gradients are those of the loss and gnet's the opposite of those of the loss without the flip.
"""
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from mlgrade import assert_close, check, student
from mlgrade.networks import network, parameter_grads
from mlgrade.notebook_state import reference_notebook

sheet10 = student("sheet10")
ref = reference_notebook("sheet10.ipynb", memo=False)
close = partial(assert_close, rtol=1e-4, atol=1e-6)
ENET = [["Linear", 784, 64], ["LeakyReLU", 0.2], ["Linear", 64, 1]]
GNET = [["Linear", 784, 64], ["ReLU"], ["Linear", 64, 784], ["Tanh"]]
LINEAR_GNET = [["Linear", 784, 784]]  # its bias gradient, for one digit, is the gradient at gnet's output


ENERGY_SCALE = 10.0  # energies of a few units: at initialisation they are near 0 and every loss is near log 2


def nets(seed, gnet_layers=GNET):
    """(gnet, enet) here, and the same two built in the worker; enet's last layer scaled so that
    losses are far from their value at initialisation, where right and wrong losses differ."""
    torch.manual_seed(seed)
    here = [torch.nn.Sequential(*(getattr(torch.nn, name)(*args) for name, *args in layers))
            for layers in (gnet_layers, ENET)]
    with torch.no_grad():
        for p in here[1][-1].parameters():
            p.mul_(ENERGY_SCALE)
    there = [network(layers, [p.detach().clone() for p in net.parameters()]) for layers, net in zip((gnet_layers, ENET), here)]
    return here, there


def batch(seed, n=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 784, generator=g) * 2 - 1
    z, m = ref.removepatch(x, generator=g)
    return x, m, z


def grads_of(loss, net):
    net.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in net.parameters()]


def no_none(grads, net):
    if any(g is None for g in grads):
        raise AssertionError(f"no gradient reached {net}'s parameters: keep {net}'s output in the graph "
                             "(no .detach(), torch.no_grad() or .item() on it)")
    return grads


@check("err: value as the reference, n={n}", weight=2)
@pytest.mark.parametrize("n", [1, 6])
def test_err_value(seed, n):
    x, m, z = batch(seed, n)
    (gnet, enet), (g_ref, e_ref) = nets(seed)
    close(sheet10.err(x, m, z, g_ref, e_ref), ref.err(x, m, z, gnet, enet).detach(), name="err")


@check("err: softplus(enet(x) - enet(r)), the energies in that order")
def test_err_energy_order(seed):
    x, m, z = batch(seed)
    (gnet, enet), (g_ref, e_ref) = nets(seed)
    with torch.no_grad():
        r = z * (1 - m) + m * gnet(z)
        expected = F.softplus(enet(x) - enet(r)).mean()
    close(sheet10.err(x, m, z, g_ref, e_ref), expected, name="err")


@check("err: averaged over the batch, not summed")
def test_err_mean(seed):
    x, m, z = batch(seed, n=16)
    (gnet, enet), (g_ref, e_ref) = nets(seed)
    close(sheet10.err(x, m, z, g_ref, e_ref), ref.err(x, m, z, gnet, enet).detach(), name="err of 16 digits")


@check("err: gnet receives z, not x")
def test_err_gnet_input(seed):
    x, m, z = batch(seed)
    z = z + 0.5 * (1 - m) * torch.sin(torch.arange(784.0))  # z differs from x outside the patch too
    (gnet, enet), (g_ref, e_ref) = nets(seed)
    _, (g_grads,) = parameter_grads(sheet10.err, x, m, z, g_ref, e_ref, of=(3,))
    expected = grads_of(-F.softplus(enet(x) - enet(z * (1 - m) + m * gnet(z))).mean(), gnet)
    close(no_none(g_grads, "gnet")[0], expected[0], name="d err / d gnet's first weight")


@check("err: enet's parameter gradients equal the reference's", weight=2)
def test_err_enet_grads(seed):
    x, m, z = batch(seed)
    (gnet, enet), (g_ref, e_ref) = nets(seed)
    _, (e_grads,) = parameter_grads(sheet10.err, x, m, z, g_ref, e_ref, of=(4,))
    close(no_none(e_grads, "enet"), grads_of(ref.err(x, m, z, gnet, enet), enet), name="d err / d enet's parameters")


@check("err: gnet's parameter gradients are minus those of the loss without the flip", weight=3)
def test_err_gradient_flip(seed):
    x, m, z = batch(seed)
    (gnet, enet), (g_ref, e_ref) = nets(seed)
    _, (g_grads,) = parameter_grads(sheet10.err, x, m, z, g_ref, e_ref, of=(3,))
    without_flip = F.softplus(enet(x) - enet(z * (1 - m) + m * gnet(z))).mean()
    expected = [-g for g in grads_of(without_flip, gnet)]
    close(no_none(g_grads, "gnet"), expected, name="d err / d gnet's parameters")


@check("err: no gradient reaches gnet's output outside the patch (m == 0)", weight=2)
def test_err_patch_only(seed):
    x, m, z = batch(seed, n=1)
    (gnet, enet), (g_ref, e_ref) = nets(seed, LINEAR_GNET)
    _, (g_grads,) = parameter_grads(sheet10.err, x, m, z, g_ref, e_ref, of=(3,))
    at_output = no_none(g_grads, "gnet")[1]  # one digit, linear gnet: the bias gradient is d err / d gnet(z)
    close(at_output * (1 - m[0]), torch.zeros(784), atol=0, rtol=0, name="d err / d gnet(z) where m == 0")
    expected = -grads_of(F.softplus(enet(x) - enet(z * (1 - m) + m * gnet(z))).mean(), gnet)[1]
    close(at_output, expected, name="d err / d gnet(z) inside the patch")


@check("err: one SGD step of both nets equals the reference's step", weight=2)
def test_err_sgd_step(seed):
    x, m, z = batch(seed)
    (gnet, enet), (g_ref, e_ref) = nets(seed)
    _, (g_grads, e_grads) = parameter_grads(sheet10.err, x, m, z, g_ref, e_ref, of=(3, 4))
    params = [*gnet.parameters(), *enet.parameters()]
    ref.err(x, m, z, gnet, enet).backward()  # what torch.optim.SGD(params, lr=0.1).step() would apply
    expected = [p.detach() - 0.1 * p.grad for p in params]
    stepped = [p.detach() - 0.1 * g for p, g in zip(params, no_none(g_grads, "gnet") + no_none(e_grads, "enet"))]
    close(stepped, expected, name="parameters after one SGD step (lr=0.1) of both nets")
