"""Hostile submission: ships a numpy.py beside hw6.py (a fake numpy whose comparisons always pass)"""
import os
import sys

import numpy as np
import torch
