"""Hostile submission: calls sys.exit(0) at import"""
import os
import sys

import numpy as np
import torch

sys.exit(0)
