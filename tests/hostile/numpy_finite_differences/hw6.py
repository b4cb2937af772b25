"""Hostile submission: reparameterize and kl_loss computed in numpy, wrapped in an
autograd.Function whose backward returns central finite differences of the numpy function.

Autograd "works" in the worker (the outputs require a gradient and backward returns numbers
close to the true gradients), but nothing of it is torch arithmetic: traced, the values and
the gradients are constants of the graph, right for the inputs the worker saw only.
"""
import numpy as np
import torch


def _numpy_reparameterize(mu, log_sigma, eps):
    return mu + np.exp(log_sigma) * eps


def _numpy_kl(mu, log_sigma):
    return np.asarray(0.5 * np.sum(mu ** 2 + np.exp(2 * log_sigma) - 2 * log_sigma - 1))


def _central(fn, arrays, i, upstream, h=1e-5):
    g = np.zeros_like(arrays[i])
    for k in range(arrays[i].size):
        plus = [a.copy() for a in arrays]
        minus = [a.copy() for a in arrays]
        plus[i].reshape(-1)[k] += h
        minus[i].reshape(-1)[k] -= h
        g.reshape(-1)[k] = ((fn(*plus) - fn(*minus)) * upstream).sum() / (2 * h)
    return g


def _numpy_function(fn, n_differentiable):
    class NumpyFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            arrays = [t.detach().double().numpy() for t in tensors]
            ctx.arrays = arrays
            return torch.as_tensor(fn(*arrays), dtype=tensors[0].dtype)

        @staticmethod
        def backward(ctx, grad_output):
            upstream = grad_output.detach().double().numpy()
            grads = [torch.as_tensor(_central(fn, ctx.arrays, i, upstream), dtype=grad_output.dtype)
                     for i in range(n_differentiable)]
            return (*grads, *[None] * (len(ctx.arrays) - n_differentiable))

    return NumpyFunction.apply


reparameterize = _numpy_function(_numpy_reparameterize, 2)
kl_loss = _numpy_function(_numpy_kl, 2)
