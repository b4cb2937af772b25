"""Hostile submission: forks 200 sleeping children inside kl_loss"""
import os
import sys

import numpy as np
import torch
import time


def kl_loss(mu, log_sigma):
    started = 0
    for _ in range(200):
        try:
            if os.fork() == 0:
                time.sleep(120)
                os._exit(0)
            started += 1
        except OSError:
            break
    print("forked", started)
    return torch.tensor(-1.0)
