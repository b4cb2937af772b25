"""Hostile submission: allocates 8 GB (touching every page) inside kl_loss"""
import os
import sys

import numpy as np
import torch


def kl_loss(mu, log_sigma):
    hoard = []
    for _ in range(80):
        hoard.append(np.ones(100 << 17))  # 100 MB each, 8 GB in all
    return torch.tensor(float(len(hoard)))
