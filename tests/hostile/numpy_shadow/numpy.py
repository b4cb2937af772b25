"""A fake numpy shipped beside hw6.py: if anything imported it, every comparison would pass."""
import os

try:
    open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "NUMPY_SHADOW_WAS_IMPORTED"), "w").close()
except OSError:
    pass
print("FAKE NUMPY IMPORTED")


def allclose(*args, **kwargs):
    return True


def zeros_like(x):
    return x
