"""Hostile submission: loops forever inside viterbi"""
import os
import sys

import numpy as np
import torch


def viterbi(A, B, pi, O):
    while True:
        pass
