"""`mlgrade grade`: a small class graded by the pool matches per-student `mlgrade run`; the report;
re-runs skip unchanged students; Gradescope's export zip; a hanging or crashing submission
never stops the batch."""
from __future__ import annotations

import base64
import csv
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from mlgrade import assignments
from mlgrade.batch import Submission, _Pool, _run, discover, grade_class
from mlgrade.validate import apply_mutant, load_mutants

ROOT = Path(__file__).resolve().parent.parent
A = assignments.get("ml-hw6", ROOT)
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


def test_report_has_images_and_failures(graded):
    _, out, _ = graded
    page = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2
    for img in images:
        assert base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Most common failures" in page
    # carol's mutant fails batchnorm_forward tests: they are listed with a counted message
    assert re.search(r"batchnorm_forward: [^<]*</td><td class=\"n\" rowspan=\"\d+\">\d+%</td><td class=\"n\">\d+</td>", page)


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
    subs = discover(A, _export_zip(tmp_path / "export.zip", wrapper), tmp_path / "work")
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
    (subs / "a_hang" / "hw6.py").write_text(HANG)
    for name in ("b_template", "c_template"):
        shutil.copy(TEMPLATE_NB, subs / name / "hw6.ipynb")
    summary = grade_class(A, subs, tmp_path / "out", jobs=2, timeout=30, progress=False)
    assert (summary.graded, summary.failed) == (2, 1)
    hang = json.loads((tmp_path / "out" / "a_hang" / "results.json").read_text())
    assert hang["score"] == 0 and "longer than 30 s" in hang["output"]
    assert not (tmp_path / "out" / "a_hang" / ".mlgrade-hash").exists()  # retried on the next run
    for name in ("b_template", "c_template"):
        assert json.loads((tmp_path / "out" / name / "results.json").read_text())["tests"]


def fake_grade(student: str, folder: str, results_path: str) -> dict:
    """Stands in for _grade_one in the pool: 'crash' kills its grading process."""
    if "crash" in student:
        os._exit(3)
    return {"student": student, "score": 1.0, "tests": [], "output": "", "pid": os.getpid(), "peak_rss_mb": 0.0}


def test_crashing_grading_process_is_isolated(tmp_path):
    subs = [Submission(name, tmp_path) for name in ("s1", "s2_crash", "s3", "s4", "s5")]
    seen = {}

    def on_done(sub, result, failure):
        assert sub.student not in seen, "each submission is reported once"
        seen[sub.student] = failure or result

    _run(_Pool(A, 2), subs, 2, 60.0, tmp_path, on_done, fn=fake_grade)
    assert sorted(seen) == ["s1", "s2_crash", "s3", "s4", "s5"]
    assert "crashed" in seen["s2_crash"]["output"] and seen["s2_crash"]["score"] == 0
    assert all(seen[s]["score"] == 1.0 for s in ("s1", "s3", "s4", "s5"))
