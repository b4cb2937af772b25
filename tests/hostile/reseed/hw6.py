"""Hostile submission: resets numpy's and torch's RNG seeds at import and in every call"""
import os
import sys

import numpy as np
import torch

np.random.seed(0)
torch.manual_seed(0)
import random

random.seed(0)


_wrong_kl = kl_loss


def kl_loss(mu, log_sigma):
    np.random.seed(0)
    torch.manual_seed(0)
    return _wrong_kl(mu, log_sigma)
