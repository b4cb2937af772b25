"""Hostile submission: calls os._exit(0) inside kl_loss"""
import os
import sys

import numpy as np
import torch


def kl_loss(mu, log_sigma):
    os._exit(0)
