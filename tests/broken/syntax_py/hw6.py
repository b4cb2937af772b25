"""Broken submission: a syntax error on line 3."""
import numpy as np
def batchnorm_forward(x, gamma, beta, eps=1e-5)
    return x
