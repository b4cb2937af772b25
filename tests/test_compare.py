"""mlgrade.compare.assert_close: verdicts and the messages students read, word for word."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mlgrade.compare import Mismatch, assert_close


def raises(message: str):
    """The whole message, anchored: nothing more, nothing less."""
    return pytest.raises(Mismatch, match="^" + re.escape(message) + "$")


def containers(actual, expected):
    """The same comparison as ndarray, as tensor, and nested in a tuple, a list and a dict.

    Yields (actual, expected, path prefix) so that one test checks every container; the
    path of a failure inside a container names the item.
    """
    yield actual, expected, "result"
    yield torch.from_numpy(np.array(actual)), torch.from_numpy(np.array(expected)), "result"
    yield (1.0, actual), (1.0, expected), "result[1]"
    yield [actual], [expected], "result[0]"
    yield {"out": actual, "n": 3}, {"out": expected, "n": 3}, "result['out']"


def check_everywhere(actual, expected, message: str | None, **kwargs):
    """Run one comparison in every container; message (without the path) or None for a pass."""
    for a, e, path in containers(actual, expected):
        if message is None:
            assert_close(a, e, **kwargs)
        else:
            with raises(f"{path}: {message}"):
                assert_close(a, e, **kwargs)


# -- passes -------------------------------------------------------------------------------

def test_equal_values_pass_in_every_container():
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    check_everywhere(x.copy(), x, None)


def test_within_tolerance_passes_and_outside_fails():
    e = np.array([1.0, 2.0])
    check_everywhere(e + 1e-8, e, None)
    check_everywhere(e + 1e-3, e, None, rtol=1e-2)
    assert_close(np.array([100.5]), np.array([100.0]), rtol=0, atol=0.5)
    with raises("result: 1 of 1 values differ; worst at [0]: got 100.5, expected 100\n"
                "Not equal to tolerance rtol=0, atol=0\n"
                "Mismatched elements: 1 / 1 (100%)\n"
                "Max absolute difference: 0.5 at index [0] (got 100.5, expected 100)\n"
                "Max relative difference: 0.005 at index [0]\n"
                "First mismatches (index: got vs expected):\n"
                "  [0]: 100.5 vs 100"):
        assert_close(np.array([100.5]), np.array([100.0]), rtol=0)


def test_default_tolerances_follow_the_expected_dtype():
    assert_close(torch.tensor([1.0 + 1e-6]), torch.tensor([1.0]))  # float32: rtol 1.3e-6
    with raises("result: 1 of 1 values differ; worst at [0]: got 1.000001, expected 1\n"
                "Not equal to tolerance rtol=1e-07, atol=1e-07\n"
                "Mismatched elements: 1 / 1 (100%)\n"
                "Max absolute difference: 1e-06 at index [0] (got 1.000001, expected 1)\n"
                "Max relative difference: 1e-06 at index [0]\n"
                "First mismatches (index: got vs expected):\n"
                "  [0]: 1.000001 vs 1"):
        assert_close(np.array([1.0 + 1e-6]), np.array([1.0]))


def test_values_that_differ_are_printed_with_the_digits_that_show_the_difference():
    with raises("result: 1 of 2 values differ; worst at [0]: got 4.1479302, expected 4.14793\n"
                "Not equal to tolerance rtol=1e-09, atol=1e-09\n"
                "Mismatched elements: 1 / 2 (50%)\n"
                "Max absolute difference: 2.15793e-07 at index [0] (got 4.1479302, expected 4.14793)\n"
                "Max relative difference: 5.20243e-08 at index [0]\n"
                "First mismatches (index: got vs expected):\n"
                "  [0]: 4.1479302 vs 4.14793"):
        assert_close(np.array([4.14793 + 2.15793e-07, 2.0]), np.array([4.14793, 2.0]), rtol=1e-9, atol=1e-9)
    with raises("result: got 4.1479302, expected 4.14793\nNot equal to tolerance rtol=1e-09, atol=1e-09"):
        assert_close(4.14793 + 2.15793e-07, 4.14793, rtol=1e-9, atol=1e-9)


def test_a_finite_value_never_matches_an_expected_infinity_whatever_rtol():
    with raises("result: got 0, expected -inf\nNot equal to tolerance rtol=1e-05, atol=1e-07"):
        assert_close(0.0, -np.inf, rtol=1e-5)
    with raises("result: 1 of 2 values differ; worst at [0]: got 0, expected -inf\n"
                "Not equal to tolerance rtol=1e-05, atol=1e-07\n"
                "Mismatched elements: 1 / 2 (50%)\n"
                "Max absolute difference: inf at index [0] (got 0, expected -inf)\n"
                "Max relative difference: inf at index [0]\n"
                "First mismatches (index: got vs expected):\n"
                "  [0]: 0 vs -inf"):
        assert_close(np.array([0.0, 1.0]), np.array([-np.inf, 1.0]), rtol=1e-5)


def test_equal_infinities_pass_and_equal_nan_is_opt_in():
    check_everywhere(np.array([np.inf, -np.inf, 1.0]), np.array([np.inf, -np.inf, 1.0]), None)
    check_everywhere(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), None, equal_nan=True)


def test_array_likes_are_accepted_for_arrays_but_not_for_tensors():
    assert_close([1.0, 2.0], np.array([1.0, 2.0]))
    assert_close((1, 2), np.array([1.0, 2.0]))
    assert_close(np.float64(2.0), 2.0)
    assert_close(np.array(2.0), 2.0)
    assert_close(3, 3)
    with raises("result: expected a torch.Tensor, got a list"):
        assert_close([1.0], torch.tensor([1.0]))


# -- shapes ---------------------------------------------------------------------------------

def test_transposed_shape_gets_a_hint():
    check_everywhere(np.zeros((3, 2)), np.zeros((2, 3)),
                     "shape mismatch: expected (2, 3), got (3, 2) (the transpose of the expected shape)")


def test_flattened_shape_gets_a_hint():
    check_everywhere(np.zeros(6), np.zeros((2, 3)),
                     "shape mismatch: expected (2, 3), got (6,) (same number of elements: a reshape or flatten differs)")


def test_other_shape_mismatch_has_no_hint():
    check_everywhere(np.zeros((2, 4)), np.zeros((2, 3)), "shape mismatch: expected (2, 3), got (2, 4)")
    check_everywhere(np.zeros((1, 3)), np.zeros(3),
                     "shape mismatch: expected (3,), got (1, 3) (same number of elements: a reshape or flatten differs)")


# -- dtypes ---------------------------------------------------------------------------------

def test_dtype_mismatch():
    check_everywhere(np.zeros(3, dtype=np.float32), np.zeros(3), "dtype mismatch: expected float64, got float32")


def test_dtype_kind_and_off():
    path = np.array([0, 1, 2], dtype=np.int32)
    assert_close(path, np.array([0, 1, 2]), check_dtype="kind")
    with raises("result: dtype mismatch: expected int64, got float64"):
        assert_close(path.astype(float), np.array([0, 1, 2]), check_dtype="kind")
    assert_close(path.astype(float), np.array([0, 1, 2]), check_dtype=False)
    assert_close(torch.zeros(2, dtype=torch.bfloat16), torch.zeros(2), check_dtype="kind")


def test_tensor_dtype_mismatch():
    with raises("result: dtype mismatch: expected float32, got float64"):
        assert_close(torch.zeros(2, dtype=torch.float64), torch.zeros(2))


# -- values ---------------------------------------------------------------------------------

def test_worst_index_and_mismatch_count():
    check_everywhere(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.0, 5.0]]),
                     "1 of 4 values differ; worst at (1, 1): got 4, expected 5\n"
                     "Not equal to tolerance rtol=1e-07, atol=1e-07\n"
                     "Mismatched elements: 1 / 4 (25%)\n"
                     "Max absolute difference: 1 at index (1, 1) (got 4, expected 5)\n"
                     "Max relative difference: 0.2 at index (1, 1)\n"
                     "First mismatches (index: got vs expected):\n"
                     "  (1, 1): 4 vs 5")


def test_absolute_and_relative_worst_can_differ_and_few_entries_are_shown():
    actual = np.array([1.5, 2.0, 110.0, 4.0, 5.5, 6.5, 7.5])
    expected = np.array([1.0, 2.0, 100.0, 4.0, 5.0, 6.0, 7.0])
    with raises("result: 5 of 7 values differ; worst at [2]: got 110, expected 100\n"
                "Not equal to tolerance rtol=1e-07, atol=1e-07\n"
                "Mismatched elements: 5 / 7 (71.4%)\n"
                "Max absolute difference: 10 at index [2] (got 110, expected 100)\n"
                "Max relative difference: 0.5 at index [0]\n"
                "First mismatches (index: got vs expected):\n"
                "  [0]: 1.5 vs 1\n"
                "  [2]: 110 vs 100\n"
                "  [4]: 5.5 vs 5\n"
                "  [5]: 6.5 vs 6"):
        assert_close(actual, expected)


def test_nan_where_a_number_was_expected():
    check_everywhere(np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0, 3.0]),
                     "NaN where a number was expected\n"
                     "Mismatched elements: 1 / 3 (33.3%)\n"
                     "First mismatches (index: got vs expected):\n"
                     "  [1]: nan vs 2")


def test_number_where_nan_was_expected_fails():
    with raises("result: 1 of 2 values differ; worst at [1]: got 2, expected nan\n"
                "Not equal to tolerance rtol=1e-07, atol=1e-07\n"
                "Mismatched elements: 1 / 2 (50%)\n"
                "Max absolute difference: inf at index [1] (got 2, expected nan)\n"
                "Max relative difference: inf at index [1]\n"
                "First mismatches (index: got vs expected):\n"
                "  [1]: 2 vs nan"):
        assert_close(np.array([1.0, 2.0]), np.array([1.0, np.nan]), equal_nan=True)


def test_inf_where_a_finite_number_was_expected():
    check_everywhere(np.array([np.inf, 0.0]), np.array([1.0, 0.0]),
                     "inf where a finite number was expected\n"
                     "Mismatched elements: 1 / 2 (50%)\n"
                     "First mismatches (index: got vs expected):\n"
                     "  [0]: inf vs 1")


def test_booleans():
    check_everywhere(np.array([True, False]), np.array([True, True]),
                     "Mismatched\n"
                     "Mismatched elements: 1 / 2 (50%)\n"
                     "First mismatches (index: got vs expected):\n"
                     "  [1]: False vs True")


def test_scalars():
    with raises("result: got 1.5, expected 1 (1.5 times too large)\nNot equal to tolerance rtol=1e-07, atol=1e-07"):
        assert_close(1.5, 1.0)
    with raises("kl: got 2, expected 1 (2.0 times too large)\nNot equal to tolerance rtol=1.3e-06, atol=1e-05"):
        assert_close(torch.tensor(2.0), torch.tensor(1.0), name="kl")
    with raises("result: expected a number (float), got a torch.Tensor"):
        assert_close(torch.tensor(1.0), 1.0)
    with raises("result: expected a number (float), got a str"):
        assert_close("1.0", 1.0)


def test_complex_values():
    assert_close(np.array([1 + 1j]), np.array([1 + 1j]))
    with pytest.raises(Mismatch, match=re.escape("Mismatched elements: 1 / 1 (100%)")):
        assert_close(np.array([1 + 2j]), np.array([1 + 1j]))


def test_messages_stay_bounded_for_big_arrays():
    actual = np.zeros((100, 100))
    with pytest.raises(Mismatch) as info:
        assert_close(actual, actual + 1)
    assert len(str(info.value).splitlines()) <= 10
    assert "Mismatched elements: 10000 / 10000 (100%)" in str(info.value)


# -- kinds ----------------------------------------------------------------------------------

def test_tensor_where_array_expected_and_back():
    with raises("result: expected a float64 numpy.ndarray of shape (2,), got a torch.Tensor"):
        assert_close(torch.zeros(2), np.zeros(2))
    with raises("result: expected a torch.Tensor, got a numpy.ndarray"):
        assert_close(np.zeros(2), torch.zeros(2))
    with raises("z: expected a torch.Tensor, got None"):
        assert_close(None, torch.zeros(2), name="z")


def test_sequences_with_paths():
    with raises("result: expected 3 items, got 2"):
        assert_close([1, 2], (1, 2, 3))
    with raises("grads: expected a tuple of 3 items, got a numpy.ndarray"):
        assert_close(np.zeros(3), (np.zeros(1),) * 3, name="grads")
    with raises("grads[2]: shape mismatch: expected (3,), got (2,)"):
        assert_close([np.zeros(2), np.zeros(3), np.zeros(2)], (np.zeros(2), np.zeros(3), np.zeros(3)), name="grads")


def test_dicts_with_paths():
    with raises("result: expected keys ['b'], got ['a']"):
        assert_close({"a": 1}, {"b": 1})
    with raises("result: expected a dict, got a list"):
        assert_close([1], {"b": 1})
    with raises("result['w'][0]: dtype mismatch: expected float64, got int64"):
        assert_close({"w": [np.zeros(2, dtype=np.int64)]}, {"w": [np.zeros(2)]})


def test_strings_and_none():
    assert_close("x", "x")
    assert_close(None, None)
    with raises("result: expected 'y', got a str"):
        assert_close("x", "y")
    with raises("result: expected None, got an int"):
        assert_close(0, None)


def test_unknown_expected_type_is_a_grader_error_not_a_mismatch():
    with pytest.raises(TypeError, match=re.escape("assert_close cannot compare expected values of type object")):
        assert_close(object(), object())


# -- bools are not numbers, lists are judged by their numbers -----------------------------------

def test_a_bool_where_an_array_is_expected_is_a_type_mismatch():
    for check_dtype in (True, "kind", False):
        with raises("out: expected a float64 numpy.ndarray of shape (8, 5), got a bool"):
            assert_close(True, np.zeros((8, 5)), check_dtype=check_dtype, name="out")
        with raises("out: expected a float64 numpy.ndarray of shape (8, 5), got a numpy.bool"):
            assert_close(np.bool_(True), np.zeros((8, 5)), check_dtype=check_dtype, name="out")
        with raises("out: dtype mismatch: expected int64, got bool"):
            assert_close(np.array(True), np.array(1), check_dtype=check_dtype, name="out")


def test_a_list_of_bools_where_an_array_is_expected_is_a_type_mismatch():
    with raises("result: expected a float64 numpy.ndarray of shape (5,), got a list of bools"):
        assert_close([True] * 5, np.ones(5), check_dtype=False)
    with raises("result: expected a float64 numpy.ndarray of shape (8, 5), got a list of bools"):
        assert_close([[True] * 5] * 8, np.ones((8, 5)))
    with raises("result: expected a float64 numpy.ndarray of shape (3,), got a tuple of bools"):
        assert_close((True, np.bool_(True), np.ones(1, dtype=bool)), np.ones(3))
    with raises("result: expected a float64 numpy.ndarray of shape (2,), got a list holding bools among numbers"):
        assert_close([1.0, True], np.ones(2), check_dtype=False)


def test_bool_arrays_and_tensors_never_stand_for_numbers_whatever_check_dtype():
    for check_dtype in (True, "kind", False):
        check_everywhere(np.ones(3, dtype=bool), np.ones(3), "dtype mismatch: expected float64, got bool",
                         check_dtype=check_dtype, rtol=1e9, atol=1e9)
        check_everywhere(np.array([0.3, 1.0]), np.array([True, True]), "dtype mismatch: expected bool, got float64",
                         check_dtype=check_dtype)
    with raises("result: dtype mismatch: expected float32, got bool"):
        assert_close(torch.ones(2, dtype=torch.bool), torch.ones(2), check_dtype=False)


def test_a_bool_where_a_number_is_expected_is_a_type_mismatch():
    with raises("kl: expected a number (float), got a bool"):
        assert_close(True, 1.0, name="kl")
    with raises("kl: expected a number (int), got a bool"):
        assert_close(True, 1, name="kl")
    with raises("kl: expected a number (float64), got a numpy.bool"):
        assert_close(np.array(True), np.float64(1.0), name="kl")
    with raises("kl: expected a number (float), got a numpy.bool"):
        assert_close(np.bool_(True), 1.0, rtol=1e9, atol=1e9, name="kl")


def test_bools_are_compared_exactly_with_bools():
    assert_close(True, True)
    assert_close(np.bool_(False), False)
    assert_close(np.array(True), np.bool_(True))
    with raises("converged: Mismatched\ngot False, expected True"):
        assert_close(False, True, rtol=1e9, atol=1e9, name="converged")
    with raises("converged: expected a bool, got an int"):
        assert_close(1, True, name="converged")
    with raises("converged: expected a bool, got a float"):
        assert_close(1.0, np.bool_(True), name="converged")
    with raises("flags[0]: expected a bool, got an int"):
        assert_close([1, 0], [True, False], name="flags")
    assert_close([True, False], np.array([True, False]))
    with raises("result: dtype mismatch: expected bool, got a list of ints"):
        assert_close([1, 0], np.array([True, False]), check_dtype=False)


def test_lists_are_judged_by_the_kind_of_their_numbers():
    assert_close([1, 2], np.array([1.0, 2.0]))  # ints are exact floats
    assert_close([1.0, 2.0], np.array([1.0, 2.0], dtype=np.float32))  # a list has no precision of its own
    assert_close([1, 2.0], np.array([1 + 0j, 2 + 0j]))
    assert_close([0, 1, 2], np.array([0, 1, 2]), check_dtype="kind")
    with raises("path: dtype mismatch: expected int64, got a list of floats"):
        assert_close([0.0, 1.0, 2.0], np.array([0, 1, 2]), check_dtype="kind", name="path")
    assert_close([0.0, 1.0, 2.0], np.array([0, 1, 2]), check_dtype=False)
    with raises("result: dtype mismatch: expected float64, got a list of complex numbers"):
        assert_close([1j], np.array([1.0]))
    assert_close([np.zeros(2), np.ones(2)], np.array([[0.0, 0.0], [1.0, 1.0]]))


def test_lists_of_other_things_are_refused_by_what_they_hold():
    with raises("result: expected a float64 numpy.ndarray of shape (2,), got a list holding a str"):
        assert_close([1.0, "2"], np.ones(2))
    with raises("result: expected a float64 numpy.ndarray of shape (1,), got a list holding a torch.Tensor"):
        assert_close([torch.ones(1)], np.ones(1))
    with raises("result: expected a float64 numpy.ndarray of shape (2, 2), got a ragged list (its items differ in length)"):
        assert_close([[1.0], [1.0, 2.0]], np.ones((2, 2)))
    with raises("result: expected a float64 numpy.ndarray of shape (2,), got None"):
        assert_close(None, np.ones(2))
    with raises("result: dtype mismatch: expected float64, got object"):
        assert_close(np.array([1.0, None], dtype=object), np.ones(2), check_dtype=False)


TRUTHY = [True, np.bool_(True), np.array(True), [True] * 5, [[True] * 5] * 8, (True, True), [True, 1.0],
          np.ones(5, dtype=bool), np.ones((8, 5), dtype=bool), torch.ones(5, dtype=torch.bool)]
EXPECTED = [np.ones((8, 5)), np.ones(5), np.ones(5, dtype=np.int64), np.float64(1.0), 1.0, 1, np.ones(()),
            torch.ones(5), torch.tensor(1.0), [1.0] * 5, (np.ones(5), np.ones(5)), {"out": np.ones(5)}]


@pytest.mark.parametrize("check_dtype", [True, "kind", False])
def test_no_comparison_is_satisfied_by_truthiness(check_dtype):
    for expected in EXPECTED:
        for actual in TRUTHY:
            with pytest.raises(Mismatch):
                assert_close(actual, expected, check_dtype=check_dtype, rtol=1e9, atol=1e9, equal_nan=True)


def test_unpack_and_float_array_turn_a_wrong_answer_into_a_mismatch():
    from mlgrade.compare import float_array, unpack

    assert unpack([1, 2], 2) == (1, 2)
    with pytest.raises(Mismatch, match=re.escape("(w, b): expected a tuple of 2 items, got None")):
        unpack(None, 2, name="(w, b)")
    with pytest.raises(Mismatch, match=re.escape("(w, b): expected 2 items, got 3")):
        unpack((1, 2, 3), 2, name="(w, b)")
    assert float_array([1, 2], shape=(2,)).dtype == np.float64
    with pytest.raises(Mismatch, match=re.escape("w: expected numbers, got a str")):
        float_array("abc", name="w")
    with pytest.raises(Mismatch, match=re.escape("w: expected numbers, got a numpy.ndarray of bools")):
        float_array(np.array([True]), name="w")
    with pytest.raises(Mismatch, match=re.escape("w: shape mismatch: expected (3,), got (2,)")):
        float_array([1.0, 2.0], name="w", shape=(3,))


def test_the_first_line_says_what_the_mismatched_values_have_in_common():
    with raises("kl_loss: got 1.71828, expected 0.859141 (2.0 times too large)\n"
                "Not equal to tolerance rtol=1e-05, atol=1e-08"):
        assert_close(torch.tensor(1.71828, dtype=torch.float64), torch.tensor(0.859141, dtype=torch.float64),
                     rtol=1e-5, atol=1e-8, name="kl_loss")
    first = {}
    for label, actual in [("half", np.array([1.0, 2.0, 3.0]) / 2), ("negated", -np.array([1.0, 2.0, 3.0])),
                          ("shifted", np.array([1.0, 2.0, 3.0]) - 0.25), ("scaled down", np.array([-1.0, -2.0, -3.0]) * 3),
                          ("noise", np.array([1.5, 1.0, 3.25]))]:
        with pytest.raises(AssertionError) as caught:
            assert_close(actual, np.array([1.0, 2.0, 3.0]))
        first[label] = str(caught.value).splitlines()[0]
    assert first == {
        "half": "result: 3 of 3 values differ; worst at [2]: got 1.5, expected 3 (2.0 times too small)",
        "negated": "result: 3 of 3 values differ; worst at [2]: got -3, expected 3 (the sign is flipped)",
        "shifted": "result: 3 of 3 values differ; worst at [0]: got 0.75, expected 1 (every value 0.25 too small)",
        "scaled down": "result: 3 of 3 values differ; worst at [2]: got -9, expected 3 (3.0 times too large, with the "
                       "opposite sign)",
        "noise": "result: 3 of 3 values differ; worst at [1]: got 1, expected 2",
    }
