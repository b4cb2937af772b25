"""mlgrade.results: the Gradescope plugin, driven through mlgrade.runner.grade.

Like pytest's testing/test_junitxml.py: each test writes a small grader file into a tiny
assignment of its own, grades a small submission, and asserts on the parsed results.json.
"""
from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import pytest

from mlgrade.course import open_course
from mlgrade.results import TestResult as Result
from mlgrade.results import passed, score, to_gradescope, write_results
from mlgrade.runner import grade

SUBMISSION = "def double(x):\n    return 2 * x\n\ndef half(x):\n    return x / 2\n"
HEADER = "from mlgrade import assert_close, check, student\nhw = student('hw')\n"
TOY_CONTRACT = """id = "toy"
title = "toy"
[[files]]
name = "hw.py"
[exercises]
doubling = ["double", "half"]
[limits]
call_timeout = 10
load_timeout = 30
"""


class Graded:
    def __init__(self, tmp_path: Path, graders: str, submission: str | None = SUBMISSION):
        root = tmp_path / "root"
        (root / "graders" / "toy").mkdir(parents=True)
        # a file name of its own: pytest may keep an earlier test_toy module of the same name
        (root / "graders" / "toy" / f"test_toy_{tmp_path.name}.py").write_text(HEADER + textwrap.dedent(graders))
        (root / "mlgrade-course.toml").write_text('[course]\nname = "toy course"\n')
        (root / "assignments" / "toy").mkdir(parents=True)
        (root / "assignments" / "toy" / "assignment.toml").write_text(TOY_CONTRACT)
        sub = tmp_path / "submission"
        sub.mkdir()
        if submission is not None:
            (sub / "hw.py").write_text(submission)
        self.assignment = open_course(root).get("toy")
        self.path = tmp_path / "results" / "results.json"
        self.outcome = grade(self.assignment, sub, str(self.path))
        self.results = json.loads(self.path.read_text())

    @property
    def tests(self) -> list[dict]:
        return self.results["tests"]

    def by_name(self, name: str) -> dict:
        return next(t for t in self.tests if t["name"] == name)


def test_schema_of_a_passing_and_a_failing_test(tmp_path):
    g = Graded(tmp_path, '''
        @check("double: doubles", weight=2)
        def test_ok():
            assert_close(hw.double(3), 6)

        @check("half: halves")
        def test_bad():
            assert_close(hw.half(3.0), 1.0, name="half(3)")
    ''')
    assert g.results == g.outcome.results
    assert set(g.results) == {"score", "execution_time", "output", "visibility", "stdout_visibility", "tests"}
    assert g.results["score"] == 2.0
    assert g.results["visibility"] == "visible" and g.results["stdout_visibility"] == "hidden"
    assert g.results["output"] == "Graded hw.py."
    assert isinstance(g.results["execution_time"], int)
    ok, bad = g.tests
    assert ok == {"name": "double: doubles", "number": "1.1", "score": 2.0, "max_score": 2.0, "status": "passed",
                  "output": "", "visibility": "visible"}
    assert bad["status"] == "failed" and bad["score"] == 0.0 and bad["max_score"] == 1.0 and bad["number"] == "1.2"
    assert bad["output"] == ("half(3): got 1.5, expected 1 (1.5 times too large)\nNot equal to tolerance rtol=1e-05, atol=1e-08\n"
                             "Checked with: half(3.0)")


def test_visibility_number_and_tags(tmp_path):
    g = Graded(tmp_path, '''
        @check("double: hidden one", visibility="hidden", number="7.1", tags=("easy", "numpy"))
        def test_a():
            assert hw.double(1) == 2

        @check("double: after the due date", visibility="after_due_date")
        def test_b():
            assert hw.double(2) == 4
    ''')
    a, b = g.by_name("double: hidden one"), g.by_name("double: after the due date")
    assert (a["visibility"], a["number"], a["tags"]) == ("hidden", "7.1", ["easy", "numpy"])
    assert b["visibility"] == "after_due_date" and "tags" not in b


def test_gradescope_utils_decorators(tmp_path):
    g = Graded(tmp_path, '''
        from gradescope_utils.autograder_utils.decorators import number, tags, visibility, weight

        @check("double: with decorators")
        @weight(3)
        @visibility("after_published")
        @number("4.2")
        @tags("decorated")
        def test_a():
            assert hw.double(1) == 2
    ''')
    (t,) = g.tests
    assert (t["max_score"], t["score"], t["visibility"], t["number"], t["tags"]) == (3.0, 3.0, "after_published", "4.2", ["decorated"])


def test_parametrized_names(tmp_path):
    g = Graded(tmp_path, '''
        import pytest

        @check("double: x={x}")
        @pytest.mark.parametrize("x", [1, 2])
        def test_fmt(x):
            assert hw.double(x) == 2 * x

        @check("half: plain")
        @pytest.mark.parametrize("x", [4])
        def test_plain(x):
            assert hw.half(x) == 2
    ''')
    assert [t["name"] for t in g.tests] == ["double: x=1", "double: x=2", "half: plain [4]"]
    assert g.results["score"] == 3


def test_partial_credit_through_the_credit_fixture(tmp_path):
    g = Graded(tmp_path, '''
        @check("double: partial", weight=4)
        def test_partial(credit):
            credit.fraction = 0.25
            assert False, "only a quarter"

        @check("double: over-claimed", weight=2)
        def test_over(credit):
            credit.fraction = 5.0

        @check("half: negative", weight=2)
        def test_negative(credit):
            credit.fraction = -1
            assert False, "nothing"
    ''')
    partial, over, negative = g.tests
    assert (partial["score"], partial["status"]) == (1.0, "failed")
    assert partial["output"].startswith("only a quarter")
    assert (over["score"], over["status"]) == (2.0, "passed")
    assert negative["score"] == 0.0
    assert g.results["score"] == 3.0


def test_score_never_exceeds_max():
    results = [Result("a: x", 1.0, passed=True, fraction=3.0), Result("a: y", 2.0, passed=True)]
    assert score(results) == (3.0, 3.0)
    assert score([Result("a: z", 1.0, passed=False, fraction=-2)]) == (0.0, 1.0)


USAGE_FAILURE = ("The autograder itself failed (the instructor has the details). No score was given: "
                 "pytest could not run the graders (exit code 4, 0 tests)")


def test_names_must_begin_with_a_contract_name(tmp_path):
    g = Graded(tmp_path, '''
        @check("triple: not in the contract")
        def test_a():
            pass
    ''')
    assert g.results["score"] == 0 and g.tests == []
    assert g.results["output"] == USAGE_FAILURE
    assert "No score given: pytest could not run the graders (exit code 4, 0 tests)" in g.outcome.log
    assert ("test name 'triple: not in the contract' must begin with a contract name (double, half, hw.py)"
            in g.outcome.log)


def test_unmarked_test_is_a_usage_error(tmp_path):
    g = Graded(tmp_path, '''
        def test_unmarked():
            pass
    ''')
    assert g.tests == [] and g.results["output"] == USAGE_FAILURE
    assert "graded tests need @check('<contract name>: <what>')" in g.outcome.log


def test_file_name_is_a_contract_name_too(tmp_path):
    g = Graded(tmp_path, '''
        @check("hw.py: loads")
        def test_loads():
            hw.double(1)
    ''')
    assert g.tests[0]["status"] == "passed"


def test_a_grader_bug_is_an_internal_error_not_the_students_fault(tmp_path):
    g = Graded(tmp_path, '''
        @check("double: grader bug")
        def test_bug():
            {}["missing"]
    ''')
    # a grade is right or it is not given: no score, the traceback for the instructor
    assert g.tests == [] and g.results["score"] == 0 and not g.outcome.graded
    assert g.results["output"] == ("The autograder itself failed (the instructor has the details). No score was given: "
                                   "1 test(s) hit an error in the grader")
    (t,) = g.outcome.tests
    assert t.output == "internal error in the grader (KeyError); this is not your fault: please tell your instructor"
    assert "KeyError: 'missing'" in g.outcome.log


def test_submission_errors_are_shown_to_the_student(tmp_path):
    g = Graded(tmp_path, '''
        @check("double: raises")
        def test_a():
            hw.double(None)

        @check("half: missing")
        def test_b():
            hw.quarter(1)
    ''', submission="def double(x):\n    return 2 * x + None\n")
    a, b = g.tests
    assert a["output"].startswith("double(None) raised TypeError: unsupported operand type(s) for *: 'int' and 'NoneType'")
    assert b["output"] == "hw.py does not define `quarter`"


def test_printed_output_is_attached(tmp_path):
    g = Graded(tmp_path, '''
        @check("double: prints")
        def test_a():
            assert hw.double(1) == 2
    ''', submission="def double(x):\n    print('debug', x)\n    return 2 * x\n")
    assert g.tests[0]["output"] == "Your code printed:\ndebug 1\n"


def test_not_submitted(tmp_path):
    g = Graded(tmp_path, '''
        @check("double: anything")
        def test_a():
            hw.double(1)
    ''', submission=None)
    assert g.results["score"] == 0
    assert g.tests[0]["output"] == "hw.py was not submitted"
    assert g.results["output"] == "hw.py was not submitted."


def test_write_results_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out" / "results.json"
    write_results(str(path), {"score": 1})
    assert json.loads(path.read_text()) == {"score": 1}
    assert oct(path.stat().st_mode & 0o777) == "0o644"

    def broken_dump(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(RuntimeError, match=re.escape("disk full")):
        write_results(str(path), {"score": 2})
    assert json.loads(path.read_text()) == {"score": 1}  # the old file is intact
    leftovers = [p for p in os.listdir(path.parent) if p != "results.json"]
    assert all(p.startswith(".results-") for p in leftovers)


def test_results_json_stays_under_a_megabyte_however_much_is_said():
    from mlgrade.results import MAX_RESULTS_BYTES, TestResult, to_gradescope

    tests = [TestResult(name=f"double: case {i}", max_score=1.0, passed=False, output="x" * 6000) for i in range(400)]
    data = to_gradescope(tests, 1.0, "y" * 5_000_000)
    assert len(json.dumps(data).encode()) <= MAX_RESULTS_BYTES
    assert data["output"].startswith("y" * 20000) and data["output"].endswith("\n... (truncated)")
    assert len(data["tests"]) == 400 and all(t["output"].startswith("xx") for t in data["tests"])
    small = to_gradescope(tests[:3], 1.0, "fine")
    assert [t["output"] for t in small["tests"]] == ["x" * 6000] * 3 and small["output"] == "fine"


@pytest.mark.parametrize("ran_to_end,fraction,verdict", [
    (True, None, True), (False, None, False), (None, None, False),
    (False, 0.5, False),  # partial credit earns points but is not a pass
    (False, 1.0, False), (True, 0.5, False),
])
def test_one_rule_for_passed_read_the_same_from_results_json(ran_to_end, fraction, verdict):
    result = Result(name="t", max_score=2.0, passed=ran_to_end, fraction=fraction)
    assert passed(result) is verdict
    written = to_gradescope([result], 1.0, "")["tests"][0]
    assert passed(written) is verdict
    assert written["status"] == ("passed" if verdict else "failed")


def test_the_run_holds_its_grading_in_the_stash_and_writes_results_at_session_finish(tmp_path):
    g = Graded(tmp_path, '''
        import os
        from mlgrade.grading import SESSION, current
        from mlgrade.results import REPORTER

        @check("double: the session and the reporter live in the run's stash")
        def test_stash(request):
            stash = request.config.stash
            assert stash[SESSION] is current() and stash[REPORTER].session is current()
            assert request.config.getoption("gradescope_results").endswith("results.json")
            assert not os.path.exists(request.config.getoption("gradescope_results"))  # written once, at the end
    ''')
    assert g.results["score"] == 1.0, g.tests
    with pytest.raises(RuntimeError, match="no submission is being graded"):
        from mlgrade.grading import current
        current()  # nothing is graded outside a grading's run
