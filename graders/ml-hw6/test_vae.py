"""Exercise 2: the VAE's reparameterisation trick and KL term (torch, float32, differentiable)."""
from functools import partial

import pytest
import torch

from mlgrade import assert_close, check, reference, student

hw6 = student("hw6")
ref = reference("hw6.py")
close = partial(assert_close, rtol=1e-5, atol=1e-6)
SHAPES = [(5,), (16, 8), (2, 3, 4)]


def gaussian_params(seed, shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), 0.5 * torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def reference_grads(fn, args, wrt, grad_output=None):
    args = [a.clone().requires_grad_(i in wrt) for i, a in enumerate(args)]
    out = fn(*args)
    out.backward(grad_output)
    return out.detach(), [args[i].grad for i in wrt]


@check("reparameterize: z = mu + sigma * eps, shape {shape}")
@pytest.mark.parametrize("shape", SHAPES)
def test_reparameterize(seed, shape):
    mu, log_sigma, eps = gaussian_params(seed, shape)
    close(hw6.reparameterize(mu, log_sigma, eps), ref.reparameterize(mu, log_sigma, eps), name="z")


@check("reparameterize: gradients reach mu and log_sigma, shape {shape}", weight=2)
@pytest.mark.parametrize("shape", SHAPES[1:])
def test_reparameterize_grad(seed, shape):
    mu, log_sigma, eps = gaussian_params(seed, shape)
    upstream = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1))
    z, grads = hw6.reparameterize.grad(mu, log_sigma, eps, wrt=(0, 1), grad_output=upstream)
    expected_z, expected_grads = reference_grads(ref.reparameterize, [mu, log_sigma, eps], (0, 1), upstream)
    close(z, expected_z, name="z")
    for got, want, name in zip(grads, expected_grads, ("mu", "log_sigma")):
        if got is None:
            raise AssertionError(f"no gradient reached {name}: keep the computation in torch (no .detach(), .numpy() or .item())")
        close(got, want, name=f"d(z . upstream)/d{name}")


@check("kl_loss: summed over every element, shape {shape}")
@pytest.mark.parametrize("shape", SHAPES)
def test_kl(seed, shape):
    mu, log_sigma, _ = gaussian_params(seed, shape)
    close(hw6.kl_loss(mu, log_sigma), ref.kl_loss(mu, log_sigma), name="kl")


@check("kl_loss: zero for the standard normal, the reference's value away from it")
def test_kl_zero(seed):
    # a constant answer must not earn this point: the zero is checked beside a non-trivial input
    zeros = torch.zeros(4, 3)
    close(hw6.kl_loss(zeros, zeros), torch.tensor(0.0), name="kl(mu=0, log_sigma=0)")
    mu, log_sigma, _ = gaussian_params(seed, (4, 3))
    close(hw6.kl_loss(mu, log_sigma), ref.kl_loss(mu, log_sigma), name="kl(mu, log_sigma)")


@check("kl_loss: gradients for mu and log_sigma", weight=2)
def test_kl_grad(seed):
    mu, log_sigma, _ = gaussian_params(seed, (6, 4))
    kl, grads = hw6.kl_loss.grad(mu, log_sigma, wrt=(0, 1))
    _, expected = reference_grads(ref.kl_loss, [mu, log_sigma], (0, 1))
    for got, want, name in zip(grads, expected, ("mu", "log_sigma")):
        if got is None:
            raise AssertionError(f"no gradient reached {name}")
        close(got, want, name=f"dkl/d{name}")
