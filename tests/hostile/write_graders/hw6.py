"""Hostile submission: writes into the graders and reference folders and the mlgrade package"""
import os
import sys

import numpy as np
import torch

mlgrade = sys.modules["mlgrade"]  # no `import mlgrade`: submissions importing it are refused at load

ROOT = os.path.dirname(os.path.dirname(mlgrade.__file__))
PWN = "def test_pwned():\n    pass\n"
for path in (f"{ROOT}/graders/ml-hw6/test_zz_pwned.py", f"{ROOT}/graders/ml-hw6/conftest.py",
             "/work/main/graders/ml-hw6/test_zz_pwned.py", f"{ROOT}/reference/ml-hw6/hw6.py",
             f"{ROOT}/mlgrade/compare.py", f"{ROOT}/mlgrade/zz_pwned.py", "/autograder/source/graders/test_zz.py"):
    try:
        with open(path, "a") as fh:
            fh.write(PWN)
        print("WROTE", path)
    except OSError as exc:
        print("denied:", path, type(exc).__name__)
