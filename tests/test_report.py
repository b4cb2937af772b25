"""The class report: scores of graded submissions only; a submission given no score is listed by
name with its reason, never counted as 0; every student-supplied string escaped."""
from __future__ import annotations

from pathlib import Path

from mlgrade.course import open_course
from mlgrade.report import write_report

A = open_course(Path(__file__).resolve().parent.parent).get("ml-hw6")


def _graded(student: str, score: float) -> dict:
    test = {"name": "viterbi: random HMM", "score": score, "max_score": 2.0, "passed": score == 2.0,
            "message": "" if score == 2.0 else "viterbi: values differ"}
    return {"student": student, "submitters": "", "status": "graded", "score": score, "tests": [test],
            "reason": "", "output": ""}


def test_failed_submissions_are_listed_not_scored(tmp_path):
    failed = {"student": "<script>", "submitters": "", "status": "failed", "score": None, "tests": [],
              "reason": "the sandbox failed (worker exited with status 1) & more", "output": ""}
    write_report(A, [_graded("alice", 2.0), failed, _graded("bob", 0.0)], tmp_path / "report.html",
                 errors=["bob: grading.log not written (OSError: <disk full>)"])
    page = (tmp_path / "report.html").read_text()
    assert "2 submissions graded; mean 1.00, median 2 out of 2. 1 not graded (no score, see below).</p>" in page
    assert "Engine failures: 1 submission(s) not graded" in page
    assert ("<tr><td>&lt;script&gt;</td><td><code>the sandbox failed (worker exited with status 1) &amp; more"
            "</code></td></tr>") in page
    assert "<li><code>bob: grading.log not written (OSError: &lt;disk full&gt;)</code></li>" in page
    assert '<td class="n" rowspan="1">50%</td><td class="n">1</td><td><code>viterbi: values differ</code>' in page


def test_no_failure_section_when_every_submission_is_graded(tmp_path):
    write_report(A, [_graded("alice", 2.0)], tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "Engine failures" not in page and "Problems of the grading run" not in page
    assert "1 submissions graded; mean 2.00, median 2 out of 2.</p>" in page
