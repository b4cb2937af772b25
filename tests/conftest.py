"""Shared fixtures of mlgrade's own tests.

The tests grade on the path users take. The session runs with string hashing fixed, as the
installed command does (:func:`mlgrade.launch.fix_string_hashing`: pytest is started again), and
every in-process grading takes its fork server from the session's :class:`mlgrade.runner.ForkServers`:
the first one is a fork of this process at its clean point, as in ``mlgrade run``, and a grading
after the first imports torch nowhere. `make test` runs the suite in one process per CPU
(pytest-xdist); the engine's wheel and the fresh venvs' torch are still made once per test run
(:func:`once_per_run`).

Sandboxed workers run as an unprivileged user when the tests run as root, and the engine
kills every process of that user when a grading ends. Other gradings on the same machine
(a colleague's ``mlgrade run``, another test session) would kill our workers and we theirs,
so the tests use a user of their own, ``mlgrade-tests``, when it exists
(``useradd --system --no-create-home mlgrade-tests``); otherwise the usual ``mlgrade``; and
each process of an xdist run its own (``mlgrade-gw0``, ...).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import pwd
import shutil
import subprocess
import sys
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
# pytest-xdist runs the suite in several processes: each grades with a worker user of its own
# (``<user>-gw0``, ...; its pools' slots follow the name), or they would reap each other's workers
if os.environ.get("PYTEST_XDIST_WORKER") and os.geteuid() == 0:
    from mlgrade.provision import ensure_user, worker_user_name

    _suffix = f"-{os.environ['PYTEST_XDIST_WORKER']}"
    if not worker_user_name().endswith(_suffix):  # this file is imported twice (as a plugin, by tests)
        os.environ["MLGRADE_WORKER_USER"] = worker_user_name() + _suffix
        ensure_user(os.environ["MLGRADE_WORKER_USER"])


def pytest_configure(config):
    if sys.flags.hash_randomization and os.environ.get("PYTHONHASHSEED") != "0":
        from mlgrade.launch import fix_string_hashing

        capture = config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.stop_global_capturing()  # the new process writes to the terminal, not to our capture files
        fix_string_hashing()


# a test using one of these fixtures starts a Dask cluster
CLUSTER_FIXTURES = {"dask_cluster", "fresh_cluster"}


def pytest_collection_modifyitems(items):
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if CLUSTER_FIXTURES.intersection(fixtures):
            item.add_marker(pytest.mark.cluster)
        if "docker_engine" in fixtures:  # through an image's fixture too (test_own_course)
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session", autouse=True)
def fork_servers():
    """The session's fork servers, one per assignment, used by every grade() given none."""
    from mlgrade.runner import keeping_fork_servers

    with keeping_fork_servers() as servers:
        yield servers


@contextlib.contextmanager
def file_lock(path: Path | str):
    """Held by one process at a time (pytest-xdist runs the suite in several)."""
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def once_per_run(tmp_path_factory, name: str):
    """A folder ``name`` that every process of this test run shares (pytest-xdist starts several):
    yields (folder, True) to the first to ask, which makes what goes in it, and (folder, False),
    once that is done, to the others."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = shared / name, shared / f"{name}.done"
    with file_lock(shared / f"{name}.lock"):
        if done.exists():
            yield folder, False
            return
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        yield folder, True
        done.touch()


@pytest.fixture(scope="session")
def engine_wheel(tmp_path_factory) -> Path:
    """The engine's wheel, built once per test run for every zip the tests build."""
    from mlgrade.build import build_wheel

    with once_per_run(tmp_path_factory, "wheel") as (folder, first):
        if first:
            build_wheel(folder)
        (wheel,) = folder.glob("*.whl")
        return wheel


TORCH = "torch==2.13.0"  # the CPU build the README has users install first


@pytest.fixture(scope="session")
def torch_venv(tmp_path_factory) -> Path:
    """A venv with torch installed the README's way (``pip install torch==2.13.0``), once per test run:
    every fresh venv of the tests starts from its packages (:func:`fresh_venv`)."""
    with once_per_run(tmp_path_factory, "torch-venv") as (folder, first):
        if first:
            subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
            subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            TORCH], check=True, timeout=1200)
        return folder


def _site_packages(venv: Path) -> Path:
    (found,) = (venv / "lib").glob("python3*/site-packages")
    return found


def fresh_venv(folder: Path, torch_venv: Path) -> Path:
    """A new venv at ``folder`` that sees nothing of this machine's packages, with torch and its
    dependencies already in it, as after the README's first step: the files of ``torch_venv``'s
    distributions, hard-linked (the tests only read them), so that torch is unpacked once per test run.
    Its own pip and setuptools are the ones ``python -m venv`` gave it. Returns the venv's bin folder."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    source, target = _site_packages(torch_venv), _site_packages(folder)
    for entry in sorted(source.iterdir()):
        if not (target / entry.name).exists():
            subprocess.run(["cp", "-al", str(entry), str(target)], check=True)
    check = subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "show", "-q", "torch"], capture_output=True)
    assert check.returncode == 0, check.stderr
    return folder / "bin"


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
