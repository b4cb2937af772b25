"""Verdicts of the grader API made in the grading process: inputs unchanged, refused imports."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mlgrade import wire
from mlgrade.grading import ERROR_WORDING, CallResult, SubmissionError, assert_unchanged, error_message
from mlgrade.loading import ModuleSource
from mlgrade.preservation import fingerprint, modified, snapshot
from mlgrade.refusals import LOAD, OUTSIDE, refused_imports
from mlgrade.sandbox import checked_error
from mlgrade.worker_errors import ErrorKind

MODIFIED_X = ("f modified its argument(s) x in place; the caller's arrays must stay as they were "
              "(work on a copy)")


@pytest.mark.parametrize("value", [
    np.arange(6.0).reshape(2, 3), np.array([np.nan, -0.0, np.inf]), np.arange(4, dtype=">i4"), np.float32(1.5),
    torch.arange(5.0), torch.tensor([1.0, float("nan")], dtype=torch.bfloat16), torch.ones(2, 2).t(),
    [1.0, float("nan"), -0.0], (np.zeros(2), {"a": [1, 2]}), "text", None, True,
])
def test_a_value_and_its_decoded_copy_have_one_fingerprint(value):
    assert fingerprint(wire.decode(wire.encode(value))) == fingerprint(value)


@pytest.mark.parametrize("before,after", [
    (np.zeros(3), np.array([0.0, -0.0, 0.0])),  # bitwise: -0.0 is a change
    (np.zeros(3), np.zeros(3, dtype=np.float32)),
    (np.zeros(4), np.zeros((2, 2))),
    (np.array([1.0, np.nan]), np.array([1.0, 2.0])),
    (torch.zeros(3), torch.tensor([0.0, 1e-30, 0.0])),
    (torch.zeros(3), np.zeros(3)),
    ([1, 2], (1, 2)),
    ([1, 2], [1, 2, 3]),
    ({"a": np.zeros(2)}, {"a": np.ones(2)}),
    (1, True),
])
def test_fingerprints_tell_every_change_apart(before, after):
    assert fingerprint(before) != fingerprint(after)


def test_a_nan_is_the_same_nan_and_requires_grad_is_not_part_of_a_tensor():
    payload = np.array([np.nan]).view(np.uint64) | np.uint64(1)  # another NaN bit pattern
    assert fingerprint(payload.view(np.float64)) == fingerprint(np.array([np.nan]))
    assert fingerprint(torch.ones(2, requires_grad=True)) == fingerprint(torch.ones(2))


def test_snapshot_keeps_what_a_call_could_change_and_the_grading_process_holds():
    x = np.zeros(2)
    sent = snapshot([x, 3, "s", wire.Ref(1), (1, 2), (x, 1), [wire.Ref(2)], []], {"t": torch.ones(1), "k": 1.5})
    assert list(sent) == [0, 5, 7, "t"]


def test_modified_compares_what_came_back_with_what_was_sent():
    x, y = np.arange(3.0), np.arange(3.0)
    sent = snapshot([x, y, [1]], {"z": np.ones(2)})
    x += 1  # the grading process's own objects no longer matter: the fingerprints were taken
    back = [[0, True, np.arange(3.0)], [1, True, np.arange(3.0) * 2], [2, False, None], ["z", True, np.ones(2)]]
    assert modified(sent, back) == [1, 2]
    assert modified(sent, back[:1]) == [1, 2, "z"]  # what did not come back counts as changed


@pytest.mark.parametrize("returned", [None, "x", [None], [[0, True]], [[[0], True, 1]], [[0, "yes", np.arange(3.0)]]])
def test_a_malformed_reply_counts_every_argument_as_changed(returned):
    assert modified(snapshot([np.arange(3.0)], {}), returned) == [0]


def test_assert_unchanged_names_the_modified_arguments():
    assert_unchanged(CallResult(1.0, []), "f", ["x"])
    assert_unchanged(wire.Ref(3), "f", ["x"])
    with pytest.raises(SubmissionError, match=re.escape(MODIFIED_X)):
        assert_unchanged(CallResult(1.0, [0]), "f", ["x", "gamma"])
    with pytest.raises(SubmissionError, match=re.escape(MODIFIED_X)):
        assert_unchanged(wire.Ref(3, mutated=(0,)), "f", ["x"])
    with pytest.raises(SubmissionError, match=re.escape("f modified its argument(s) x, beta in place")):
        assert_unchanged(CallResult(1.0, [0, "beta"]), "f", ["x", "gamma"])


def test_assert_unchanged_refuses_an_item_of_a_kept_result():
    with pytest.raises(TypeError, match=re.escape("assert_unchanged needs the Ref returned by .remote(...) itself")):
        assert_unchanged(wire.Ref(3)[0], "f", ["x"])


def test_refused_imports_are_those_of_the_load_and_of_the_refused_function():
    records = [["sklearn", LOAD], ["sklearn", "svm_fit"], ["sklearn", "viterbi"], ["sklearn", OUTSIDE],
               ["sklearn", "svm_fit.helper"], ["scipy", "svm_fit"], ["sklearn", "svm_fit_other"]]
    assert refused_imports(records, {"sklearn": "scikit-learn"}, "svm_fit") == [
        ("sklearn", LOAD), ("sklearn", "svm_fit"), ("sklearn", "svm_fit.helper")]


@pytest.mark.parametrize("records", [None, "sklearn", [["sklearn"]], [["sklearn", 1]], [[["sklearn"], LOAD]]])
def test_malformed_import_records_are_ignored(records):
    assert refused_imports(records, {"sklearn": "scikit-learn"}, "svm_fit") == []


ABOUT_THE_CALL = "f(x): hw6 has no attribute `f` (detail 42)"
WORDED = {
    ErrorKind.EXCEPTION: "f(x) raised ProbeError: hw6 has no attribute `f` (detail 42)",
    ErrorKind.LOAD: "hw6.py could not be loaded: ProbeError: hw6 has no attribute `f` (detail 42)",
    ErrorKind.MISSING: "hw6.py does not define `f` (detail 42)",
    ErrorKind.UNSUPPORTED: ABOUT_THE_CALL, ErrorKind.TYPE: ABOUT_THE_CALL, ErrorKind.SHAPE: ABOUT_THE_CALL,
    ErrorKind.LAYER: ABOUT_THE_CALL, ErrorKind.STATE: ABOUT_THE_CALL,
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_every_worker_error_kind_is_worded_for_the_student(kind):
    module = ModuleSource(name="hw6", file="hw6.py", chunks=[])
    error = {"kind": kind.value, "type": "ProbeError", "message": "hw6 has no attribute `f` (detail 42)"}
    assert error_message(module, "f(x)", error) == WORDED[kind]


def test_every_error_kind_has_its_wording():
    assert set(ERROR_WORDING) == set(ErrorKind)


@pytest.mark.parametrize("error", [
    None, "text", {"type": "X", "message": "m"}, {"kind": "nonsense", "message": "m"},
    {"kind": "exception", "message": ["nested"]}, {"kind": "exception", "message": {"a": 1}},
])
def test_an_error_record_the_worker_forged_is_not_one(error):
    assert checked_error(error) is None


def test_an_error_record_keeps_known_fields_cut_to_length():
    error = checked_error({"kind": "exception", "type": "E" * 10_000, "message": "m" * 10_000, "extra": "x"})
    assert (len(error["type"]), len(error["message"]), "extra" in error) == (200, 2000, False)
