"""The class report, read as an instructor reads it: parsed from the HTML of a graded class.

The exercise summary comes first; failures are grouped by cause, the cause hitting the most
students first, the students named; a submission that never loaded is counted once, under its
cause; every student's links resolve; scores of graded submissions only (a submission given no
score is listed with its reason, never counted as 0); every student-supplied string escaped.
"""
from __future__ import annotations

import csv
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from mlgrade.batch import grade_class
from mlgrade.course import open_course
from mlgrade.report import write_report

ROOT = Path(__file__).resolve().parent.parent
A = open_course(ROOT).get("ml-hw6")


class Page(HTMLParser):
    """What a reader sees: section titles in order, the rows of each table (cell texts), the links."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self._in: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h2":
            self._in = "h2"
            self.sections.append("")
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables.setdefault(self.sections[-1] if self.sections else "", []).append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._in == "h2":
            self.sections[-1] += data
        elif self._cell is not None:
            self._cell.append(data)

    def table(self, prefix: str) -> list[list[str]]:
        return next(rows for title, rows in self.tables.items() if title.startswith(prefix))


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """Two right, two half done (one a loose file), a syntax error, a missing file."""
    tmp = tmp_path_factory.mktemp("class")
    subs = tmp / "subs"
    subs.mkdir()
    for name in ("ann", "ben"):
        (subs / name).mkdir()
        shutil.copy(ROOT / "reference" / "ml-hw6" / "hw6.py", subs / name / "hw6.py")
    shutil.copytree(ROOT / "examples" / "ml-hw6" / "bob", subs / "bob")
    shutil.copytree(ROOT / "examples" / "ml-hw6" / "carol", subs / "carol")  # syntax error
    shutil.copytree(ROOT / "examples" / "ml-hw6" / "dave", subs / "dave")  # hw6.py not submitted
    (subs / "henry.py").write_text(  # kl_loss twice too large, nothing else
        "def kl_loss(mu, log_sigma):\n    return (mu**2 + log_sigma.exp()**2 - 2*log_sigma - 1).sum()\n")
    out = tmp / "out"
    summary = grade_class(A, subs, out, jobs=2, progress=False)
    assert (summary.graded, summary.failed) == (6, 0)
    return out, Page((out / "report.html").read_text())


def test_the_exercise_summary_comes_first_with_full_partial_and_zero(graded_class):
    _, page = graded_class
    assert page.sections[0] == "Exercises"
    rows = page.table("Exercises")
    assert rows[0][:7] == ["exercise", "points", "mean", "mean share", "full", "partial", "zero"]
    by_name = {r[0]: r for r in rows[1:]}
    assert list(by_name) == list(A.exercises)
    assert by_name["batchnorm"][4:7] == ["2", "0", "4"]  # ann and ben full; bob, carol, dave, henry none
    assert by_name["vae"][4:7] == ["2", "1", "3"]  # bob got part of it (reparameterize, not kl_loss)
    assert all(int(r[4]) + int(r[5]) + int(r[6]) == 6 for r in rows[1:])


def test_failures_are_grouped_by_cause_most_students_first_and_named(graded_class):
    _, page = graded_class
    assert page.sections.index("Exercises") < next(i for i, s in enumerate(page.sections) if s.startswith("What went wrong"))
    rows = page.table("What went wrong")[1:]
    counts = [int(r[0]) for r in rows]
    assert counts == sorted(counts, reverse=True)
    undefined = next(r for r in rows if r[1] == "hw6.py does not define `svm_fit`")
    assert (undefined[0], undefined[2]) == ("2", "bob, henry")
    kl = next(r for r in rows if r[1].startswith("kl_loss: ") and "henry" in r[2])
    assert "(2.0 times too large)" in kl[1]


def test_a_submission_that_never_loaded_is_counted_once_under_its_cause(graded_class):
    _, page = graded_class
    rows = page.table("What went wrong")[1:]
    for student, cause in (("carol", "hw6.py, line 5: SyntaxError: expected ':'"), ("dave", "hw6.py was not submitted")):
        mine = [r for r in rows if student in r[2]]
        assert len(mine) == 1 and mine[0][1] == cause
        assert mine[0][:1] == ["1"] and mine[0][2] == f"{student} (nothing of it was graded)"


def test_students_table_has_exercise_scores_partial_marked_and_links_that_resolve(graded_class):
    out, page = graded_class
    rows = page.table("Students")
    assert rows[0][:3] == ["student", "status", "total"] and rows[0][3] == "batchnorm (15)"
    students = {r[0]: r for r in rows[1:]}
    assert sorted(students) == ["ann", "ben", "bob", "carol", "dave", "henry"]
    assert students["bob"][4].endswith("partial") and students["ann"][4].endswith("full")
    assert students["dave"][1] == "nothing graded: hw6.py was not submitted"
    links = [unquote(link) for link in page.links]
    assert len(links) == 2 * len(students)
    for link in links:
        assert (out / link).is_file(), link


def test_scores_csv_has_total_then_exercise_subtotals_then_tests(graded_class):
    out, _ = graded_class
    with open(out / "scores.csv") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        lines = {row[0]: dict(zip(header, row)) for row in reader}
    assert header[:8] == ["student", "status", "total", "batchnorm", "vae", "svm", "hmm", "subpixel"]
    assert header[8].startswith("batchnorm_forward: ")
    for row in lines.values():
        assert float(row["total"]) == sum(float(row[k]) for k in A.exercises)
        assert float(row["total"]) == sum(float(row[k]) for k in header[8:])
    assert float(lines["ann"]["total"]) == 89 and 0 < float(lines["bob"]["vae"]) < 15


def _graded(student: str, score: float) -> dict:
    test = {"name": "viterbi: random HMM", "number": "4.1", "score": score, "max_score": 2.0, "passed": score == 2.0,
            "message": "" if score == 2.0 else "viterbi: values differ"}
    return {"student": student, "submitters": "", "status": "graded", "score": score, "tests": [test],
            "reason": "", "output": ""}


def test_failed_submissions_are_listed_not_scored_and_escaped(tmp_path):
    failed = {"student": "<script>", "submitters": "", "status": "failed", "score": None, "tests": [],
              "reason": "the sandbox failed (worker exited with status 1) & more", "output": ""}
    write_report(A, [_graded("alice", 2.0), failed, _graded("bob", 0.0)], tmp_path / "report.html",
                 errors=["bob: grading.log not written (OSError: <disk full>)"])
    text = (tmp_path / "report.html").read_text()
    assert "2 submissions graded; mean 1.00, median 2 out of 2. 1 not graded (no score, see below).</p>" in text
    assert "Engine failures: 1 submission(s) not graded" in text
    assert ("<tr><td>&lt;script&gt;</td><td><code>the sandbox failed (worker exited with status 1) &amp; more"
            "</code></td></tr>") in text
    assert "<li><code>bob: grading.log not written (OSError: &lt;disk full&gt;)</code></li>" in text
    rows = Page(text).table("What went wrong")[1:]
    assert rows == [["1", "viterbi: values differ", "bob (nothing of it was graded)", "1 test(s)viterbi: random HMM"],
                    ["1", "No score was given: the sandbox failed (worker exited with status 1) & more",
                     "<script> (nothing of it was graded)", "the whole submission"]]


def test_no_failure_section_when_every_submission_is_graded(tmp_path):
    write_report(A, [_graded("alice", 2.0)], tmp_path / "report.html")
    text = (tmp_path / "report.html").read_text()
    assert "Engine failures" not in text and "Problems of the grading run" not in text
    assert "1 submissions graded; mean 2.00, median 2 out of 2.</p>" in text
