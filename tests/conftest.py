"""Shared fixtures of mlgrade's own tests.

Sandboxed workers run as an unprivileged user when the tests run as root, and the engine
kills every process of that user when a grading ends. Other gradings on the same machine
(a colleague's ``mlgrade run``, another test session) would kill our workers and we theirs,
so the tests use a user of their own, ``mlgrade-tests``, when it exists
(``useradd --system --no-create-home mlgrade-tests``); otherwise the usual ``mlgrade``.
"""
from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_USER = "mlgrade-tests"
# the corpora are submissions, not tests: tests/hostile/conftest_ini/conftest.py must never be collected
collect_ignore = ["hostile", "broken"]


def relocated(assignment, graders: Path | None = None, public_checks: bool = True, **changes):
    """``assignment`` with its graders read from ``graders`` (its ``<id>`` folder) and, unless
    ``public_checks``, without its public checks: a test's own graders against the real reference.
    Moved through the course's layout, as an instructor's course file would move them."""
    layout = dict(assignment.course.layout)
    if graders is not None:
        layout["graders"] = str(Path(graders).parent)  # absolute: the course root / it is it
    if not public_checks:
        public = Path(tempfile.mkdtemp(prefix="mlgrade-public-")) / assignment.id
        shutil.copytree(assignment.public_dir, public, ignore=shutil.ignore_patterns("test_public*"))
        layout["assignments"] = str(public.parent)
    course = dataclasses.replace(assignment.course, layout=layout)
    return dataclasses.replace(assignment, course=course, **changes)


def _test_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        return None
    return TEST_USER


if _test_user() and "MLGRADE_WORKER_USER" not in os.environ:
    os.environ["MLGRADE_WORKER_USER"] = TEST_USER


def pids_of_uid(uid: int, descendants_only: bool = True) -> list[int]:
    """Live (not zombie) processes of ``uid``; by default only those this test process started.

    The sandbox makes the grading process a child subreaper, so even a double-forked,
    setsid daemon of one of our workers stays a descendant of this process. Other
    gradings on the machine (a colleague's test run as the same user) are not counted.
    """
    found = []
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                status = fh.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry)] = int(fields.get("PPid", "0"))
        if int(fields.get("Uid", "-1").split()[0]) == uid and not fields.get("State", "").strip().startswith("Z"):
            found.append(int(entry))
    if descendants_only:
        found = [pid for pid in found if _descends(pid, os.getpid(), parents)]
    return found


def _descends(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
    for _ in range(1000):
        pid = parents.get(pid, 0)
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
    return False


@pytest.fixture(scope="session")
def worker_uid() -> int | None:
    """The uid that runs student code (None when the tests do not run as root)."""
    from mlgrade.containment import worker_user

    user = worker_user()
    return user.pw_uid if user else None
