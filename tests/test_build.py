"""`mlgrade build`: the autograder zip's contents and lock-down, and that no reference code
reaches students (the student bundle and the engine's wheel), by AST comparison."""
from __future__ import annotations

import ast
import os
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from mlgrade.course import open_course
from mlgrade.build import build_autograder, build_student, build_wheel, function_bodies, notebook_source

ROOT = Path(__file__).resolve().parent.parent
IDS = [a.id for a in open_course(ROOT).assignments()]


def _assignment(aid):
    return open_course(ROOT).get(aid)


def reference_bodies(a) -> dict[str, str]:
    """Function bodies of the reference's .py files and notebooks, but those the template gives too
    (a notebook's given helpers, such as the sheet's ``forward``, are public by design)."""
    found = {}
    for path in sorted(a.reference_dir.glob("*.py")) + sorted(a.reference_dir.glob("*.ipynb")):
        source = notebook_source(path.read_text()) if path.suffix == ".ipynb" else path.read_text()
        for dump, name in function_bodies(source).items():
            found[dump] = f"{path.name}:{name}"
    given = [(p.name, p.read_bytes()) for p in sorted(a.template_dir.glob("*")) if p.suffix in (".py", ".ipynb")]
    for _, source in python_sources(given):
        for dump in function_bodies(source):
            found.pop(dump, None)
    return found


def python_sources(names_and_bytes) -> list[tuple[str, str]]:
    """(label, python source) of every .py file and notebook among (name, bytes) pairs."""
    out = []
    for name, data in names_and_bytes:
        if name.endswith(".py"):
            out.append((name, data.decode("utf-8", "replace")))
        elif name.endswith(".ipynb"):
            out.append((name, notebook_source(data.decode())))
        elif name.endswith(".whl"):
            import io

            with zipfile.ZipFile(io.BytesIO(data)) as inner:
                out += python_sources((f"{name}!{i}", inner.read(i)) for i in inner.namelist())
    return out


def leaks(a, names_and_bytes) -> list[str]:
    ref = reference_bodies(a)
    found = []
    for label, source in python_sources(names_and_bytes):
        for dump in function_bodies(source):
            if dump in ref:
                found.append(f"{label} has the body of {ref[dump]}")
    return found


def zip_items(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist() if not i.is_dir()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.mark.parametrize("aid", IDS)
def test_comparison_is_not_vacuous(aid):
    """The check below would see the reference, and a mutant of it, if either leaked."""
    a = _assignment(aid)
    ref = reference_bodies(a)
    functions = sum(len(names) for names in a.exercises.values())
    assert len(ref) >= min(5, functions), f"too few reference functions to compare: {sorted(ref.values())}"
    items = [(p.name, p.read_bytes()) for p in sorted(a.reference_dir.glob("*")) if p.suffix in (".py", ".ipynb")]
    assert len(leaks(a, items)) == len(ref)


@pytest.mark.parametrize("aid", IDS)
def test_student_bundle_has_no_reference(aid, tmp_path):
    a = _assignment(aid)
    bundle = build_student(a, tmp_path)
    items = zip_items(bundle)
    names = [n for n, _ in items]
    # the templates (py and ipynb) and helper modules, the README, the engine
    for template in sorted(p for p in a.template_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        assert f"{aid}/{aid}/{template.relative_to(a.template_dir).as_posix()}" in names
    for public in a.public_tests():  # a course of one assignment: `mlgrade check` finds it from the work folder
        assert f"{aid}/assignments/{aid}/{public.name}" in names
    assert f"{aid}/mlgrade-course.toml" in names and f"{aid}/assignments/{aid}/assignment.toml" in names
    for helper in a.helpers:  # next to the template, as the autograder loads it
        assert dict(items)[f"{aid}/{aid}/{helper}"] == a.helper_path(helper).read_bytes()
    readme = dict(items)[f"{aid}/README.md"].decode()
    assert f"mlgrade check {aid}" in readme and "pip install mlgrade-" in readme and "-r requirements.txt" in readme
    assert dict(items)[f"{aid}/requirements.txt"].decode().split() == a.requires
    assert any(n.endswith(".whl") for n in names)
    # no reference file, by name or content
    ref_files = {p.read_bytes() for p in a.reference_dir.rglob("*") if p.is_file()}
    assert not [n for n in names if "reference/" in n or "graders/" in n]
    assert not [n for n, data in items if data in ref_files]
    # no function body of the reference, in any .py, notebook, or the wheel inside
    assert leaks(a, items) == []


def test_wheel_ships_no_reference_and_no_hidden_test(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        items = [(n, zf.read(n)) for n in names]
    assert "mlgrade/runner.py" in names and "mlgrade/course.py" in names
    assert not [n for n in names if n.endswith("assignment.toml") or "test_public" in n]  # no course in the engine
    for part in ("graders/", "reference/", "student_template/", "tests/", "assignments/"):
        assert not [n for n in names if part in n], part
    hidden = {p.read_bytes() for aid in IDS for d in ("graders", "reference")
              for p in (ROOT / d / aid).rglob("*") if p.is_file()}
    assert not [n for n, data in items if data in hidden]
    for aid in IDS:
        assert leaks(_assignment(aid), items) == []


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory) -> Path:
    return build_autograder(_assignment("ml-hw6"), tmp_path_factory.mktemp("dist"))


def test_autograder_zip_contents(autograder_zip):
    a = _assignment("ml-hw6")
    with zipfile.ZipFile(autograder_zip) as zf:
        names = set(zf.namelist())
        setup = zf.read("setup.sh").decode()
        run = zf.read("run_autograder").decode()
        reqs = zf.read("requirements.txt").decode().split()
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
        graders = {p.relative_to(a.course.root).as_posix(): p.read_bytes() for p in a.graders_dir.rglob("*.py")}
        for name, data in graders.items():
            assert zf.read(name) == data
        for p in a.reference_dir.glob("*.py"):
            assert zf.read(f"reference/ml-hw6/{p.name}") == p.read_bytes()
    assert {"setup.sh", "run_autograder", "requirements.txt", "mlgrade-course.toml", "assignments/ml-hw6/assignment.toml",
            "assignments/ml-hw6/worked_examples.py"} <= names
    assert not [n for n in names if n.startswith("assignments/") and not n.startswith("assignments/ml-hw6/")]
    assert [n for n in names if n.startswith("mlgrade-") and n.endswith(".whl")]
    assert not [n for n in names if n.startswith(("tests/", "student_template/")) or "__pycache__" in n]
    assert modes["setup.sh"] == 0o755 and modes["run_autograder"] == 0o755
    # setup.sh: Python, CPU-only torch first, the pinned rest, the worker user, the lock-down
    assert "torch==2.13.0" in reqs and all("==" in r for r in reqs)
    assert "--index-url https://download.pytorch.org/whl/cpu" in setup
    assert '--no-index --find-links "$SRC/wheelhouse"' in setup
    assert "python3-venv" in setup and "useradd --system" in setup and "bin/mlgrade\" setup-worker" in setup and "setpriv --reuid" in setup
    # run_autograder: the engine on the submission, Gradescope's paths
    assert "export MLGRADE_COURSE=/autograder/source" in run
    assert "for d in graders reference tests data; do" in setup  # the course's one list of hidden folders
    assert "mlgrade run ml-hw6 /autograder/submission --results \"$RESULTS\"" in run
    assert "RESULTS=/autograder/results/results.json" in run
    for script in ("setup.sh", "run_autograder"):
        with zipfile.ZipFile(autograder_zip) as zf:
            subprocess.run(["bash", "-n", "-c", zf.read(script).decode()], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="setup.sh runs as root")
def test_setup_sh_locks_graders_and_reference(autograder_zip, tmp_path):
    src = tmp_path / "source"
    with zipfile.ZipFile(autograder_zip) as zf:
        zf.extractall(src)
    subprocess.run(["bash", str(src / "setup.sh"), "--lock-only"], check=True)
    locked = [p for d in ("graders", "reference") for p in (src / d).rglob("*")]
    assert locked
    for p in [src / "graders", src / "reference", *locked]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))
        assert p.stat().st_uid == 0
    assert stat.S_IMODE(src.stat().st_mode) == 0o711


def test_autograder_zip_is_reproducible(autograder_zip, tmp_path):
    """Same checkout, same bytes: the Docker image is reused while the zip is unchanged."""
    again = build_autograder(_assignment("ml-hw6"), tmp_path)
    assert again.read_bytes() == autograder_zip.read_bytes()


def test_cli_build(tmp_path):
    out = subprocess.run(["mlgrade", "build", "ml-hw6", "--student", "-o", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr + out.stdout
    assert (tmp_path / "ml-hw6-student.zip").is_file()
