"""Hostile submission: loops forever at import"""
import os
import sys

import numpy as np
import torch

while True:
    pass
