"""Task 1: backprop(X1, X2, T) -> (DW, DB, DV), reading the notebook globals W, B, V.

The grader sets W, B and V in the submission's module before each call, as the notebook's
random cell would have, and compares with the reference (given the same globals) and with
central finite differences of E = mean_k max(0, -y_k t_k). The derivative of max(0, u) at
u == 0 is 0 (the notebook says so), for the hidden units and for the loss.
"""
from functools import partial

import numpy as np
import pytest

from mlgrade import assert_close, assert_unchanged, check, fetch, student
from ml1_sheet11.oracles import finite_differences
from mlgrade.compare import float_array, unpack
from mlgrade.notebook_state import reference_notebook, set_globals

sheet11 = student("sheet11")
close = partial(assert_close, rtol=1e-7, atol=1e-10)
NAMES = ("DW", "DB", "DV")
MSG_SCALED = "{name} is {factor:g} times the expected gradient: {why}"
WHY = {-1.0: "the sign is flipped (the gradient of E, not of -E: gradient descent subtracts it)"}


def network(rng, n, nh):
    """Points, labels and weights as the notebook draws them."""
    X1, X2 = rng.normal(size=n), rng.normal(size=n)
    T = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    W = rng.normal(0, 1 / 2 ** 0.5, (2, nh))
    B = rng.normal(0, 1, nh)
    V = rng.normal(0, 1 / nh ** 0.5, nh)
    return X1, X2, T, W, B, V


def reference_backprop(X1, X2, T, W, B, V):
    ref = reference_notebook("sheet11.ipynb", memo=False)
    ref.W, ref.B, ref.V = W.copy(), B.copy(), V.copy()
    return ref.backprop(X1, X2, T)


def student_backprop(X1, X2, T, W, B, V):
    set_globals(sheet11, W=W, B=B, V=V)
    return sheet11.backprop(X1, X2, T)


def compare(got, expected, N):
    """Item by item, saying when an item is a constant multiple of the expected one (N: a sum)."""
    got = unpack(got, 3, name="backprop(X1, X2, T), the three gradients (DW, DB, DV)")
    for name, g, e in zip(NAMES, got, expected):
        try:
            close(g, e, name=name, check_dtype="kind")
        except AssertionError as exc:
            raise AssertionError(_diagnose(name, g, e, N) or str(exc)) from None


def _diagnose(name, got, expected, N):
    try:
        got, expected = float_array(got, name=name), np.asarray(expected, dtype=float)
    except AssertionError:
        return None
    if got.shape != expected.shape:
        if got.shape == expected.shape[::-1] and got.ndim == 2:
            return (f"{name} has shape {got.shape}, the transpose of the expected {expected.shape}: "
                    f"{name} must have the shape of {name[1:]} ({name[1:]}[i, j] -> {name}[i, j])")
        return None
    scale = float(np.dot(got.ravel(), expected.ravel()) / max(np.dot(expected.ravel(), expected.ravel()), 1e-300))
    if not np.allclose(got, scale * expected, rtol=1e-6, atol=1e-12) or np.isclose(scale, 1):
        return None
    for factor, why in [(N, f"a sum over the N={N} points; E is their mean (divide by N)"),
                        (-N, f"a sum over the N={N} points with the sign flipped"), *WHY.items()]:
        if np.isclose(scale, factor, rtol=1e-6):
            return MSG_SCALED.format(name=name, factor=factor, why=why)
    return MSG_SCALED.format(name=name, factor=scale, why="E is the mean over the points of max(0, -y t)")


@check("backprop: same gradients as the reference, seeded draw {draw}, N=200, NH=50", weight=1)
@pytest.mark.parametrize("draw", [0, 1, 2])
def test_reference(rng, draw):
    X1, X2, T, W, B, V = network(rng, 200, 50)
    compare(student_backprop(X1, X2, T, W, B, V), reference_backprop(X1, X2, T, W, B, V), 200)


@check("backprop: the width is the globals' (NH={nh}), N={n}", weight=1)
@pytest.mark.parametrize("n,nh", [(30, 7), (1, 50)])
def test_other_width(rng, n, nh):
    X1, X2, T, W, B, V = network(rng, n, nh)
    compare(student_backprop(X1, X2, T, W, B, V), reference_backprop(X1, X2, T, W, B, V), n)


@check("backprop: central finite differences of E (the mean over the points), N=20, NH={nh}", weight=2)
@pytest.mark.parametrize("nh", [50, 5])
def test_finite_differences(rng, nh):
    X1, X2, T, W, B, V = network(rng, 20, nh)
    got = student_backprop(X1, X2, T, W, B, V)
    compare(got, finite_differences(X1, X2, T, W, B, V), 20)


def kinked_network():
    """Dyadic values (every sum and product exact): a hidden unit at z == 0 where the gradient flows.

    Point 0 (t=+1) is misclassified (y = -0.25) and has z == 0 exactly at unit 2, whose v is
    not 0: with the derivative 1 at z == 0, unit 2's weights would get a gradient from it.
    """
    X1 = np.array([1.0, 0.5])
    X2 = np.array([0.5, -1.0])
    T = np.array([1.0, 1.0])
    W = np.array([[0.5, 0.5, 0.5, -1.0], [-0.5, -0.5, -1.0, 0.25]])
    B = np.array([0.25, 0.25, 0.0, 0.5])   # z for point 0: [0.5, 0.5, 0.0, -0.375]
    V = np.array([-0.75, 0.25, 0.5, 0.0])  # y for point 0: -0.25; for point 1: z = [1, 1, 1.5, -0.25]
    return X1, X2, T, W, B, V


def kink_case(which):
    X1, X2, T, W, B, V = kinked_network()
    if which == "y":
        # unit 3 active at point 0 only (z = 1.5, -0.5): point 0 has y = -0.375 < 0 (misclassified)
        # and point 1 has y = -0.5 * 1 + 0.5 * 1 = 0 exactly, while its units 0, 1, 2 are active
        W[:, 3], B[3] = [1.0, 1.0], 0.0
        V = np.array([-0.5, 0.5, 0.0, -0.25])
    return X1, X2, T, W, B, V


@check("backprop: derivative 0 of max(0, z) at z == 0 exactly (the notebook's convention)", weight=1)
def test_kink_hidden():
    X1, X2, T, W, B, V = kink_case("z")
    compare(student_backprop(X1, X2, T, W, B, V), reference_backprop(X1, X2, T, W, B, V), 2)


@check("backprop: derivative 0 of max(0, -y t) at -y t == 0 exactly (the notebook's convention)", weight=1)
def test_kink_loss():
    X1, X2, T, W, B, V = kink_case("y")
    compare(student_backprop(X1, X2, T, W, B, V), reference_backprop(X1, X2, T, W, B, V), 2)


@check("backprop: correct, and leaves X1, X2 and T unchanged", weight=1)
def test_inputs(rng):
    X1, X2, T, W, B, V = network(rng, 50, 50)
    set_globals(sheet11, W=W, B=B, V=V)
    result = sheet11.backprop.remote(X1, X2, T)
    compare(fetch(result), reference_backprop(X1, X2, T, W, B, V), 50)
    assert_unchanged(result, "backprop", ["X1", "X2", "T"])
