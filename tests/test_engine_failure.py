"""An engine failure is never a student's score (a grade is right or it is not given).

A worker that cannot start, or a sandbox that cannot be applied where it is required, gives
results.json without a score (mlgrade.results.engine_failure): "The autograder itself
failed", the reason in the instructor's log, exit status 3 from `mlgrade run`.
"""
from __future__ import annotations

import json
import shutil

import pytest

from mlgrade import cli, containment
from mlgrade.course import open_course
from mlgrade.results import is_engine_failure
from mlgrade.runner import grade
from mlgrade.containment import required_missing
from mlgrade.forkserver import Zygote
from mlgrade.sandbox import EngineFailure, Sandbox
from conftest import REPO, relocated

NOT_GRADED = "The autograder itself failed (the instructor has the details). No score was given:"


@pytest.fixture
def hw6_reference(tmp_path):
    folder = tmp_path / "submission"
    folder.mkdir()
    shutil.copy(REPO / "reference" / "ml-hw6" / "hw6.py", folder / "hw6.py")
    return folder


def _stopped_fork_server(**options) -> Zygote:
    zygote = Zygote(**options)
    zygote.proc.kill()
    zygote.proc.wait()
    return zygote


def test_a_worker_that_cannot_start_gives_no_score(hw6_reference, tmp_path):
    out = tmp_path / "results.json"
    zygote = _stopped_fork_server()
    try:
        outcome = grade(open_course(REPO).get("ml-hw6"), hw6_reference, str(out), zygote=zygote)
    finally:
        zygote.close()
    results = json.loads(out.read_text())
    assert results == outcome.results and not outcome.graded and is_engine_failure(results)
    assert results["tests"] == [] and results["score"] == 0
    assert results["output"].startswith(NOT_GRADED)
    assert "the worker could not be started" in results["output"]
    assert "the worker could not be started" in outcome.log
    # nothing tells the student their code crashed
    assert "stopped the worker" not in json.dumps(results) and "Your code" not in json.dumps(results)


def test_a_worker_whose_view_lacks_the_engine_gives_no_score(monkeypatch):
    """The /tmp bug: a view that hides the engine makes the worker exit before hello."""
    if containment.worker_user() is None:
        pytest.skip("the view is built only when grading as root")
    view = dict(containment.worker_view())
    engine = str(REPO / "mlgrade") if (REPO / "mlgrade").is_dir() else None
    view["binds"] = [b for b in view["binds"] if not engine or not b.startswith(engine)]
    view["binds"] = [b for b in view["binds"] if "site-packages" not in b and "dist-packages" not in b]
    monkeypatch.setattr("mlgrade.sandbox.worker_view", lambda: view)
    box = Sandbox([{"name": "m", "file": "m.py", "chunks": [["m.py", "def f():\n    return 1\n"]]}])
    try:
        with pytest.raises(EngineFailure, match="the worker could not start: the worker exited with status 1"):
            box.call("call", target=["m", "f"], args=[], kwargs={})
        with pytest.raises(EngineFailure):  # once failed, never a second attempt that might half-work
            box.call("call", target=["m", "f"], args=[], kwargs={})
        assert "ModuleNotFoundError" in box.failure.output or "ImportError" in box.failure.output
    finally:
        box.close()


def test_the_cli_exits_3_when_no_score_was_given(hw6_reference, tmp_path, monkeypatch):
    monkeypatch.setattr("mlgrade.runner.Zygote", _stopped_fork_server)
    code = cli.main(["run", "ml-hw6", str(hw6_reference), "--results", str(tmp_path / "r.json")])
    assert code == cli.EXIT_NOT_GRADED == 3
    assert is_engine_failure(json.loads((tmp_path / "r.json").read_text()))


def test_a_grader_error_gives_no_score(hw6_reference, tmp_path):
    graders = tmp_path / "graders" / "ml-hw6"
    graders.mkdir(parents=True)
    (graders / "test_g.py").write_text(
        "from mlgrade import check, student\nhw6 = student('hw6')\n\n"
        "@check('kl_loss: fine')\ndef test_fine():\n    assert True\n\n"
        "@check('viterbi: a grader bug')\ndef test_bug():\n    {}['missing']\n")

    a = relocated(open_course(REPO).get("ml-hw6"), graders, public_checks=False)
    outcome = grade(a, hw6_reference, str(tmp_path / "r.json"))
    assert not outcome.graded
    assert outcome.results["output"] == NOT_GRADED + " 1 test(s) hit an error in the grader"
    assert "KeyError: 'missing'" in outcome.log  # the instructor gets the traceback


@pytest.mark.parametrize("missing,required", [
    (["RLIMIT_AS"], ["RLIMIT_AS"]),
    (["root view"], ["root view"]),
    (["exposed /x/reference"], ["exposed /x/reference"]),
    (["namespaces", "cgroup /sys/fs/cgroup/memory/x/cgroup.procs", "read-only /usr"], []),
])
def test_what_the_sandbox_must_apply(missing, required):
    assert required_missing(missing, require_isolation=True) == required
    assert required_missing(["exposed /x", "root view"], require_isolation=False) == []  # public checks, or --unsafe-no-isolation
    assert required_missing(["RLIMIT_CPU"], require_isolation=False) == ["RLIMIT_CPU"]
