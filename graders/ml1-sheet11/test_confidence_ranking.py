"""Task 4: confidence_ranking(Y, k=24) -> (highest, lowest) indices, judged on probabilities.

The probability of a point's predicted class is max_c softmax(Y)_c. ``highest`` lists the k
points where it is largest, most confident first; ``lowest`` the k where it is smallest,
least confident first; equal probabilities go to the lower index first. Orders are compared
through the probabilities of the listed points, so that a different but equally valid order
of nearly equal values is not punished; exact ties are graded in a test of their own.
"""
import numpy as np
import pytest
from scipy.special import logsumexp

from mlgrade import assert_close, assert_unchanged, check, fetch, student
from ml1_sheet11.oracles import confidence, indices
from mlgrade.compare import unpack

sheet11 = student("sheet11")


def expected_ranking(Y, k):
    c = confidence(Y)
    return np.argsort(-c, kind="stable")[:k], np.argsort(c, kind="stable")[:k]


def scores(rng, n, c=10):
    """Scores whose raw maximum and probability orders differ: a few rows with two close leaders."""
    Y = rng.normal(0, 3, size=(n, c))
    rows = rng.choice(n, size=n // 4, replace=False)
    Y[rows, 0] = Y[rows].max(axis=1) + 5.0      # a large winner ...
    Y[rows, 1] = Y[rows, 0] - 0.01              # ... with a close second: probability about 1/2
    return Y


def judge(got, Y, k):
    """The probabilities of the listed points equal those of the right lists, in order."""
    got = unpack(got, 2, name="confidence_ranking(Y), the two lists (highest, lowest)")
    c = confidence(Y)
    for name, listed, right, order in zip(("highest", "lowest"), got, expected_ranking(Y, k),
                                          ("most confident first", "least confident first")):
        listed = indices(listed, name, k, len(Y))
        try:
            assert_close(np.exp(c[listed]), np.exp(c[right]), rtol=1e-9, atol=1e-12,
                         name=f"probability of the predicted class of each point in {name} ({order})")
        except AssertionError as exc:
            hint = _hint(Y, listed, name, k)
            raise AssertionError(f"{exc}\n{hint}" if hint else str(exc)) from None


def _hint(Y, listed, name, k):
    raw = Y.max(axis=1)
    by_raw = np.argsort(-raw, kind="stable")[:k] if name == "highest" else np.argsort(raw, kind="stable")[:k]
    if np.array_equal(listed, by_raw):
        return ("these are the points with the highest/lowest raw score; rank by the probability of the "
                "predicted class (softmax), which also depends on the other classes' scores")
    c = confidence(Y)
    flipped = np.argsort(c, kind="stable")[:k] if name == "highest" else np.argsort(-c, kind="stable")[:k]
    if np.array_equal(listed, flipped):
        return f"this is the other list: {name} must list the {'most' if name == 'highest' else 'least'} confident"
    try:
        own = sheet11.log_softmax(Y)
        wrong = np.shape(own) != Y.shape or not np.allclose(own, Y - logsumexp(Y, axis=1, keepdims=True),
                                                           rtol=1e-7, atol=1e-9)
    except AssertionError:
        wrong = False
    if wrong:
        return ("your log_softmax(Y) does not give the log-probabilities (its own tests say why): "
                "if confidence_ranking uses it, fix log_softmax first")
    return None


@check("confidence_ranking: 24 most and least confident of N={n} (by probability, not raw score)", weight=2)
@pytest.mark.parametrize("n", [100, 1000])
def test_ranking(rng, n):
    Y = scores(rng, n)
    judge(sheet11.confidence_ranking(Y), Y, 24)


@check("confidence_ranking: k=5 as an argument", weight=1)
def test_k(rng):
    Y = scores(rng, 60)
    judge(sheet11.confidence_ranking(Y, k=5), Y, 5)


@check("confidence_ranking: scores of magnitude 1e4", weight=1)
def test_large_scores(rng):
    Y = scores(rng, 80) * 3e3
    judge(sheet11.confidence_ranking(Y, 10), Y, 10)


@check("confidence_ranking: equal probabilities go to the lower index first", weight=1)
def test_ties(rng):
    # rows 0..19 are four copies of five rows (the same probabilities exactly), then 20 others
    Y = np.concatenate([np.tile(rng.normal(0, 2, size=(5, 10)), (4, 1)), rng.normal(0, 2, size=(20, 10))])
    highest, lowest = expected_ranking(Y, 12)
    got = sheet11.confidence_ranking(Y, 12)
    judge(got, Y, 12)
    for name, listed, right in zip(("highest", "lowest"), got, (highest, lowest)):
        if not np.array_equal(np.asarray(listed), right):
            raise AssertionError(f"{name} = {np.asarray(listed).tolist()}, expected {right.tolist()}: among points "
                                 "of equal probability the lower index comes first (a stable sort: "
                                 "numpy.argsort(..., kind='stable'), on -confidence for the highest)")


@check("confidence_ranking: correct, and leaves Y unchanged", weight=1)
def test_inputs(rng):
    Y = scores(rng, 50)
    result = sheet11.confidence_ranking.remote(Y, 6)
    judge(fetch(result), Y, 6)
    assert_unchanged(result, "confidence_ranking", ["Y"])
