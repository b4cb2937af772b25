"""Hostile submission: prints 100 MB inside kl_loss and 10 MB at import"""
import os
import sys

import numpy as np
import torch

print('x' * (10 << 20))


def kl_loss(mu, log_sigma):
    for _ in range(100):
        print("y" * (1 << 20))
    return torch.tensor(-1.0)
