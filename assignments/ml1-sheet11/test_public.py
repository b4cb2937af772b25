"""Public checks of ml1-sheet11, shipped to students (`mlgrade check ml1-sheet11`).

No reference solution here: backprop is checked against finite differences of E and by
training the moons network with it, log_softmax and confidence_ranking against small worked
examples and scipy's logsumexp, accuracy with a classifier of fixed scores built in the
sandbox. The sheet's pictures (the moons decision function as your backprop trains it, the most
and least confident digits by your confidence_ranking) are on the self-check page:
`mlgrade check ml1-sheet11 --page`. These checks run the same in `mlgrade check` and in grading.
"""
from functools import partial

import numpy as np
from scipy.special import logsumexp

from mlgrade import assert_close, check, student
from ml1_sheet11.oracles import confidence, error, finite_differences, forward, indices
from mlgrade.compare import float_array, unpack
from mlgrade.notebook_state import linear_classifier, set_globals

sheet11 = student("sheet11")
close = partial(assert_close, rtol=1e-7, atol=1e-10, check_dtype="kind")
MOONS_STEPS = 100


@check("backprop: central finite differences of E on a small network (public)")
def test_backprop_finite_differences(rng):
    X1, X2, T = rng.normal(size=10), rng.normal(size=10), np.where(rng.random(10) < 0.5, -1.0, 1.0)
    W, B, V = rng.normal(size=(2, 4)), rng.normal(size=4), rng.normal(size=4)
    set_globals(sheet11, W=W, B=B, V=V)
    got = sheet11.backprop(X1, X2, T)
    close(got, finite_differences(X1, X2, T, W, B, V), name="(DW, DB, DV)")


@check("backprop: gradient descent with it trains the moons network, with E's gradients all along (public)")
def test_backprop_trains_moons():
    import utils

    X1, X2, T = utils.twomoons()
    rng = np.random.default_rng(0)
    W, B, V = rng.normal(0, 1 / 2 ** 0.5, (2, 50)), rng.normal(0, 1, 50), rng.normal(0, 1 / 50 ** 0.5, 50)
    start = error(X1, X2, T, W, B, V)
    for _ in range(MOONS_STEPS + 1):
        set_globals(sheet11, W=W, B=B, V=V)
        DW, DB, DV = unpack(sheet11.backprop(X1, X2, T), 3, name="backprop(X1, X2, T)")
        last = (W, B, V), (DW, DB, DV)
        W, B, V = (p - 0.1 * float_array(d, name=name, shape=p.shape)
                   for p, d, name in ((W, DW, "DW"), (B, DB, "DB"), (V, DV, "DV")))
    end = error(X1, X2, T, W, B, V)
    if not end < 0.5 * start:
        raise AssertionError(f"{MOONS_STEPS} steps of gradient descent with your gradients (learning rate 0.1) took "
                             f"E from {start:.4f} to {end:.4f}: it should at least halve")
    # descending is not enough (gradients summed instead of averaged descend too): the last step's
    # gradients are E's, by finite differences at the point the training reached
    close(last[1], finite_differences(X1, X2, T, *last[0]), rtol=1e-5, atol=1e-8,
          name=f"(DW, DB, DV) after {MOONS_STEPS} steps of training")


@check("log_softmax: worked example with scores of magnitude 1e4 (public)")
def test_log_softmax_example():
    Y = np.array([[0.0, 0.0], [1e4, 0.0], [-1e4, 1e4]])
    expected = np.array([[-np.log(2), -np.log(2)], [0.0, -1e4], [-2e4, 0.0]])
    close(sheet11.log_softmax(Y), expected, name="log_softmax(Y)")


@check("log_softmax: same as scipy's logsumexp over the classes (public)")
def test_log_softmax_scipy(rng):
    Y = rng.normal(0, 3, size=(8, 5))
    close(sheet11.log_softmax(Y), Y - logsumexp(Y, axis=1, keepdims=True), name="log_softmax(Y)")


@check("confidence_ranking: worked example where raw scores and probabilities disagree (public)")
def test_confidence_ranking_example():
    # row 0 has the largest score but two equal leaders (p = 1/2); row 1 is nearly certain
    Y = np.array([[10.0, 10.0, 0.0], [3.0, -5.0, -5.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    got = sheet11.confidence_ranking(Y, k=2)
    close(got, (np.array([1, 2]), np.array([3, 0])), name="(highest, lowest)")


@check("confidence_ranking: the 24 most and least confident of 200 rows of scores (public)")
def test_confidence_ranking_digits(rng):
    Y = rng.normal(0, 3, size=(200, 10))
    highest, lowest = unpack(sheet11.confidence_ranking(Y), 2, name="confidence_ranking(Y)")
    highest, lowest = indices(highest, "highest", 24, len(Y)), indices(lowest, "lowest", 24, len(Y))
    c = confidence(Y)
    close(np.exp(c[highest]), np.exp(np.sort(c)[::-1][:24]),
          name="probability of the predicted class, highest (most confident first)")
    close(np.exp(c[lowest]), np.exp(np.sort(c)[:24]),
          name="probability of the predicted class, lowest (least confident first)")


@check("accuracy: a classifier of fixed scores, only the first n count (public)")
def test_accuracy_first_n():
    M = np.eye(784, 10)  # the score of class c is pixel c
    X = np.zeros((6, 1, 28, 28))
    for i, c in enumerate([3, 1, 4, 1, 5, 9]):
        X[i, 0, 0, c] = 1.0
    T = np.array([3, 1, 0, 0, 5, 9])
    close(sheet11.accuracy(linear_classifier(M), X, T, n=4), 0.5, name="accuracy(clf, X, T, n=4)", check_dtype=False)
