"""Hostile cases against verdicts the worker could fake: input preservation and refusals.

Each case is staged as tests/test_hostile.py stages its corpus (``wrong_stubs.py`` first,
so every other function is wrong on purpose) and graded by :func:`mlgrade.runner.grade`
with the real ml-hw6 assignment, except that the graders are the real ``test_svm.py`` (and
the graders' conftest.py) beside tests/test_hostile.py's seven compact checks and
one ``.call`` form of assert_unchanged. Every case is graded a second
time with the attack's target disarmed (no ``refuse``) or the attack removed, to show
what the attack is worth: the points it would otherwise earn.
"""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from mlgrade.course import open_course
from mlgrade.runner import grade
from conftest import REPO, relocated
from test_hostile import HOSTILE, HOSTILE_GRADERS, WRONG_STUBS

REAL_GRADERS = REPO / "graders" / "ml-hw6"
CALL_GRADER = '''"""The .call form of assert_unchanged, beside tests/test_hostile.py's compact graders."""
from mlgrade import assert_close, assert_unchanged, check, reference, student

hw6 = student("hw6")
ref = reference("hw6.py")


@check("batchnorm_forward: correct, and leaves x, gamma and beta unchanged (call)")
def test_bn_unchanged_call(rng):
    x, gamma, beta = rng.normal(size=(6, 3)), rng.normal(size=3), rng.normal(size=3)
    result = hw6.batchnorm_forward.call(x, gamma, beta)
    assert_close(result.value[0], ref.batchnorm_forward(x, gamma, beta)[0], rtol=1e-6, atol=1e-9, name="out")
    assert_unchanged(result, "batchnorm_forward", ["x", "gamma", "beta"])
'''
# test_svm.py: four random problems and the KKT conditions, 2 points each, and the float64 dtype
# test, 1; SVC cannot fit the n=2 problem (both points of one class), so scikit-learn is worth
# the other four and the dtype point
SVM_POINTS = 9.0
ONE_CLASS = "svm_fit: random separable data, n=2, D=2"
UNCHANGED = "batchnorm_forward modified its argument(s) x in place; the caller's arrays must stay as they were " \
            "(work on a copy)"
REFUSED_AT_RUN_TIME = "svm_fit must not use scikit-learn: found `sklearn` (imported while your code ran, in svm_fit)"


def _graders(folder, disarm_refuse: bool):
    folder.mkdir(parents=True)
    shutil.copy(REAL_GRADERS / "conftest.py", folder / "conftest.py")
    svm = (REAL_GRADERS / "test_svm.py").read_text()
    if disarm_refuse:
        assert svm.count('refuse(hw6, "svm_fit", REFUSED)') == 1
        svm = svm.replace('refuse(hw6, "svm_fit", REFUSED)', "pass")
    (folder / "test_svm.py").write_text(svm)
    (folder / "test_hostile_graders.py").write_text(HOSTILE_GRADERS)
    (folder / "test_verdict_graders.py").write_text(CALL_GRADER)
    return folder


def _assignment(tmp_path_factory, name: str, disarm_refuse: bool):
    real = open_course(REPO).get("ml-hw6")
    graders = _graders(tmp_path_factory.mktemp(name) / "ml-hw6", disarm_refuse)
    limits = dataclasses.replace(real.limits, call_timeout=30, load_timeout=30)
    return relocated(real, graders, public_checks=False, limits=limits)


@pytest.fixture(scope="module")
def armed(tmp_path_factory):
    return _assignment(tmp_path_factory, "verdict-graders", disarm_refuse=False)


@pytest.fixture(scope="module")
def disarmed(tmp_path_factory):
    return _assignment(tmp_path_factory, "verdict-graders-no-refuse", disarm_refuse=True)


def _grade(assignment, tmp_path, source: str) -> dict:
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "hw6.py").write_text(WRONG_STUBS.read_text() + "\n\n" + source)
    path = tmp_path / "results.json"
    outcome = grade(assignment, submission, str(path))
    results = json.loads(path.read_bytes())
    assert results == outcome.results
    assert "autograder itself failed" not in results["output"], outcome.log
    assert results["score"] == sum(t["score"] for t in results["tests"])
    return results


def _scores(results: dict) -> dict:
    return {t["name"]: t["score"] for t in results["tests"] if t["score"]}


def _named_outputs(results: dict, prefix: str) -> dict[str, str]:
    outs = {t["name"]: t["output"] for t in results["tests"] if t["name"].startswith(prefix)}
    assert outs, prefix
    return outs


def test_forged_digest_loses_the_unchanged_points(armed, tmp_path):
    results = _grade(armed, tmp_path, (HOSTILE / "forged_digest" / "hw6.py").read_text())
    assert _scores(results) == {"batchnorm_forward: random batch": 1.0}
    checks = {**_named_outputs(results, "batchnorm_forward: leaves"),
              **_named_outputs(results, "batchnorm_forward: correct")}
    assert len(checks) == 2 and all(UNCHANGED in out for out in checks.values()), checks


def test_forged_digest_without_the_write_earns_the_unchanged_points(armed, tmp_path):
    """The same submission with x normalised on a copy: the patches alone cost nothing, the write does."""
    source = (HOSTILE / "forged_digest" / "hw6.py").read_text()
    honest = source.replace("    x -= x.mean(axis=0)\n", "    x = x - x.mean(axis=0)\n").replace(
        "    x *= inv_std\n", "    x = x * inv_std\n")
    assert honest != source
    assert _grade(armed, tmp_path, honest)["score"] == 3.0


def test_computed_import_loses_the_svm_points(armed, tmp_path):
    results = _grade(armed, tmp_path, (HOSTILE / "computed_import" / "hw6.py").read_text())
    assert results["score"] == 0.0
    for name, out in _named_outputs(results, "svm_fit").items():
        assert REFUSED_AT_RUN_TIME in out if name != ONE_CLASS else "raised ValueError" in out


def test_computed_import_earns_the_svm_points_where_nothing_is_refused(disarmed, tmp_path):
    """What the attack is worth: scikit-learn's SVC passes the four svm_fit tests it can fit once refuse is gone."""
    results = _grade(disarmed, tmp_path, (HOSTILE / "computed_import" / "hw6.py").read_text())
    assert results["score"] == SVM_POINTS, _scores(results)


def test_an_import_at_load_time_is_refused_too(armed, tmp_path):
    source = (HOSTILE / "computed_import" / "hw6.py").read_text().replace(
        '    svm = importlib.import_module("skl" + "earn.svm")\n', "")
    source = source.replace("import numpy as np\n",
                            'import numpy as np\n\nsvm = importlib.import_module("skl" + "earn.svm")\n')
    results = _grade(armed, tmp_path, source)
    assert results["score"] == 0.0
    refused = ("svm_fit must not use scikit-learn: found `sklearn` (imported while your code ran, "
               "when hw6.py was loaded)")
    for name, out in _named_outputs(results, "svm_fit").items():
        assert refused in out if name != ONE_CLASS else "raised ValueError" in out
