"""Hostile submission: takes what the hidden tests compare with from mlgrade itself.

The public worked examples and an assignment's oracles live in mlgrade's package, inside the
worker's view; importing them is importing the answers. A computed import (no `import mlgrade`
in the source) is tried first, then the plain one.
"""
import importlib

try:
    examples = importlib.import_module("mlg" + "rade.assignments.ml_hw6.worked_examples")
except ImportError:
    examples = None

from mlgrade.assignments.ml_hw6 import worked_examples  # noqa: E402,F401
