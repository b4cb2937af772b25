"""A submission is graded in time whatever its code does (mlgrade.budget), with the real graders.

Gradescope stops a container after 10 minutes and the student then gets nothing. The three
everywhere-hostile submissions of tests/hostile/ (every function hangs, calls os._exit, or
exhausts memory) must each be graded, zero, with a valid results.json, well inside that; one
hanging function among correct ones loses only its own tests.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mlgrade.course import open_course
from mlgrade.budget import TimeBudget
from mlgrade.runner import grade
from conftest import REPO

HOSTILE = Path(__file__).with_name("hostile")
WALL_BOUND = 150.0  # seconds; the goal on a quiet 2-core machine is 90 s (see the closing figures)


@pytest.fixture(scope="module")
def hw6():
    return open_course(REPO).get("ml-hw6")


def _graded(assignment, submission: Path, out: Path) -> tuple[dict, float]:
    start = time.monotonic()
    outcome = grade(assignment, submission, str(out))
    seconds = time.monotonic() - start
    results = json.loads(out.read_text())
    assert results == outcome.results and outcome.graded
    return results, seconds


_REFERENCE: dict = {}


def _reference_results(assignment, tmp_path) -> dict:
    """The reference's results, once: how many tests a submission gets."""
    if not _REFERENCE:
        _REFERENCE.update(_graded(assignment, REPO / "reference" / "ml-hw6", tmp_path / "reference.json")[0])
    return _REFERENCE


@pytest.mark.parametrize("case,phrase", [
    ("hang_everywhere", "did not finish within 20 s (wall clock); the worker was stopped"),
    ("exit_everywhere", "stopped the worker: the worker exited with status 0"),
    ("memory_everywhere", "stopped the worker: the worker was killed by SIGKILL (killed: memory limit"),
])
def test_an_everywhere_hostile_submission_is_graded_zero_in_time(hw6, case, phrase, tmp_path):
    results, seconds = _graded(hw6, HOSTILE / case, tmp_path / "results.json")
    print(f"{case}: {seconds:.1f} s")
    assert seconds < WALL_BOUND, seconds
    assert results["score"] == 0 and len(results["tests"]) == len(_reference_results(hw6, tmp_path)["tests"])
    assert all(t["score"] == 0 and t["status"] == "failed" for t in results["tests"])
    outputs = [t["output"] for t in results["tests"]]
    assert any(phrase in out for out in outputs), outputs[:3]
    # after its first failure a function is not run again, and the budget stops the rest: each of
    # the 11 functions of the contract ran at most once
    ran = [out for out in outputs if "in an earlier test" not in out and "used up its time budget" not in out]
    assert 1 <= len(ran) <= 11, ran


def test_one_hanging_function_loses_only_its_own_tests(hw6, tmp_path):
    submission = tmp_path / "submission"
    submission.mkdir()
    source = (REPO / "reference" / "ml-hw6" / "hw6.py").read_text()
    (submission / "hw6.py").write_text(source + "\n\ndef viterbi(A, B, pi, O):\n    while True:\n        pass\n")
    results, seconds = _graded(hw6, submission, tmp_path / "results.json")
    maximum = sum(t["max_score"] for t in results["tests"])
    lost = [t for t in results["tests"] if t["score"] < t["max_score"]]
    assert lost and all(t["name"].startswith("viterbi") for t in lost), [t["name"] for t in lost]
    viterbi = [t for t in results["tests"] if t["name"].startswith("viterbi")]
    assert lost == viterbi
    assert results["score"] == maximum - sum(t["max_score"] for t in viterbi)
    assert "did not finish within 20 s" in viterbi[0]["output"]
    assert all(t["output"].startswith("viterbi timed out in an earlier test") for t in viterbi[1:])
    assert seconds < 20 + 60, seconds  # one timeout, not one per test


def test_the_budget_strikes_a_failed_function_and_then_stops_everything():
    budget = TimeBudget(lost_seconds=30, total_seconds=100, call_limit=10)
    assert budget.refusal("f") is None
    budget.failed("f", 10.2, "timed out", "did not finish within 10 s")
    assert budget.refusal("f") == "f timed out in an earlier test (did not finish within 10 s); not run again"
    assert budget.refusal("g") is None
    budget.failed("g", 0.1, "stopped the worker", "the worker exited with status 0")
    assert budget.refusal("g") == "g stopped the worker in an earlier test (the worker exited with status 0); not run again"
    budget.failed("h", 20.0, "timed out", "did not finish within 10 s")
    assert budget.refusal("k") == ("not run: this submission used up its time budget (30 s lost to calls that timed "
                                   "out or stopped the worker, of 30 s); make every function return well within 10 s")


def test_honest_slow_calls_spend_the_total_budget_but_are_never_cut_short():
    budget = TimeBudget(lost_seconds=30, total_seconds=100, call_limit=10)
    for _ in range(10):
        assert budget.refusal("slow") is None
        budget.completed(9.9)
    assert budget.lost == 0
    assert budget.refusal("slow") is None  # 99 s < 100 s: it may still start, with its full limit
    budget.completed(9.9)
    assert budget.refusal("other") == ("not run: this submission used up its time budget (109 s in its functions, "
                                       "of 100 s); make every function return well within 10 s")


def test_a_memory_error_strikes_its_function_like_a_death():
    """Without a cgroup (Gradescope, not root) memory runs out as a MemoryError at RLIMIT_AS."""
    budget = TimeBudget(lost_seconds=30, total_seconds=100, call_limit=10)
    budget.failed("f", 1.4, "ran out of memory", "MemoryError at the sandbox's memory limit")
    assert budget.refusal("f") == ("f ran out of memory in an earlier test (MemoryError at the sandbox's memory "
                                   "limit); not run again")
    assert budget.lost == 1.4
