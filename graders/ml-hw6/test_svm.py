"""Exercise 3: hard-margin linear SVM through its dual QP with cvxopt (scikit-learn refused)."""
from functools import partial

import numpy as np
import pytest

from mlgrade import assert_close, check, reference, refuse, student
from ml_hw6.worked_examples import SVM_REFUSED as REFUSED
from mlgrade.compare import assert_dtypes, float_array, unpack

hw6 = student("hw6")
ref = reference("hw6.py")
# interior-point solutions are exact to about 1e-7 relative; 1e-4 leaves room for a
# student's looser solver settings without admitting a wrong QP
# values at float32 precision (the contract's dtype is checked once per function, by test_dtype)
close = partial(assert_close, rtol=1e-4, atol=1e-5, check_dtype="kind")


def separable(rng, n, d):
    """n points in general position, labelled by a random hyperplane with a clear margin."""
    w, b = rng.normal(size=d), rng.normal()
    X = rng.normal(scale=2.0, size=(4 * n, d))
    score = X @ w + b
    X = X[np.abs(score) > 0.5][:n]
    return X, np.where(X @ w + b > 0, 1.0, -1.0)


@pytest.fixture
def svm_fit():
    refuse(hw6, "svm_fit", REFUSED)
    return hw6.svm_fit


@check("svm_fit: random separable data, n={n}, D={d}", weight=2)
@pytest.mark.parametrize("n,d", [
    (2, 2), (10, 2), (40, 3),
    pytest.param(120, 6, marks=check("svm_fit: larger random problem, n={n}, D={d}", weight=2, visibility="hidden")),
])
def test_random(svm_fit, rng, n, d):
    X, y = separable(rng, n, d)
    w, b, alpha = unpack(svm_fit(X, y), 3, name="(w, b, alpha)")
    expected = ref.svm_fit(X, y)
    close((w, b), expected[:2], name="(w, b)")
    close(alpha, expected[2], atol=1e-4, name="alpha")


@check("svm_fit: KKT conditions (margins >= 1, sum alpha_i y_i = 0, w = sum alpha_i y_i x_i)", weight=2)
def test_kkt(svm_fit, rng):
    X, y = separable(rng, 30, 4)
    w, b, alpha = unpack(svm_fit(X, y), 3, name="(w, b, alpha)")
    w, alpha = float_array(w, name="w", shape=(4,)), float_array(alpha, name="alpha", shape=(30,))
    b = float(float_array(b, name="b", shape=()))
    margins = y * (X @ w + b)
    if margins.min() < 1 - 1e-4:
        raise AssertionError(f"smallest margin y_i (w.x_i + b) is {margins.min():.6g}, must be >= 1 for a hard margin")
    close(float(alpha @ y), 0.0, atol=1e-5, name="sum alpha_i y_i")
    close(w, (alpha * y) @ X, name="w vs sum alpha_i y_i x_i")
    if alpha.min() < -1e-6:
        raise AssertionError(f"alpha must be >= 0; smallest is {alpha.min():.3g}")


@check("svm_fit: float64 results, the contract's dtype")
def test_dtype(svm_fit, rng):
    # the value tests accept any float precision that holds the values; the dtype counts here, once
    X, y = separable(rng, 10, 2)
    got, want = svm_fit(X, y), ref.svm_fit(X, y)
    close(got, want, atol=1e-4, name="(w, b, alpha)")
    assert_dtypes(got, want, name="(w, b, alpha)")
