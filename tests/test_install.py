"""What users run, not this checkout: a fresh venv with `pip install .` of a copy of the
project under /tmp grades every assignment's reference at full marks, and the examples as
the development install does.

Nothing of the development install is visible to it (no --system-site-packages, no
editable install): a dependency missing from pyproject.toml, a file missing from the
wheel, or a worker view that hides a venv under /tmp fails here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mlgrade.course import open_course
from mlgrade.runner import grade
from conftest import REPO, fresh_venv

IDS = [a.id for a in open_course(REPO).assignments() if a.has_graders()]
pytestmark = pytest.mark.fresh_venv
SKIP = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", "dist", "out", ".pytest_cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory, torch_venv) -> tuple[Path, Path]:
    """(the venv's mlgrade command, the copy of the project): both below /tmp."""
    base = tmp_path_factory.mktemp("fresh")
    assert str(base).startswith(("/tmp/", "/var/tmp/")) or os.environ.get("TMPDIR"), base
    project = base / "project"
    shutil.copytree(REPO, project, ignore=SKIP)
    venv = base / "venv"
    # the README's way: the CPU build of torch first (installed once per session), which the package's range accepts
    fresh_venv(venv, torch_venv)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(project)], check=True, timeout=1200)
    # the engine brings no course's libraries: where a course is graded, its assignments' `requires` are
    # installed too (README, "Installing elsewhere")
    requires = sorted({r for a in open_course(REPO).assignments() for r in a.requires})
    subprocess.run([*pip, *requires], check=True, timeout=1200)
    return venv / "bin" / "mlgrade", project


def _run(installed, assignment_id: str, submission: Path, out: Path) -> dict:
    mlgrade, project = installed
    run = subprocess.run([str(mlgrade), "run", assignment_id, str(submission), "--results", str(out)],
                         cwd=project, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("assignment_id", IDS)
def test_a_fresh_install_grades_the_reference_at_full_marks(installed, assignment_id, tmp_path):
    _, project = installed
    results = _run(installed, assignment_id, project / "reference" / assignment_id, tmp_path / "results.json")
    maximum = sum(t["max_score"] for t in results["tests"])
    assert maximum > 0 and results["score"] == maximum, [t["name"] for t in results["tests"] if t["score"] < t["max_score"]]


def test_the_examples_grade_under_tmp_as_in_the_checkout(installed, tmp_path):
    _, project = installed
    hw6 = open_course(REPO).get("ml-hw6")
    for example in sorted(p for p in (project / "examples" / "ml-hw6").iterdir() if p.is_dir()):
        here = _run(installed, "ml-hw6", example, tmp_path / f"{example.name}.json")
        there = grade(hw6, REPO / "examples" / "ml-hw6" / example.name).results
        assert [(t["name"], t["score"]) for t in here["tests"]] == [(t["name"], t["score"]) for t in there["tests"]]
        assert "stopped the worker" not in json.dumps(here), example.name


def test_a_student_self_check_from_a_venv_under_tmp_passes_a_correct_file(installed, tmp_path):
    mlgrade, project = installed
    shutil.copy(project / "reference" / "ml-hw6" / "hw6.py", tmp_path / "hw6.py")
    run = subprocess.run([str(mlgrade), "check", "ml-hw6", "--course", str(project)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "ModuleNotFoundError" not in run.stdout and "Your code printed" not in run.stdout
