"""Hostile submission: calls os._exit(0) at import"""
import os
import sys

import numpy as np
import torch

os._exit(0)
