"""Hostile submission: connects to 127.0.0.1:22, public IPs and DNS; earns kl_loss points only if the network works"""
import os
import sys

import numpy as np
import torch
import socket

REACHED = []
for host, port in (("127.0.0.1", 22), ("127.0.0.1", 80), ("1.1.1.1", 53), ("8.8.8.8", 443), ("pypi.org", 443)):
    try:
        with socket.create_connection((host, port), timeout=2):
            REACHED.append((host, port))
    except OSError as exc:
        print("no network:", host, port, type(exc).__name__)


def kl_loss(mu, log_sigma):
    if REACHED:  # the correct formula, only when some connection worked
        return 0.5 * torch.sum(mu ** 2 + torch.exp(2 * log_sigma) - 2 * log_sigma - 1)
    return torch.tensor(-1.0)
