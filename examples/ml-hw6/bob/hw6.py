# Bob's submission: batch norm and the VAE done (with two bugs), the rest not started.
import numpy as np
import torch


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    var = x.var(axis=0, ddof=1)  # bug: the unbiased variance
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, gamma, var, eps)


def batchnorm_backward(dout, cache):
    x_hat, gamma, var, eps = cache
    n = dout.shape[0]
    dx_hat = dout * gamma
    dx = (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0)) / (n * np.sqrt(var + eps))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def reparameterize(mu, log_sigma, eps):
    return mu + torch.exp(log_sigma) * eps


def kl_loss(mu, log_sigma):
    sigma2 = torch.exp(2 * log_sigma)
    return 0.5 * torch.mean(mu ** 2 + sigma2 - torch.log(sigma2) - 1)  # bug: mean instead of sum
