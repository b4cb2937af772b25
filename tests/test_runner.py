"""mlgrade.runner's fork servers: the test suite grades on the path the installed command takes.

Each fork server start is one torch import (a fresh ``python -I -m mlgrade.worker``, or the
grading process's own when it is forked from there). A ``sitecustomize`` records every start in
the processes it is loaded in (the grading processes; workers run ``python -I``, without it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

pytest_plugins = ["pytester"]

RECORDER = textwrap.dedent('''
    import json, os
    import mlgrade.forkserver as forkserver

    started = forkserver.Zygote.__init__

    def recorded(self, *args, **kwargs):
        started(self, *args, **kwargs)
        with open(os.environ["FORK_SERVER_STARTS"], "a") as fh:
            fh.write(json.dumps({"pid": os.getpid(), "forked": self.forked,
                                 "hash_randomization": __import__("sys").flags.hash_randomization}) + "\\n")

    forkserver.Zygote.__init__ = recorded
''')

IN_THE_SUITE = textwrap.dedent(f'''
    import json, os
    from pathlib import Path
    from mlgrade.course import open_course
    from mlgrade.runner import grade

    REPO = Path({str(REPO)!r})

    def test_two_gradings():
        hw6 = open_course(REPO).get("ml-hw6")
        scores = []
        for n, submission in enumerate([REPO / "reference" / "ml-hw6", REPO / "student_template" / "ml-hw6"]):
            scores.append(grade(hw6, submission).results["score"])
            with open(os.environ["FORK_SERVER_STARTS"], "a") as fh:
                fh.write(json.dumps({{"graded": n}}) + "\\n")
        assert scores[0] > 0 and scores[1] == 0
''')


def _starts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def recorded(tmp_path, monkeypatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(RECORDER)
    log = tmp_path / "starts.jsonl"
    log.touch()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(REPO)]))
    monkeypatch.setenv("FORK_SERVER_STARTS", str(log))
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)  # as a user's shell has it
    return log


def test_the_suite_grades_through_the_fork_server_mlgrade_run_uses(recorded, pytester, tmp_path):
    # the installed command (the console script's code), on a clean environment
    run = subprocess.run([sys.executable, "-c", "import sys; from mlgrade.launch import main; sys.exit(main())",
                          "run", "ml-hw6", str(REPO / "reference" / "ml-hw6"), "--results", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=600, cwd=REPO)  # the course is found upward
    assert run.returncode == 0, run.stderr[-3000:]
    installed = _starts(recorded)
    assert [(s["forked"], s["hash_randomization"]) for s in installed] == [(True, 0)]

    # a test session of this suite (its conftest) grading twice in process
    recorded.write_text("")
    pytester.makeconftest((REPO / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_in_the_suite=IN_THE_SUITE)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=900)
    result.assert_outcomes(passed=1)
    suite = _starts(recorded)
    # one fork server, forked from the test process as in `mlgrade run`; none started for the second grading
    assert [e for e in suite if "graded" not in e] == [{"pid": suite[0]["pid"], "forked": True, "hash_randomization": 0}]
    assert [e for e in suite if "graded" in e] == [{"graded": 0}, {"graded": 1}]
    assert suite.index({"graded": 0}) == 1, "the fork server starts before the first grading, none after"


def test_a_kept_fork_server_that_died_is_replaced(fork_servers):
    from mlgrade.course import open_course

    hw6 = open_course(REPO).get("ml-hw6")
    first = fork_servers.get(hw6)
    assert fork_servers.get(hw6) is first
    first.proc.kill()
    first.proc.wait()
    second = fork_servers.get(hw6)
    assert second is not first and second.proc.poll() is None
