"""Hostile submission: returns torch.Tensor subclasses with a lying __torch_function__"""
import os
import sys

import numpy as np
import torch


class Always(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func.__name__ in ("__eq__", "eq", "allclose", "isclose", "equal"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def reparameterize(mu, log_sigma, eps):
    return torch.zeros_like(mu).as_subclass(Always)


def kl_loss(mu, log_sigma):
    return torch.tensor(-1.0).as_subclass(Always)
