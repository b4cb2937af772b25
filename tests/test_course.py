"""A course is a folder: found from the current folder upward, or by --course / $MLGRADE_COURSE; its
files are checked when read, with messages naming the file and the key; two courses live side by
side; `mlgrade new` makes one whose scaffold validates as made. The engine names no assignment."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlgrade import scaffold
from mlgrade.course import COURSE_ENV, CourseError, UnknownAssignment, find_course, open_course
from conftest import REPO

CONTRACT = 'id = "{id}"\ntitle = "t"\n[[files]]\nname = "hw.py"\n[exercises]\ndouble = ["double"]\n'


def make_course(root: Path, *ids: str, course_toml: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "mlgrade-course.toml").write_text(course_toml)
    for aid in ids:
        (root / "assignments" / aid).mkdir(parents=True)
        (root / "assignments" / aid / "assignment.toml").write_text(CONTRACT.format(id=aid))
    return root


def mlgrade(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLGRADE_")} | (env or {})
    return subprocess.run([sys.executable, "-m", "mlgrade.cli", *args], cwd=cwd, env=clean,
                          capture_output=True, text=True, timeout=600)


def test_the_engine_names_no_assignment():
    found = [f"{p.relative_to(REPO)}:{n}" for p in (REPO / "mlgrade").rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"ml_hw6|cs446|sheet1[01]", line)]
    assert found == []
    assert not (REPO / "mlgrade" / "assignments").exists()


def test_a_course_is_found_from_any_folder_below_its_root(tmp_path, monkeypatch):
    monkeypatch.delenv(COURSE_ENV, raising=False)
    root = make_course(tmp_path / "course", "hw1")
    deep = root / "examples" / "hw1" / "alice"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_course() == root.resolve()
    assert [a.id for a in open_course().assignments()] == ["hw1"]
    monkeypatch.chdir(tmp_path)  # above it: no course, and a message that says what to do
    with pytest.raises(CourseError, match=re.escape("no mlgrade course here: no mlgrade-course.toml in")):
        open_course()
    monkeypatch.setenv(COURSE_ENV, str(root))
    assert open_course().root == root.resolve()


def test_an_unknown_assignment_names_the_course_and_its_assignments(tmp_path):
    course = open_course(make_course(tmp_path / "c", "hw1", "hw2", course_toml='[course]\nname = "Intro"\n'))
    with pytest.raises(UnknownAssignment, match=re.escape("unknown assignment 'hw3' in the course Intro at")) as info:
        course.get("hw3")
    assert "(its assignments: hw1, hw2)" in str(info.value)


@pytest.mark.parametrize("text, message", [
    ('id = "hw1"\n[[files]]\nname = "hw.py"\n', "assignment.toml: title is required (a one-line title)"),
    ('id = "other"\ntitle = "t"\n[[files]]\nname = "hw.py"\n',
     "assignment.toml: id: expected the folder's name 'hw1', found 'other'"),
    ('id = "hw1"\ntitle = "t"\n[[files]]\nname = "hw.txt"\n', "assignment.toml: files[0]: expected names of .py or .ipynb files"),
    ('id = "hw1"\ntitle = "t"\nrequire = []\n[[files]]\nname = "hw.py"\n', "assignment.toml: unknown key(s) require (known:"),
    ('id = "hw1"\ntitle = "t"\n[[files]]\nname = "hw.py"\n[limits]\ncall_timeout = "20"\n',
     "assignment.toml: limits.call_timeout: expected a number, found '20'"),
    ('id = "hw1"\ntitle = "t"\n[[files]]\nname = "hw.py"\n[exercises]\na = ["f"]\nrequires = ["numpy"]\n',
     "assignment.toml: exercises.requires: `requires` is a key of the contract itself: move it above the first [table]"),
    ('id = "hw1"\ntitle = "t"\n[[files]]\nname = "hw.py"\n[exercises]\na = ["hw1.py"]\n',
     "assignment.toml: exercises.a: expected names of the contract's functions and classes, found 'hw1.py'"),
    ('id = "hw1"\ntitle = "t"\n[[files]\n', "assignment.toml: not valid TOML"),
])
def test_a_contract_mistake_names_the_file_the_key_and_what_is_expected(tmp_path, text, message):
    root = make_course(tmp_path / "c", "hw1")
    (root / "assignments" / "hw1" / "assignment.toml").write_text(text)
    with pytest.raises(CourseError) as info:
        open_course(root).get("hw1")
    assert str(root / "assignments" / "hw1" / "assignment.toml") in str(info.value)
    assert message in str(info.value)


def test_a_course_file_mistake_names_the_key(tmp_path):
    root = make_course(tmp_path / "c", course_toml='[layout]\ngraders = "g"\nmutant = "m"\n')
    with pytest.raises(CourseError, match=re.escape("mlgrade-course.toml: unknown key(s) layout.mutant (known:")):
        open_course(root)


def test_every_path_of_an_assignment_comes_from_the_course_and_its_layout(tmp_path):
    root = make_course(tmp_path / "c", "hw1", course_toml='[layout]\ngraders = "hidden/graders"\n'
                                                         '[course]\nhidden = ["hidden", "reference"]\n')
    (root / "hidden" / "graders" / "hw1").mkdir(parents=True)
    (root / "reference" / "hw1").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "lib" / "shared.py").write_text("X = 1\n")
    (root / "hidden" / "graders" / "hw1" / "test_a.py").write_text("")
    a = open_course(root).get("hw1")
    assert a.graders_dir == root / "hidden" / "graders" / "hw1" and a.has_graders()
    assert a.template_dir == root / "student_template" / "hw1"
    assert a.mutants_dir == root / "tests" / "mutants" / "hw1"
    # one list of what is hidden: the worker's masks, the zip's lock-down and the student bundle
    assert a.protected_paths() == [str(root / "hidden"), str(root / "reference")]
    public = [name for name, _ in a.shipped_files(hidden=False)]
    assert public == ["mlgrade-course.toml", "assignments/hw1/assignment.toml", "lib/shared.py"]
    assert "hidden/graders/hw1/test_a.py" in [name for name, _ in a.shipped_files(hidden=True)]


def test_graders_import_the_assignments_own_modules_as_one_package(tmp_path):
    root = make_course(tmp_path / "c", "hw-1")
    (root / "assignments" / "hw-1" / "worked.py").write_text("EXAMPLE = 'public'\n")
    (root / "graders" / "hw-1").mkdir(parents=True)
    (root / "graders" / "hw-1" / "oracles.py").write_text("def oracle():\n    return 'hidden'\n")
    a = open_course(root).get("hw-1")
    assert a.package == "hw_1"
    with a.importable():
        from hw_1 import oracles, worked  # noqa: PLC0415

        assert (worked.EXAMPLE, oracles.oracle()) == ("public", "hidden")
    # another course's assignment of the same package name gets its own modules
    other = make_course(tmp_path / "d", "hw-1")
    (other / "assignments" / "hw-1" / "worked.py").write_text("EXAMPLE = 'other course'\n")
    with open_course(other).get("hw-1").importable():
        from hw_1 import worked  # noqa: PLC0415

        assert worked.EXAMPLE == "other course"


def test_the_scaffold_validates_as_made_and_two_courses_grade_side_by_side(tmp_path):
    """An instructor's course beside this repository's: each graded from its own folder, in one
    shell, with no environment variable."""
    root = scaffold.new_course(tmp_path / "intro-ml", "Intro to ML")
    made = scaffold.new_assignment(open_course(root), "hw1", "Homework 1")
    assert {p.relative_to(root).as_posix() for p in made} >= {
        "assignments/hw1/assignment.toml", "assignments/hw1/test_public.py", "reference/hw1/hw1.py",
        "graders/hw1/test_standardize.py", "tests/mutants/hw1/standardize_sample_std.toml",
        "examples/hw1/loops/hw1.py", "student_template/hw1/hw1.py"}
    run = mlgrade("validate", "hw1", cwd=root)
    assert run.returncode == 0 and "all good" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
    # its example in its own folder, then ours in ours: neither course sees the other's assignments
    script = (f"cd {root} && {sys.executable} -m mlgrade.cli run hw1 examples/hw1/loops --results {tmp_path}/a.json"
              f" && cd {REPO} && {sys.executable} -m mlgrade.cli run ml-hw6 examples/ml-hw6/alice --results {tmp_path}/b.json"
              f" && cd {root} && {sys.executable} -m mlgrade.cli list")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLGRADE_")}
    shell = subprocess.run(["bash", "-c", script], env=clean, capture_output=True, text=True, timeout=900)
    assert shell.returncode == 0, shell.stdout[-3000:] + shell.stderr[-3000:]
    ours, theirs = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "b.json").read_text())
    assert ours["score"] == sum(t["max_score"] for t in ours["tests"]) == 4
    assert theirs["score"] == 89
    assert "hw1" in shell.stdout and "ml-hw6" not in shell.stdout.split("Intro to ML")[-1]


def test_partial_credit_by_parts(tmp_path):
    """The scaffold's value test has two parts: a submission right on one column only earns half."""
    root = scaffold.new_course(tmp_path / "c")
    scaffold.new_assignment(open_course(root), "hw1")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "hw1.py").write_text("import numpy as np\n\ndef standardize(X):\n    X = np.asarray(X, dtype=float)\n"
                                "    return (X - X.mean()) / X.std()  # over the whole array, not per column\n")
    run = mlgrade("run", "hw1", str(sub), "--results", str(tmp_path / "r.json"), cwd=root)
    assert run.returncode == 0, run.stdout[-3000:]
    (values,) = [t for t in json.loads((tmp_path / "r.json").read_text())["tests"] if "values" in t["name"]]
    assert (values["score"], values["max_score"]) == (1.0, 2.0)
    assert values["output"].startswith("four columns (half of the points): ")
