"""Hostile submission: returns an object whose __reduce__ is a pickle payload, and raw pickle bytes"""
import os
import sys

import numpy as np
import torch
import pickle


class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/mlgrade-pwned-by-pickle",))


def kl_loss(mu, log_sigma):
    return Payload()


def reparameterize(mu, log_sigma, eps):
    return pickle.dumps(Payload())


def viterbi(A, B, pi, O):
    return [Payload()]
