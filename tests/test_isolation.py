"""Nothing shared between submissions, and isolation without root (issue: the second hostile corpus).

Each worker has its own PID, IPC, network and mount namespaces: a submission cannot see,
signal or read another's worker or the grading process, and no SysV segment outlives it.
Not as root, an unprivileged user namespace gives the same view; where the kernel allows
none, hidden tests the worker could read give no score (unless --unsafe-no-isolation).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from mlgrade.sandbox import Sandbox
from conftest import REPO

SOURCE = textwrap.dedent('''
    import ctypes, os, signal

    libc = ctypes.CDLL(None, use_errno=True)

    def ping():
        return "pong"

    def kill_everything():
        try:
            os.kill(-1, signal.SIGKILL)  # every process this user may signal
        except OSError as exc:
            return repr(exc)
        return "sent"

    def stop_parent():
        try:
            os.kill(os.getppid(), signal.SIGSTOP)  # as root: another uid; not as root: ignored by pid 1
        except OSError:
            pass
        return os.getppid()

    def shm_create(key):
        return libc.shmget(key, 4096, 0o1666)  # IPC_CREAT | 0666

    def shm_find(key):
        return libc.shmget(key, 0, 0)

    def visible_pids():
        return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())

    def read(path):
        try:
            with open(path, "rb") as fh:
                return fh.read(64).decode("latin-1")
        except OSError as exc:
            return type(exc).__name__
''')


def box(**kw) -> Sandbox:
    return Sandbox([{"name": "m", "file": "m.py", "chunks": [["m.py", SOURCE]]}], torch=False, **kw)


def value(sb: Sandbox, fn: str, *args):
    reply = sb.call("call", target=["m", fn], args=list(args), kwargs={})
    assert reply.ok, reply.error
    return reply.value["value"]


def test_one_worker_cannot_signal_another_or_the_grading_process():
    first, second = box(), box()
    try:
        assert value(first, "ping") == "pong"
        value(second, "kill_everything")  # finds nothing to kill: its namespace holds only itself and pid 1
        assert value(second, "stop_parent") == 1  # its parent is its namespace's pid 1, nothing outside
        assert value(first, "ping") == "pong"  # the neighbour survived
        assert value(second, "visible_pids") == [1, 2]  # only its own namespace
        with open(f"/proc/{os.getpid()}/stat") as fh:
            assert fh.read().rsplit(")", 1)[1].split()[0] not in ("T", "t")  # we were not stopped
    finally:
        first.close()
        second.close()


def test_no_sysv_segment_outlives_a_worker_or_reaches_the_next():
    key = 0x6D6C6701
    first = box()
    try:
        assert value(first, "shm_create", key) >= 0
        assert value(first, "shm_find", key) >= 0
    finally:
        first.close()
    second = box()
    try:
        assert value(second, "shm_find", key) == -1
    finally:
        second.close()
    assert f"0x{key:08x}" not in subprocess.run(["ipcs", "-m"], capture_output=True, text=True).stdout


NOBODY = 65534
SCRIPT = textwrap.dedent('''
    import json, sys
    from mlgrade.sandbox import EngineFailure, Sandbox
    source = "def read(path):\\n    try:\\n        return open(path).read(80)\\n    except OSError as exc:\\n        return type(exc).__name__\\n"
    sb = Sandbox([{{"name": "m", "file": "m.py", "chunks": [["m.py", source]]}}], torch=False,
                 protected=[{protected!r}], require_isolation={require!r})
    try:
        got = sb.call("call", target=["m", "read"], args=[{secret!r}], kwargs={{}}).value["value"]
        print(json.dumps({{"read": got, "missing": sb.report.missing}}))
    except EngineFailure as exc:
        print(json.dumps({{"engine_failure": exc.reason}}))
    finally:
        sb.close()
''')
NO_USER_NAMESPACES = textwrap.dedent('''
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    assert libc.unshare(0x10000000) == 0
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        open(f"/proc/self/{name}", "w").write(text)
    open("/proc/sys/user/max_user_namespaces", "w").write("0")  # a kernel that allows no (more) user namespace
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
''')


@pytest.fixture
def secret():
    """A folder of hidden files that an ordinary user can read by permissions (a laptop's checkout)."""
    base = Path(tempfile.mkdtemp(prefix="mlgrade-secret-", dir="/var/tmp"))
    folder = base / "reference"
    folder.mkdir()
    (folder / "hw6.py").write_text("THE REFERENCE SOLUTION\n")
    for p in (base, folder):
        p.chmod(0o755)
    (folder / "hw6.py").chmod(0o644)
    yield folder
    shutil.rmtree(base, ignore_errors=True)


def _as_nobody(secret: Path, require: bool, wrapper: str | None = None) -> dict:
    if os.geteuid() != 0:
        pytest.skip("needs root to become an ordinary user")
    script = SCRIPT.format(protected=str(secret), require=require, secret=str(secret / "hw6.py"))
    argv = [sys.executable, "-c", script]
    if wrapper:
        argv = [sys.executable, "-c", wrapper, "-c", script]
    run = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
                         capture_output=True, text=True, timeout=120, cwd="/",
                         env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO) if (REPO / "mlgrade").is_dir() else ""})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_not_root_the_worker_sees_only_its_view(secret):
    got = _as_nobody(secret, require=True)
    assert got["read"] == "FileNotFoundError", got
    assert not [m for m in got["missing"] if "namespace" in m or m.startswith("exposed")], got


def test_not_root_without_user_namespaces_hidden_tests_are_refused(secret):
    got = _as_nobody(secret, require=True, wrapper=NO_USER_NAMESPACES)
    assert got == {"engine_failure": f"the sandbox could not be applied as required: exposed {secret}"}
    # the instructor's explicit choice: graded, and the worker can indeed read the file
    got = _as_nobody(secret, require=False, wrapper=NO_USER_NAMESPACES)
    assert got["read"] == "THE REFERENCE SOLUTION\n" and f"exposed {secret}" in got["missing"]
