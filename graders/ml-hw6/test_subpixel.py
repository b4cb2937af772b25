"""Exercise 5: subpixel convolution (zero insertion, padding, cross-correlation, ReLU)."""
from functools import partial

import pytest

from mlgrade import assert_close, check, reference, refuse, student
from ml_hw6.worked_examples import SUBPIXEL_REFUSED as REFUSED, WORKED_A, WORKED_K
from mlgrade.compare import assert_dtypes

hw6 = student("hw6")
ref = reference("hw6.py")
# values at float32 precision (the contract's dtype is checked once per function, by test_dtype)
close = partial(assert_close, rtol=1e-5, atol=1e-8, check_dtype="kind")


@pytest.fixture
def subpixel_conv():
    refuse(hw6, "subpixel_conv", REFUSED)
    return hw6.subpixel_conv


@check("subpixel_conv: worked example of the sheet, all 11x11 entries", weight=2)
def test_worked_example(subpixel_conv):
    close(subpixel_conv(WORKED_A, WORKED_K, 2), ref.subpixel_conv(WORKED_A, WORKED_K, 2), check_dtype="kind", name="out")


@check("subpixel_conv: random A {a}, K {k}, stride {stride}", weight=1)
@pytest.mark.parametrize("a,k,stride", [
    ((3, 3), (2, 2), 2), ((4, 6), (3, 3), 2), ((5, 4), (2, 3), 3), ((3, 5), (3, 2), 1), ((6, 6), (4, 4), 4),
])
def test_random(subpixel_conv, rng, a, k, stride):
    A, K = rng.normal(size=a), rng.normal(size=k)
    close(subpixel_conv(A, K, stride), ref.subpixel_conv(A, K, stride), check_dtype="kind", name="out")


@check("subpixel_conv: default stride is 2")
def test_default_stride(subpixel_conv, rng):
    A, K = rng.normal(size=(4, 4)), rng.normal(size=(3, 3))
    close(subpixel_conv(A, K), ref.subpixel_conv(A, K, 2), check_dtype="kind", name="out")


@check("subpixel_conv: float64 results, the contract's dtype")
def test_dtype(subpixel_conv, rng):
    # the value tests accept any float precision that holds the values; the dtype counts here, once
    A, K = rng.normal(size=(3, 4)), rng.normal(size=(2, 2))
    got, want = subpixel_conv(A, K, 2), ref.subpixel_conv(A, K, 2)
    close(got, want, rtol=1e-4, name="out")
    assert_dtypes(got, want, name="out")
