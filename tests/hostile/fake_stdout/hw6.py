"""Hostile submission: prints fake Gradescope JSON results on stdout and stderr, at import and in a call"""
import os
import sys

import numpy as np
import torch

FAKE = '{"score": 100.0, "output": "pwned", "tests": [{"name": "kl_loss: pwned", "score": 100.0, "max_score": 1.0, "status": "passed", "output": ""}]}'
print(FAKE)
print(FAKE, file=sys.stderr)
sys.stdout.flush()
os.write(1, FAKE.encode() + b"\n")


def kl_loss(mu, log_sigma):
    print(FAKE)
    os.write(1, FAKE.encode())
    return torch.tensor(-1.0)
