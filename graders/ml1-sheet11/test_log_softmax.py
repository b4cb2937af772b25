"""Task 3: log_softmax(Y) -> (N, C) log class probabilities, normalised over the classes.

Compared with the reference, with scipy's logsumexp as an independent oracle, on scores of
magnitude 1e4 (exact, no overflow or -inf), and for the axis: each row depends on its own
scores only. A failing comparison says which usual mistake the values match.
"""
from functools import partial

import numpy as np
import pytest
from scipy.special import logsumexp

from mlgrade import assert_close, assert_unchanged, check, fetch, student
from mlgrade.notebook_state import reference_notebook

sheet11 = student("sheet11")
ref = reference_notebook("sheet11.ipynb")
close = partial(assert_close, rtol=1e-9, atol=1e-9, check_dtype="kind")
AXIS_HINT = ("normalise each example over its classes: logsumexp over axis 1 (the last axis, "
             "keepdims=True), not over the examples (axis 0)")
# values a wrong log_softmax is often equal to, and what to tell its author
MISTAKES = [
    (lambda Y: Y / logsumexp(Y, axis=0, keepdims=True),
     "it equals Y / logsumexp(Y, axis=0): log(exp(y) / s) is y - log(s), a difference, not a division; "
     "and " + AXIS_HINT),
    (lambda Y: Y - logsumexp(Y, axis=0, keepdims=True), "it equals Y - logsumexp(Y, axis=0): " + AXIS_HINT),
    (lambda Y: Y / logsumexp(Y, axis=1, keepdims=True),
     "it equals Y / logsumexp(Y, axis=1): log(exp(y) / s) is y - log(s), a difference, not a division"),
    (lambda Y: np.exp(Y - logsumexp(Y, axis=1, keepdims=True)),
     "it equals softmax(Y), the probabilities: return their logarithm"),
    (lambda Y: Y - logsumexp(Y), "it equals Y - logsumexp(Y) over all entries at once: " + AXIS_HINT),
]


def scores(rng, n, c, scale=3.0):
    return rng.normal(0, scale, size=(n, c))


def judge(got, expected, Y, name="log_softmax(Y)"):
    """``close``, and on a mismatch the mistake the values match, if one does."""
    try:
        close(got, expected, name=name)
    except AssertionError as exc:
        hints = [why for wrong, why in MISTAKES if _matches(got, wrong(Y))]
        raise AssertionError(f"{exc}\n{hints[0]}" if hints else str(exc)) from None


def _matches(got, value) -> bool:
    try:
        got = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return False
    with np.errstate(all="ignore"):
        return got.shape == value.shape and bool(np.allclose(got, value, rtol=1e-7, atol=1e-9))


@check("log_softmax: same as the reference and scipy's logsumexp, N={n}, C={c}", weight=1)
@pytest.mark.parametrize("n,c", [(5, 3), (100, 10), (1, 10)])
def test_values(rng, n, c):
    Y = scores(rng, n, c)
    got = sheet11.log_softmax(Y)
    judge(got, ref.log_softmax(Y), Y)
    judge(got, Y - logsumexp(Y, axis=1, keepdims=True), Y)


@check("log_softmax: exact and finite for scores of magnitude 1e4 (log-sum-exp)", weight=2)
def test_large_scores(rng):
    Y = scores(rng, 20, 10, scale=1.0) * 1e4
    Y[0] = [1e4, -1e4, 0, 5e3, -5e3, 1e4 - 1, 1e4 - 2, 0, 0, -1e4]
    got = sheet11.log_softmax(Y)
    values = np.asarray(got, dtype=float) if np.shape(got) == Y.shape else None
    if values is not None and not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise AssertionError(f"log_softmax(Y) has {bad} entries that are inf or NaN for scores of magnitude 1e4 "
                             "although every true value is finite (about -2e4 at the least): exp(1e4) overflows; "
                             "subtract each row's maximum before exp (log-sum-exp)")
    judge(got, Y - logsumexp(Y, axis=1, keepdims=True), Y)


@check("log_softmax: the rows exponentiate to probabilities that sum to 1, each row its scores shifted", weight=1)
def test_rows_sum_to_one(rng):
    Y = scores(rng, 40, 10)
    got = np.asarray(sheet11.log_softmax(Y), dtype=float)
    if got.shape != Y.shape:
        raise AssertionError(f"log_softmax(Y) has shape {got.shape}, expected {Y.shape} (one row per example)")
    sums = np.exp(got).sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1)))
    if not np.allclose(sums, 1, rtol=0, atol=1e-9):
        raise AssertionError(f"exp(log_softmax(Y)) must sum to 1 over each row's classes; row {worst} sums to "
                             f"{sums[worst]:.6g} (columns sum to {np.exp(got).sum(axis=0)[:3].round(4).tolist()}...)\n"
                             + next((why for wrong, why in MISTAKES if _matches(got, wrong(Y))), AXIS_HINT))
    # a constant row of -log C sums to 1 too: the log-probabilities also differ from the scores by one
    # number per row (log softmax(y) = y - log sum exp(y)), which a constant cannot
    shift = got - Y
    row = int(np.argmax(np.ptp(shift, axis=1)))
    if not np.allclose(shift, shift[:, :1], rtol=0, atol=1e-9 * (1 + np.abs(Y).max())):
        raise AssertionError(f"log_softmax(Y)[{row}] - Y[{row}] is not one number across the classes (it ranges over "
                             f"{np.ptp(shift[row]):.6g}): log softmax(y) = y - log(sum(exp(y))) shifts a row as a whole")


@check("log_softmax: the class axis is the last (a row depends on its own scores only)", weight=1)
def test_class_axis(rng):
    Y = scores(rng, 30, 10)
    whole = sheet11.log_softmax(Y)
    first = sheet11.log_softmax(Y[:5])
    try:
        close(np.asarray(whole)[:5] if np.ndim(whole) == 2 else whole, first, name="log_softmax(Y)[:5]")
    except AssertionError:
        raise AssertionError("log_softmax(Y)[:5] differs from log_softmax(Y[:5]): the log-probabilities of an "
                             "example changed when other examples were added, so the normalisation runs over "
                             "the examples; " + AXIS_HINT) from None
    judge(first, Y[:5] - logsumexp(Y[:5], axis=1, keepdims=True), Y[:5], name="log_softmax(Y[:5])")


@check("log_softmax: correct, and leaves Y unchanged", weight=1)
def test_inputs(rng):
    Y = scores(rng, 12, 4)
    result = sheet11.log_softmax.remote(Y)
    judge(fetch(result), Y - logsumexp(Y, axis=1, keepdims=True), Y)
    assert_unchanged(result, "log_softmax", ["Y"])
