"""`mlgrade grade`: a small class graded by the pool matches per-student `mlgrade run`; the report;
re-runs skip unchanged students; Gradescope's export zip; a hanging or crashing submission
never stops the batch; every student is reported once, and a grading that gave no score is
never a 0; hostile inputs (colliding or reserved names, links, FIFOs, zip slips and bombs,
formula cells, escape sequences) cost only their own student."""
from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from rich.console import Console

from mlgrade.course import open_course
from mlgrade import batch, intake, pool
from mlgrade.batch import ExportError, grade_class
from mlgrade.intake import Submission, discover
from mlgrade.pool import Failure, Pool, run_pool
from mlgrade.scores import write_scores
from conftest import relocated
from mlgrade.results import is_engine_failure
from mlgrade.terminal import printable
from mlgrade.validate import apply_mutant, load_mutants

ROOT = Path(__file__).resolve().parent.parent
A = open_course(ROOT).get("ml-hw6")
REF = A.reference_dir / "hw6.py"
TEMPLATE_NB = A.template_dir / "hw6.ipynb"

HANG = '''import numpy as np
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    while True:
        pass
'''


def make_class(folder: Path) -> Path:
    (folder / "alice").mkdir(parents=True)
    shutil.copy(REF, folder / "alice" / "hw6.py")
    (folder / "bob").mkdir()
    shutil.copy(TEMPLATE_NB, folder / "bob" / "hw6.ipynb")
    mutant = next(m for m in load_mutants(A.mutants_dir) if m.name == "bn_unbiased_var")
    apply_mutant(mutant, A.reference_dir, folder / "carol")
    (folder / "dave.py").write_text("def batchnorm_forward(x:\n")  # one file per student, broken
    (folder / "erin" / "my_upload").mkdir(parents=True)  # a student who uploaded a folder
    shutil.copy(REF, folder / "erin" / "my_upload" / "hw6.py")
    return folder


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("class")
    subs = make_class(base / "subs")
    out = base / "out"
    summary = grade_class(A, subs, out, jobs=2, timeout=600, progress=False)
    return subs, out, summary


def read_scores(path: Path) -> dict[str, dict]:
    with open(path) as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


def test_scores_match_mlgrade_run(graded, tmp_path):
    subs, out, summary = graded
    assert (summary.graded, summary.failed, summary.skipped) == (5, 0, 0)
    scores = read_scores(out / "scores.csv")
    assert sorted(scores) == ["alice", "bob", "carol", "dave", "erin"]
    for student in ("alice", "bob", "carol", "dave"):
        target = subs / student if (subs / student).is_dir() else tmp_path / student
        if not target.exists():  # dave.py: graded as hw6.py
            target.mkdir()
            shutil.copy(subs / f"{student}.py", target / "hw6.py")
        run = subprocess.run(["mlgrade", "run", "ml-hw6", str(target), "--results", str(tmp_path / f"{student}.json")],
                             capture_output=True, text=True, cwd=ROOT)
        assert run.returncode == 0, run.stderr
        single = json.loads((tmp_path / f"{student}.json").read_text())
        pooled = json.loads((out / student / "results.json").read_text())
        assert pooled["score"] == single["score"], student
        assert float(scores[student]["total"]) == single["score"]
        for t in single["tests"]:
            assert float(scores[student][t["name"]]) == t["score"], (student, t["name"])
        assert [t["name"] for t in pooled["tests"]] == [t["name"] for t in single["tests"]]
    maximum = sum(t["max_score"] for t in json.loads((out / "alice" / "results.json").read_text())["tests"])
    assert float(scores["alice"]["total"]) == maximum > 0
    assert float(scores["erin"]["total"]) == maximum
    assert float(scores["bob"]["total"]) == 0
    assert 0 < float(scores["carol"]["total"]) < maximum
    assert float(scores["dave"]["total"]) == 0
    assert "SyntaxError" in json.loads((out / "dave" / "results.json").read_text())["output"]


def test_report_has_a_histogram_and_failures_by_cause(graded):
    _, out, _ = graded
    page = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 1  # the histogram; the rest is HTML (tests/test_report.py reads it)
    assert base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    # carol's mutant fails batchnorm_forward tests: one cause, counted in students, carol named
    assert re.search(r'<tr class="cause"><td class="n">\d+</td><td><code>batchnorm_forward[^<]*</code></td><td>[^<]*carol', page)


def test_rerun_skips_unchanged(graded):
    subs, out, _ = graded
    before = (out / "scores.csv").read_text()
    again = grade_class(A, subs, out, jobs=2, progress=False)
    assert (again.graded, again.skipped) == (0, 5)
    assert (out / "scores.csv").read_text() == before
    (subs / "dave.py").write_text("def batchnorm_forward(x):\n    return x +\n")  # changed: regraded alone
    third = grade_class(A, subs, out, jobs=2, progress=False)
    assert (third.graded, third.skipped) == (1, 4)
    assert read_scores(out / "scores.csv")["alice"] == read_scores(out / "scores.csv")["erin"] | {"student": "alice"}


def test_force_regrades(tmp_path):
    (tmp_path / "subs" / "bob").mkdir(parents=True)
    shutil.copy(TEMPLATE_NB, tmp_path / "subs" / "bob" / "hw6.ipynb")
    first = grade_class(A, tmp_path / "subs", tmp_path / "out", jobs=1, progress=False)
    assert first.graded == 1
    assert (tmp_path / "out" / "bob" / ".mlgrade-hash").is_file()
    assert grade_class(A, tmp_path / "subs", tmp_path / "out", jobs=1, progress=False).skipped == 1
    assert grade_class(A, tmp_path / "subs", tmp_path / "out", jobs=1, force=True, progress=False).graded == 1


def _export_zip(path: Path, wrapper: str) -> Path:
    meta = """submission_1001:
  :submitters:
  - :name: Ada Lovelace
    :sid: '1'
    :email: ada@example.edu
  :created_at: 2026-11-20 10:00:00.000000000 -08:00
  :score: 0.0
submission_1002:
  :submitters:
  - :name: Alan Turing
    :email: alan@example.edu
  - :name: Grace Hopper
    :email: grace@example.edu
"""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{wrapper}submission_metadata.yml", meta)
        zf.write(TEMPLATE_NB, f"{wrapper}submission_1001/hw6.ipynb")
        zf.writestr(f"{wrapper}submission_1002/code/hw6.py", "def batchnorm_forward(x, g, b, eps=1e-5):\n    return None\n")
    return path


@pytest.mark.parametrize("wrapper", ["", "assignment_42_export/"])
def test_gradescope_export_zip(tmp_path, wrapper):
    subs, errors = discover(A, _export_zip(tmp_path / "export.zip", wrapper), tmp_path / "work")
    assert errors == [] and all(not s.problems for s in subs)
    assert [s.student for s in subs] == ["submission_1001", "submission_1002"]
    assert subs[0].submitters == "Ada Lovelace <ada@example.edu>"
    assert subs[1].submitters == "Alan Turing <alan@example.edu>; Grace Hopper <grace@example.edu>"
    assert [p.name for p in subs[0].folder.iterdir()] == ["hw6.ipynb"]
    assert [p.name for p in subs[1].folder.iterdir()] == ["hw6.py"]


def test_cli_grade_on_export_zip(tmp_path):
    zipped = _export_zip(tmp_path / "export.zip", "assignment_42_export/")
    run = subprocess.run(["mlgrade", "grade", "ml-hw6", str(zipped), "-j", "2", "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    scores = read_scores(tmp_path / "out" / "scores.csv")
    assert set(scores) == {"submission_1001", "submission_1002"}
    assert scores["submission_1002"]["submitters"].startswith("Alan Turing")
    assert float(scores["submission_1001"]["total"]) == 0
    assert (tmp_path / "out" / "submission_1002" / "results.json").is_file()


def test_hanging_submission_is_stopped_and_the_rest_graded(tmp_path):
    subs = tmp_path / "subs"
    for name in ("a_hang", "b_template", "c_template"):
        (subs / name).mkdir(parents=True)
    (subs / "a_hang" / "hw6.py").write_text(HANG)  # one call hangs for the whole call limit (20 s)
    for name in ("b_template", "c_template"):
        shutil.copy(TEMPLATE_NB, subs / name / "hw6.ipynb")
    out = tmp_path / "out"
    summary = grade_class(A, subs, out, jobs=2, timeout=12, progress=False)
    assert (summary.graded, summary.failed) == (2, 1)
    assert summary.failures == {"a_hang": "grading took longer than 12 s and was stopped"}
    hang = json.loads((out / "a_hang" / "results.json").read_text())
    assert is_engine_failure(hang) and hang["tests"] == [] and "longer than 12 s" in hang["output"]
    assert (out / "a_hang" / "grading.log").read_text() == "grading took longer than 12 s and was stopped\n"
    assert not (out / "a_hang" / ".mlgrade-hash").exists()  # retried on the next run
    for name in ("b_template", "c_template"):
        assert json.loads((out / name / "results.json").read_text())["tests"]
        assert "failed" in (out / name / "grading.log").read_text()  # pytest's own log, for the instructor
    scores = read_scores(out / "scores.csv")
    assert (scores["a_hang"]["status"], scores["a_hang"]["total"]) == ("failed", "")  # no score, not 0
    assert (scores["b_template"]["status"], scores["b_template"]["total"]) == ("graded", "0")
    page = (out / "report.html").read_text()
    assert "Engine failures: 1 submission(s) not graded" in page
    assert "<tr><td>a_hang</td><td><code>grading took longer than 12 s and was stopped</code></td></tr>" in page
    assert "2 submissions graded" in page


def fake_grade(student: str, folder: str, results_path: str) -> dict:
    """Stands in for _grade_one in the pool: 'crash' kills its grading process, 'raise' raises."""
    if "crash" in student:
        os._exit(3)
    if "raise" in student:
        raise RuntimeError("the grader broke")
    return {"results": {"score": 1.0, "tests": []}, "log": "", "pid": os.getpid(), "peak_rss_mb": 0.0}


def test_crashing_grading_process_is_isolated(tmp_path):
    subs = [Submission(name, tmp_path) for name in ("s1", "s2_crash", "s3", "s4", "s5")]
    seen = {}

    def on_done(sub, result, failure):
        assert sub.student not in seen, "each submission is reported once"
        seen[sub.student] = failure or result

    run_pool(Pool(A, 2), subs, 2, 60.0, tmp_path, on_done, fn=fake_grade)
    assert sorted(seen) == ["s1", "s2_crash", "s3", "s4", "s5"]
    assert seen["s2_crash"] == Failure("the grading process crashed on this submission", seen["s2_crash"].seconds)
    assert all(seen[s]["results"]["score"] == 1.0 for s in ("s1", "s3", "s4", "s5"))


def test_a_grading_that_raises_is_reported_once_with_its_traceback(tmp_path):
    subs = [Submission(name, tmp_path) for name in ("s1", "s2_raise", "s3")]
    seen = {}

    def on_done(sub, result, failure):
        assert sub.student not in seen, "each submission is reported once"
        seen[sub.student] = failure or result

    assert run_pool(Pool(A, 2), subs, 2, 60.0, tmp_path, on_done, fn=fake_grade) == []
    failure = seen["s2_raise"]
    assert failure.reason == "grading failed (RuntimeError: the grader broke)"
    assert "in fake_grade" in failure.log and failure.log.rstrip().endswith("RuntimeError: the grader broke")
    assert seen["s1"]["results"]["score"] == seen["s3"]["results"]["score"] == 1.0


def test_bookkeeping_that_raises_is_returned_not_reported_again(tmp_path):
    subs = [Submission(name, tmp_path) for name in ("s1", "s2", "s3")]
    calls = []

    def on_done(sub, result, failure):
        calls.append((sub.student, failure))
        if sub.student == "s2":
            raise OSError(28, "No space left on device")

    errors = run_pool(Pool(A, 2), subs, 2, 60.0, tmp_path, on_done, fn=fake_grade)
    assert sorted(calls) == [("s1", None), ("s2", None), ("s3", None)]  # s2 graded, reported once, no failure
    assert errors == ["s2: recording the result failed (OSError: [Errno 28] No space left on device)"]


def test_bookkeeping_failure_after_a_good_grade_changes_no_result(tmp_path, monkeypatch):
    (tmp_path / "subs" / "bob").mkdir(parents=True)
    shutil.copy(TEMPLATE_NB, tmp_path / "subs" / "bob" / "hw6.ipynb")
    out = tmp_path / "out"
    written = []

    def full_disk(path, digest):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(batch, "_write_hash", full_disk)
    monkeypatch.setattr(batch, "write_results", lambda path, data: written.append(path))
    summary = grade_class(A, tmp_path / "subs", out, jobs=1, progress=False)
    assert (summary.graded, summary.failed, summary.skipped, len(summary.rows)) == (1, 0, 0, 1)
    assert summary.errors == ["bob: .mlgrade-hash not written (OSError: [Errno 28] No space left on device)"]
    assert not summary.ok
    assert written == []  # the batch never writes a completed grading's results.json: the runner did
    results = json.loads((out / "bob" / "results.json").read_text())
    assert not is_engine_failure(results) and len(results["tests"]) > 10 and results["score"] == 0
    assert not (out / "bob" / ".mlgrade-hash").exists()  # so the next run grades bob again
    assert [(r["student"], r["status"], r["total"]) for r in read_scores(out / "scores.csv").values()] == \
        [("bob", "graded", "0")]
    assert "Problems of the grading run" in (out / "report.html").read_text()


def test_engine_failure_is_no_score(tmp_path):
    root = tmp_path / "root"
    (root / "graders" / "ml-hw6").mkdir(parents=True)
    (root / "graders" / "ml-hw6" / "test_broken.py").write_text("def test_batchnorm_forward(:\n")
    broken = relocated(A, root / "graders" / "ml-hw6")
    (tmp_path / "subs" / "alice").mkdir(parents=True)
    shutil.copy(REF, tmp_path / "subs" / "alice" / "hw6.py")
    out = tmp_path / "out"
    summary = grade_class(broken, tmp_path / "subs", out, jobs=1, progress=False)
    assert (summary.graded, summary.failed, summary.ok) == (0, 1, False)
    assert summary.failures["alice"].startswith("pytest could not run the graders")
    results = json.loads((out / "alice" / "results.json").read_text())
    assert is_engine_failure(results) and results["tests"] == []
    assert "test_broken.py" in (out / "alice" / "grading.log").read_text()  # the instructor sees why
    assert not (out / "alice" / ".mlgrade-hash").exists()
    row = read_scores(out / "scores.csv")["alice"]
    assert (row["status"], row["total"]) == ("failed", "")
    page = (out / "report.html").read_text()
    assert "Engine failures: 1 submission(s) not graded" in page and "<td>alice</td>" in page
    assert "0 submissions graded" in page


# --- hostile inputs ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, shown", [
    ("score\t81\nnext line", "score\t81\nnext line"),
    ("a\x1b[2J\x1b[Hb", "ab"),  # clear screen, cursor home
    ("a\x1b]52;c;ZXZpbA==\x07b", "ab"),  # OSC 52: write the clipboard
    ("a\x1b]0;title\x1b\\b", "ab"),  # window title, ST-terminated
    ("a\x1b]52;c;never terminated", "a"),
    ("a\x9b2Jb\x9d0;title\x9cc", "abc"),  # the same as 8-bit C1 controls
    ("a\x1bcb\x1b(Bc", "abc"),  # reset, character set
    ("a\rb\x00c\x7fd\x08e\x85f", "abcdef"),
    ("abc\u202edcba\u2066x\u2069", "abcdcbax"),  # bidi override, isolate
    ("é 中 🙂", "é 中 🙂"),
])
def test_printable(raw, shown):
    assert printable(raw) == shown


def test_output_names_are_unique_and_never_the_output_files(tmp_path):
    subs_dir = tmp_path / "subs"
    for name in ("alice smith", "alice_smith", "Alice_Smith", "scores.csv", "report.html", "-1+1"):
        (subs_dir / name).mkdir(parents=True)
        (subs_dir / name / "hw6.py").write_text(f"# {name}\n")
    (subs_dir / "alice_smith.py").write_text("# alice_smith.py\n")  # one file, named after its student
    subs, errors = discover(A, subs_dir, tmp_path / "work")
    assert errors == []
    assert {s.student: (s.folder / "hw6.py").read_text() for s in subs} == {
        "-1+1": "# -1+1\n",
        "Alice_Smith": "# Alice_Smith\n",
        "alice_smith-2": "# alice_smith\n",  # unchanged names first, then in order; ignoring case
        "alice_smith.py": "# alice_smith.py\n",
        "report.html-2": "# report.html\n",
        "scores.csv-2": "# scores.csv\n",
        "alice_smith-3": "# alice smith\n",
    }
    again, _ = discover(A, subs_dir, tmp_path / "work2")
    assert [s.student for s in again] == [s.student for s in subs]  # the same names on every run
    assert intake.output_names([("..",), (".",), ("",), ("Report.HTML",), ("a" * 300,)]) == [
        "student", "student-2", "student-3", "Report.HTML-2", "a" * 80]


def test_only_regular_files_are_staged(tmp_path):
    subs_dir = tmp_path / "subs"
    for name in ("link", "proc", "fifo", "nested/up", "big", "ok"):
        (subs_dir / name).mkdir(parents=True)
    (subs_dir / "link" / "hw6.py").symlink_to(REF)
    (subs_dir / "proc" / "hw6.py").symlink_to(f"/proc/self/cwd/{REF.relative_to(ROOT)}")
    os.mkfifo(subs_dir / "fifo" / "hw6.py")
    (subs_dir / "folder" / "hw6.py").mkdir(parents=True)
    (subs_dir / "nested" / "up" / "hw6.py").symlink_to(REF)
    (subs_dir / "linkdir").symlink_to(REF.parent, target_is_directory=True)  # the student's folder is a link
    (subs_dir / "zero.py").symlink_to("/dev/zero")  # one file per student
    (subs_dir / "big" / "hw6.py").write_bytes(b"#" * ((5 << 20) + 1))
    (subs_dir / "ok" / "hw6.py").write_text("x = 1\n")
    subs, errors = discover(A, subs_dir, tmp_path / "work")
    link = "{} is a symbolic link, not a regular file: not read"
    assert {s.student: s.problems for s in subs} == {
        "big": ["hw6.py is larger than 5 MB: not read"],
        "fifo": ["hw6.py is a FIFO, not a regular file: not read"],
        "folder": ["hw6.py is a folder, not a regular file: not read"],
        "link": [link.format("hw6.py")],
        "linkdir": [link.format("linkdir")],
        "nested": [link.format("up/hw6.py")],
        "ok": [],
        "proc": [link.format("hw6.py")],
        "zero": [link.format("zero.py")],
    }
    assert {s.student: [p.name for p in s.folder.iterdir()] for s in subs if s.student != "ok"} == \
        {s.student: [] for s in subs if s.student != "ok"}
    assert (tmp_path / "work" / "staged" / "ok" / "hw6.py").read_text() == "x = 1\n"


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    subs = base / "subs"
    (subs / "alice_smith").mkdir(parents=True)
    shutil.copy(REF, subs / "alice_smith" / "hw6.py")
    for name in ("alice smith", "scores.csv", "report.html", "-1+1"):
        (subs / name).mkdir()
        shutil.copy(TEMPLATE_NB, subs / name / "hw6.ipynb")
    (subs / "linked").mkdir()
    (subs / "linked" / "hw6.py").symlink_to(REF)  # the reference, graded as the student's work before
    console = Console(file=io.StringIO(), width=200)
    summary = grade_class(A, subs, base / "out", jobs=2, timeout=600, progress=False, console=console)
    return base / "out", summary, console.file.getvalue()


def test_hostile_class_is_graded_student_by_student(hostile_class):
    out, summary, printed = hostile_class
    assert (summary.graded, summary.failed, summary.errors) == (5, 1, [])
    assert summary.failures == {"linked": "hw6.py is a symbolic link, not a regular file: not read"}
    assert printed == "linked: not graded: hw6.py is a symbolic link, not a regular file: not read\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "-1+1", "alice_smith", "alice_smith-2", "linked", "report.html", "report.html-2", "scores.csv", "scores.csv-2"]
    assert (out / "scores.csv").is_file() and (out / "report.html").is_file()
    full = json.loads((out / "alice_smith" / "results.json").read_text())
    assert full["score"] == sum(t["max_score"] for t in full["tests"]) > 0  # the correct student keeps the grade
    assert json.loads((out / "alice_smith-2" / "results.json").read_text())["score"] == 0
    linked = json.loads((out / "linked" / "results.json").read_text())
    assert is_engine_failure(linked) and "symbolic link" in linked["output"]
    assert (out / "linked" / "grading.log").read_text() == summary.failures["linked"] + "\n"
    lines = (out / "scores.csv").read_text().splitlines()
    assert lines[0].startswith("student,status,total,")
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["'-1+1", "graded", "0"], ["alice_smith", "graded", f"{full['score']:g}"], ["alice_smith-2", "graded", "0"],
        ["linked", "failed", ""], ["report.html-2", "graded", "0"], ["scores.csv-2", "graded", "0"]]
    assert lines[4] == "linked,failed," + "," * (len(A.exercises) + len(full["tests"]))  # no score at all, not 0


def test_scores_csv_neutralises_formulas_but_keeps_numbers(tmp_path):
    rows = [
        {"student": "-1+1", "submitters": '=HYPERLINK("http://x","y") <a@b.c>', "status": "graded", "score": -1.5,
         "tests": [{"name": "@t", "score": -0.5}, {"name": "+u", "score": 1.0}]},
        {"student": "ok", "submitters": "\tTab; \rCR; +1", "status": "failed", "score": None, "tests": []},
    ]
    write_scores(A, rows, tmp_path / "scores.csv")
    assert (tmp_path / "scores.csv").read_bytes().decode().split("\r\n") == [
        "student,name,email,submitters,status,total,other,'@t,'+u",
        '\'-1+1,"\'=HYPERLINK(""http://x"",""y"")",a@b.c,"\'=HYPERLINK(""http://x"",""y"") <a@b.c>",graded,-1.5,0.5,-0.5,1',
        "ok,Tab; CR; +1,,\"'\tTab; \rCR; +1\",failed,,,,",
        "",
    ]


def _zip(path: Path, entries: list) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def test_zip_slip_entry_skips_its_student_only(tmp_path):
    exported = _zip(tmp_path / "export.zip", [
        ("submission_1/hw6.py", "x = 1\n"),
        ("submission_2/hw6.py", "x = 2\n"),
        ("submission_2/../../evil.py", "boom"),
        ("../outside.py", "boom"),
        ("/abs/hw6.py", "boom"),
    ])
    subs, errors = discover(A, exported, tmp_path / "work")
    assert {s.student: s.problems for s in subs} == {
        "submission_1": [],
        "submission_2": ["the export's entry 'submission_2/../../evil.py' points outside its folder: not extracted"]}
    assert errors == ["the export's entry '../outside.py' points outside its folder: not extracted",
                      "the export's entry '/abs/hw6.py' points outside its folder: not extracted"]
    assert (subs[0].folder / "hw6.py").read_text() == "x = 1\n"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.py")) == [
        "work/export/submission_1/hw6.py", "work/export/submission_2/hw6.py",
        "work/staged/submission_1/hw6.py", "work/staged/submission_2/hw6.py"]  # nothing outside
    assert not Path("/abs").exists()


def test_zip_extracts_contract_files_only_and_no_links(tmp_path):
    link = zipfile.ZipInfo("submission_2/hw6.py")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    exported = _zip(tmp_path / "export.zip", [
        ("submission_1/hw6.py", "x = 1\n"),
        ("submission_1/data/train.npy", b"\x93NUMPY" + bytes(1000)),
        ("submission_1/notes.txt", "notes"),
        (link, str(REF)),
        ("submission_3/deep/a/b/other.txt", "nothing to grade"),
    ])
    subs, errors = discover(A, exported, tmp_path / "work")
    export = tmp_path / "work" / "export"
    assert sorted(p.relative_to(export).as_posix() for p in export.rglob("*") if not p.is_dir()) == \
        ["submission_1/hw6.py"]
    assert not any(p.is_symlink() for p in export.rglob("*"))
    assert {s.student: s.problems for s in subs} == {
        "submission_1": [],
        "submission_2": ["submission_2/hw6.py is a symbolic link, not a regular file: not read"],
        "submission_3": []}  # listed (graded as not submitted), though nothing of it was extracted


def test_zip_entry_that_expands_too_far_skips_its_student(tmp_path):
    exported = _zip(tmp_path / "export.zip", [("submission_1/hw6.py", bytes(6 << 20)),
                                              ("submission_2/hw6.py", "x = 2\n")])
    subs, errors = discover(A, exported, tmp_path / "work")
    assert {s.student: s.problems for s in subs} == {
        "submission_1": ["submission_1/hw6.py is larger than 5 MB: not read"], "submission_2": []}
    assert not (tmp_path / "work" / "export" / "submission_1" / "hw6.py").exists()


def test_zip_sizes_are_the_bytes_read_not_the_header(tmp_path):
    exported = _zip(tmp_path / "export.zip", [("submission_1/hw6.py", bytes(6 << 20)),
                                              ("submission_2/hw6.py", "x = 2\n")])
    data = bytearray(exported.read_bytes())
    central = data.index(b"PK\x01\x02")  # the first entry's central directory record
    data[central + 24:central + 28] = (100).to_bytes(4, "little")  # claims 100 bytes
    local = data.index(b"PK\x03\x04")
    data[local + 22:local + 26] = (100).to_bytes(4, "little")
    exported.write_bytes(bytes(data))
    subs, _ = discover(A, exported, tmp_path / "work")
    assert subs[0].problems[0].startswith("the export's entry 'submission_1/hw6.py' could not be extracted (BadZipFile")
    assert not (tmp_path / "work" / "export" / "submission_1" / "hw6.py").exists()
    assert subs[1].problems == []


def test_zip_bomb_is_refused(tmp_path):
    """An export may expand to 100 times its size, at least 256 MB: 300 KB that expand to 300 MB
    are stopped at 256 MB read, as 2 MB that expand to 2 GB would be."""
    bomb = tmp_path / "bomb.zip"
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            with zf.open(f"submission_{i}/hw6.ipynb", "w") as fh:  # 100 MB each: under the notebook limit
                for _ in range(100):
                    fh.write(chunk)
    assert bomb.stat().st_size < 400 << 10
    with pytest.raises(ExportError, match=re.escape("bomb.zip: expands to more than 256 MB (100 times its size "
                                                    "at most): refused")):
        discover(A, bomb, tmp_path / "work")
    assert sum(p.stat().st_size for p in (tmp_path / "work").rglob("*") if p.is_file()) == 200 << 20


def test_zip_with_too_many_entries_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "MAX_EXPORT_ENTRIES", 3)
    exported = _zip(tmp_path / "export.zip", [(f"submission_{i}/hw6.py", "x = 1\n") for i in range(4)])
    with pytest.raises(ExportError, match=re.escape("export.zip: 4 entries, more than 3: refused")):
        discover(A, exported, tmp_path / "work")


def test_nothing_a_student_names_reaches_the_terminal_raw(tmp_path):
    (tmp_path / "subs" / "eve" / "\x1b]52;c;ZXZpbA==\x07\x1b[2J").mkdir(parents=True)
    (tmp_path / "subs" / "eve" / "\x1b]52;c;ZXZpbA==\x07\x1b[2J" / "hw6.py").symlink_to(REF)
    (tmp_path / "subs" / "eve" / "notes.txt").write_text("")  # eve is a student, not a wrapper folder
    console = Console(file=io.StringIO(), width=300)
    summary = grade_class(A, tmp_path / "subs", tmp_path / "out", jobs=1, progress=False, console=console)
    assert summary.failed == 1
    assert console.file.getvalue() == "eve: not graded: /hw6.py is a symbolic link, not a regular file: not read\n"


def test_an_output_folder_that_is_not_a_folder_costs_only_its_student(tmp_path):
    (tmp_path / "subs" / "alice").mkdir(parents=True)
    (tmp_path / "subs" / "alice" / "hw6.py").symlink_to(REF)
    (tmp_path / "subs" / "bob").mkdir()
    (tmp_path / "subs" / "bob" / "hw6.py").symlink_to(REF)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "alice").write_text("the instructor's notes")
    summary = grade_class(A, tmp_path / "subs", tmp_path / "out", jobs=1, progress=False)
    assert summary.failures == {"alice": f"{tmp_path / 'out' / 'alice'} exists and is not a folder: nothing written "
                                         "for this student",
                                "bob": "hw6.py is a symbolic link, not a regular file: not read"}
    assert (tmp_path / "out" / "alice").read_text() == "the instructor's notes"
    assert is_engine_failure(json.loads((tmp_path / "out" / "bob" / "results.json").read_text()))
    assert sorted(read_scores(tmp_path / "out" / "scores.csv")) == ["alice", "bob"]


def test_a_long_log_keeps_its_beginning_and_its_end(monkeypatch):
    monkeypatch.setattr(pool, "MAX_LOG_CHARS", 10)
    assert pool.cut_log("0123456789") == "0123456789"
    assert pool.cut_log("begin......grader error") == "begin\n[... 13 characters cut ...]\nerror"


def test_two_sessions_on_one_machine_name_their_own_worker_users(monkeypatch):
    """Each session reaps every process of its worker users when a grading ends, so a second
    session names its own with $MLGRADE_WORKER_USER (its pool's extra slots follow the name)."""
    monkeypatch.delenv("MLGRADE_WORKER_USER", raising=False)
    assert [pool._slot_user(k) for k in range(3)] == ["mlgrade", "mlgrade-w1", "mlgrade-w2"]
    monkeypatch.setenv("MLGRADE_WORKER_USER", "mlgrade-ci")
    assert [pool._slot_user(k) for k in range(3)] == ["mlgrade-ci", "mlgrade-ci-w1", "mlgrade-ci-w2"]
