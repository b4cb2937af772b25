"""Hostile submission: ships conftest.py and pytest.ini beside hw6.py (hooks that mark every test passed)"""
import os
import sys

import numpy as np
import torch
