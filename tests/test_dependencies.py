"""An assignment declares what its graders and reference import (mlgrade.dependencies): the
package installs it for instructors, the autograder zip pins it, validate names what is missing."""
from __future__ import annotations

import dataclasses
import re
import zipfile
from pathlib import Path

import pytest

from mlgrade.course import open_course
from mlgrade.build import build_autograder, pinned_requirements
from mlgrade.dependencies import _distributions_of, distribution_name, engine_requirements, imported_modules, undeclared_imports
from mlgrade.validate import validate
from conftest import REPO, relocated

IDS = [a.id for a in open_course(REPO).assignments()]


@pytest.mark.parametrize("assignment_id", IDS)
def test_every_import_of_graders_and_reference_is_declared(assignment_id):
    assert undeclared_imports(open_course(REPO).get(assignment_id)) == []


def test_every_requirement_of_the_engine_is_imported_by_the_engine():
    """The engine's wheel brings what the engine needs, nothing a course needs."""
    imported = set()
    for path in (REPO / "mlgrade").rglob("*.py"):
        imported |= {d for module in imported_modules(path.read_text()) for d in _distributions_of(module)}
    engine = {distribution_name(r) for r in engine_requirements()}
    assert engine and engine <= imported, f"required but never imported: {sorted(engine - imported)}"
    for a in open_course(REPO).assignments():
        assert not {distribution_name(r) for r in a.requires} & engine - {"numpy", "torch"}, a.id


@pytest.mark.parametrize("assignment_id", IDS)
def test_the_test_extra_installs_what_each_assignment_requires(assignment_id):
    """`make test` grades this repository's course: its `test` extra carries the course's libraries."""
    import tomllib

    extra = {distribution_name(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())
             ["project"]["optional-dependencies"]["test"]}
    required = {distribution_name(r) for r in open_course(REPO).get(assignment_id).requires}
    assert required <= extra, f"`pip install -e .[test]` would lack {sorted(required - extra)}"


def test_cs446_declares_scikit_learn_and_its_zip_pins_everything_it_installs(tmp_path):
    a = open_course(REPO).get("cs446-hw2")
    assert [distribution_name(r) for r in a.requires] == ["scikit-learn", "scipy"]
    assert not any(p.startswith("scikit-learn==") for p in pinned_requirements(open_course(REPO).get("ml-hw6")))
    with zipfile.ZipFile(build_autograder(a, tmp_path)) as zf:
        pins = zf.read("requirements.txt").decode().split()
    assert pins == pinned_requirements(a) and all(re.fullmatch(r"[a-z0-9-]+==[^=]+", p) for p in pins)
    names = {p.split("==")[0] for p in pins}
    # what scikit-learn and torch pull in is pinned too, not left to the resolver on Gradescope
    assert {"scikit-learn", "joblib", "threadpoolctl", "torch", "sympy", "numpy", "pytest", "rich"} <= names
    assert "mlxtend" not in names and "cvxopt" not in names  # other assignments' libraries


def test_the_package_asks_for_a_torch_range_not_a_pin():
    (torch,) = [r for r in engine_requirements() if distribution_name(r) == "torch"]
    assert "==" not in torch and "<" in torch and ">=" in torch, torch


def test_an_undeclared_import_is_named(tmp_path):
    a = open_course(REPO).get("cs446-hw2")
    assert undeclared_imports(dataclasses.replace(a, requires=[])) == [
        "reference/cs446-hw2/hw2_EM.py imports `scipy` (scipy), which cs446-hw2 does not declare: "
        "add it to `requires` in assignment.toml",
        "reference/cs446-hw2/train.py imports `sklearn` (scikit-learn), which cs446-hw2 does not declare: "
        "add it to `requires` in assignment.toml",
    ]


def test_the_cs446_grader_reads_sklearns_digits_as_load_digits_does():
    """The grader reads the digits file without importing scikit-learn (seconds per grading), so
    the file must stay where scikit-learn keeps it and give the arrays load_digits gives."""
    import ast
    import importlib.util

    import numpy as np
    from sklearn.datasets import load_digits

    # the grader's function alone: importing the grader module needs a grading session
    tree = ast.parse((REPO / "graders" / "cs446-hw2" / "test_resnet.py").read_text())
    (function,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "load_digits"]
    namespace = {"importlib": importlib, "np": np, "Path": Path}
    exec(compile(ast.Module([function], []), "test_resnet.py", "exec"), namespace)
    data, target = namespace["load_digits"]()
    expected = load_digits()
    np.testing.assert_array_equal(data, expected.data)
    np.testing.assert_array_equal(target, expected.target)
    assert data.shape == (1797, 64)


def test_validate_fails_on_an_undeclared_import_before_grading(tmp_path):
    graders = tmp_path / "graders" / "ml-hw6"
    graders.mkdir(parents=True)
    (graders / "test_x.py").write_text("import json\nimport conftest\nfrom . import helpers\nimport mlxtend.data\n")
    (graders / "conftest.py").write_text("import numpy, scipy.special, torch, cvxopt\n")
    a = relocated(open_course(REPO).get("ml-hw6"), graders)
    assert undeclared_imports(a) == [
        "graders/ml-hw6/test_x.py imports `mlxtend` (mlxtend), which ml-hw6 does not declare: "
        "add it to `requires` in assignment.toml"]
    report = validate(a, only="no mutant has this name")
    assert not report.ok
    assert report.verdicts[0].submission == "dependencies" and "`mlxtend`" in report.verdicts[0].detail


def test_imported_modules_are_top_level_absolute_names():
    source = "import a.b\nfrom c.d import e\nfrom . import f\nfrom .g import h\ndef k():\n    import m\n"
    assert imported_modules(source) == {"a", "c", "m"}
