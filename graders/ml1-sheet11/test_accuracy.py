"""Task 2: accuracy(clf, X, T, n=2500) -> float, the fraction of the first n points classified right.

The classifier is the grader's, built in the worker (predict(X) = X flattened @ M, fixed
scores): no object of the submission is made or sent back. Labels are chosen so that the
first n points and the others have different accuracies.
"""
import numpy as np
import pytest

from mlgrade import assert_close, assert_unchanged, check, student
from mlgrade.compare import Mismatch, float_array
from mlgrade.notebook_state import linear_classifier

sheet11 = student("sheet11")


def close(got, right: int, n: int, name: str) -> None:
    """``got`` is the fraction right/n: nearer to it than half a point out of n (computed in float32 too)."""
    assert_close(got, right / n, rtol=0, atol=0.5 / n, check_dtype=False, name=f"{name} (= {right}/{n})")


def problem(rng, N, right_first, right_rest, n):
    """Images (N, 1, 28, 28), weights M (784, 10) and labels: ``right_first`` of the first n right."""
    X = rng.random((N, 1, 28, 28)).astype(np.float32)
    M = rng.normal(size=(784, 10))
    predicted = (X.reshape(N, -1).astype(np.float64) @ M).argmax(axis=1)
    T = (predicted + 1 + rng.integers(0, 9, size=N)) % 10   # every label wrong ...
    first, rest = min(n, N), max(N - n, 0)
    right = np.concatenate([rng.choice(first, right_first, replace=False),
                            first + rng.choice(rest, right_rest, replace=False)]).astype(int)
    T[right] = predicted[right]                              # ... but these
    return X, M, T.astype(np.int64)


def fraction(value, name="accuracy"):
    """The answer as a float, or Mismatch: a number (a 0-d array too), never a bool or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number, np.ndarray)) or np.ndim(value) != 0:
        raise Mismatch(f"{name} must be a number (a fraction between 0 and 1), got {type(value).__name__}")
    return float(float_array(value, name=name))


@check("accuracy: only the first n points count (N=300, n=100)", weight=2)
def test_first_n(rng):
    X, M, T = problem(rng, 300, 37, 150, 100)
    got = fraction(sheet11.accuracy(linear_classifier(M), X, T, 100))
    if np.isclose(got, 187 / 300):
        raise AssertionError(f"accuracy(clf, X, T, n=100) = {got:.4f}, the accuracy over all 300 points; "
                             "only the first n = 100 count: 0.3700")
    if np.isclose(got, 37):
        raise AssertionError("accuracy returned the number of points classified right (37); "
                             "return the fraction (37 / 100)")
    close(got, 37, 100, name="accuracy(clf, X, T, n=100)")


@check("accuracy: n=2500 by default (N=3000)", weight=1)
def test_default_n(rng):
    X, M, T = problem(rng, 3000, 1000, 450, 2500)
    close(fraction(sheet11.accuracy(linear_classifier(M), X, T)), 1000, 2500, name="accuracy(clf, X, T)")


@check("accuracy: fewer than n points (N=40): all of them count", weight=1)
def test_fewer_than_n(rng):
    X, M, T = problem(rng, 40, 10, 0, 2500)
    close(fraction(sheet11.accuracy(linear_classifier(M), X, T)), 10, 40, name="accuracy(clf, X, T)")


@check("accuracy: {right} of the first n=20 right (N=50)", weight=1)
@pytest.mark.parametrize("right", [20, 3])
def test_extremes(rng, right):
    X, M, T = problem(rng, 50, right, 15, 20)
    close(fraction(sheet11.accuracy(linear_classifier(M), X, T, n=20)), right, 20, name="accuracy(clf, X, T, n=20)")


@check("accuracy: correct, and leaves X and T unchanged", weight=1)
def test_inputs(rng):
    X, M, T = problem(rng, 60, 12, 20, 30)
    result = sheet11.accuracy.call(linear_classifier(M), X, T, 30)
    close(fraction(result.value), 12, 30, name="accuracy(clf, X, T, n=30)")
    assert_unchanged(result, "accuracy", ["clf", "X", "T"])
