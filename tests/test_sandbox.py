"""mlgrade.sandbox and mlgrade.worker: limits, deaths, replacement, confinement, output."""
from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import textwrap
import time

import pytest
from conftest import pids_of_uid

from mlgrade.containment import worker_user
from mlgrade.sandbox import CallTimeout, Limits, Sandbox, WorkerDied

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="confinement by user, namespaces and cgroup needs root")

SOURCE = textwrap.dedent('''
    import os, signal, socket, sys, time

    def add(a, b):
        return a + b

    def whoami():
        return [os.getuid(), os.getgid(), os.getcwd()]

    def loop():
        while True:
            pass

    def sleep(s):
        time.sleep(s)
        return s

    def exit_with(code):
        os._exit(code)

    def kill_self():
        os.kill(os.getpid(), signal.SIGKILL)

    def sys_exit():
        sys.exit(3)

    def talk(n):
        print("x" * n)
        print("to stderr", file=sys.stderr)
        return n

    def listdir(path):
        return sorted(os.listdir(path))

    def read(path):
        with open(path) as fh:
            return fh.read()

    def write(path):
        try:
            with open(path, "w") as fh:
                fh.write("x")
            return "written"
        except OSError as exc:
            return type(exc).__name__

    def connect(host, port):
        try:
            with socket.create_connection((host, port), timeout=3):
                return "connected"
        except OSError as exc:
            return type(exc).__name__

    def hog(mb):
        chunks = []
        for _ in range(mb // 64):
            chunks.append(bytearray(64 << 20))  # zero-filled: every page is touched
        return len(chunks)

    def fork_sleepers(n):
        pids = []
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            pids.append(pid)
        return pids

    def unsupported():
        return object()

    def boom():
        raise ValueError("bad input")
''')


def spec(source: str = SOURCE, name: str = "m") -> dict:
    return {"name": name, "file": f"{name}.py", "chunks": [[f"{name}.py", source]]}


def sandbox(source: str = SOURCE, limits: Limits | None = None, protected=(), **kw) -> Sandbox:
    return Sandbox([spec(source)], limits or Limits(call_timeout=10, load_timeout=30), list(protected), torch=False, **kw)


def call(sb: Sandbox, fn: str, *args, timeout=None):
    return sb.call("call", timeout=timeout, target=["m", fn], args=list(args), kwargs={})


@pytest.fixture(scope="module")
def sb():
    with sandbox() as box:
        yield box


def test_a_call_returns_its_value(sb):
    reply = call(sb, "add", 2, 3)
    assert reply.ok and reply.value == {"value": 5}
    assert reply.seconds < 10


def test_exceptions_come_back_as_records(sb):
    reply = call(sb, "boom")
    assert not reply.ok
    assert reply.error["type"] == "ValueError" and reply.error["message"] == "bad input"
    assert 'raise ValueError("bad input")' in reply.error["traceback"]
    assert "/mlgrade/" not in reply.error["traceback"]


def test_sys_exit_in_a_call_is_an_error_not_a_death(sb):
    deaths = sb.deaths
    reply = call(sb, "sys_exit")
    assert not reply.ok and reply.error["type"] == "SystemExit" and reply.error["message"] == "3"
    assert sb.deaths == deaths and sb.alive()


def test_unsupported_return_value_names_the_culprit(sb):
    reply = call(sb, "unsupported")
    assert reply.error["kind"] == "unsupported"
    assert reply.error["message"] == ("the returned value is an object of type object; only numbers, strings, lists, "
                                      "tuples, dicts, numpy arrays and torch tensors can be graded")


def test_output_is_captured_per_call(sb):
    reply = call(sb, "talk", 5)
    assert sorted(reply.output.splitlines()) == ["to stderr", "xxxxx"]  # stdout is block-buffered
    assert call(sb, "add", 1, 1).output == ""


def test_output_is_truncated():
    with sandbox(limits=Limits(output_chars=100, call_timeout=10, load_timeout=30)) as box:
        reply = call(box, "talk", 100_000)
    assert reply.ok
    assert reply.output == "x" * 100 + "\n... (output truncated)"


def test_a_timeout_stops_and_replaces_the_worker(sb):
    first = sb.proc.pid
    start = time.monotonic()
    with pytest.raises(CallTimeout, match=re.escape("did not finish within 1.5 s (wall clock); the worker was stopped")):
        call(sb, "loop", timeout=1.5)
    assert time.monotonic() - start < 5
    assert not sb.alive()
    assert call(sb, "add", 1, 2).value["value"] == 3
    assert sb.proc.pid != first


def test_sleeping_is_timed_by_the_wall_clock(sb):
    with pytest.raises(CallTimeout, match=re.escape("did not finish within 1 s")):
        call(sb, "sleep", 30, timeout=1)
    assert call(sb, "sleep", 0.1).value["value"] == 0.1


@pytest.mark.parametrize("fn,args,reason", [
    ("exit_with", [3], "the worker exited with status 3"),
    ("exit_with", [0], "the worker exited with status 0"),
    ("kill_self", [], "the worker was killed by SIGKILL (killed: memory limit or a limit of the sandbox)"),
])
def test_worker_death_is_reported_and_the_worker_replaced(sb, fn, args, reason):
    deaths = sb.deaths
    with pytest.raises(WorkerDied, match="^" + re.escape(reason) + "$"):
        call(sb, fn, *args)
    assert sb.deaths == deaths + 1
    assert call(sb, "add", 2, 2).value["value"] == 4


def test_output_before_a_death_is_kept(sb):
    source = SOURCE + "\ndef talk_and_die():\n    print('last words', flush=True)\n    os._exit(1)\n"
    with sandbox(source) as box:
        with pytest.raises(WorkerDied) as info:
            call(box, "talk_and_die")
    assert info.value.output == "last words\n"


def test_load_errors_are_recorded_and_the_worker_survives():
    with sandbox("import sys\nx = 1 / 0\n") as box:
        box.ensure_started()
        assert box.load_errors["m"]["type"] == "ZeroDivisionError"
        assert box.load_errors["m"]["kind"] == "load"
        assert box.alive()


def test_a_module_that_kills_its_worker_at_import_is_not_loaded_again():
    with sandbox("import os\nos._exit(7)\n") as box:
        box.ensure_started()
        assert box.load_errors["m"] == {"kind": "load", "type": "the worker died",
                                        "message": "the worker exited with status 7"}
        assert box.alive()


def test_import_time_loop_is_stopped_by_the_load_timeout():
    with sandbox("while True:\n    pass\n", limits=Limits(load_timeout=2)) as box:
        start = time.monotonic()
        box.ensure_started()
        assert time.monotonic() - start < 15
        assert box.load_errors["m"]["message"] == "did not finish within 2 s (wall clock); the worker was stopped"


# -- confinement (root) -----------------------------------------------------------------------

@needs_root
def test_the_worker_runs_as_the_worker_user_in_its_scratch_dir(sb):
    uid, gid, cwd = call(sb, "whoami").value["value"]
    user = worker_user()
    assert (uid, gid) == (user.pw_uid, user.pw_gid) and uid != 0
    assert os.path.basename(cwd).startswith("work-")
    assert sb.report.user == user.pw_name


@pytest.fixture
def readable_secret():
    """A world-readable folder with a secret, outside the project: file permissions allow reading it."""
    # not under /tmp: the worker's /tmp is private anyway
    folder = tempfile.mkdtemp(prefix="mlgrade-secret-", dir="/run" if os.path.isdir("/run") else "/")
    os.chmod(folder, 0o755)
    with open(os.path.join(folder, "answers.py"), "w") as fh:
        fh.write("SECRET = 42\n")
    os.chmod(os.path.join(folder, "answers.py"), 0o644)
    yield folder
    shutil.rmtree(folder)


def absent(box, path) -> bool:
    """``path`` does not exist in the worker, or is an empty folder there."""
    reply = call(box, "listdir", path)
    if reply.ok:
        return reply.value["value"] == []
    return reply.error["type"] == "FileNotFoundError"


@needs_root
def test_the_worker_sees_only_the_system_and_the_interpreter(sb, readable_secret):
    import mlgrade
    from mlgrade.containment import worker_view

    reply = call(sb, "read", f"{readable_secret}/answers.py")
    assert reply.error["type"] == "FileNotFoundError", reply
    top = set(call(sb, "listdir", "/").value["value"])
    allowed = {path.split("/")[1] for path, _ in worker_view()["links"]} | {path.split("/")[1] for path in worker_view()["binds"]}
    assert top <= allowed | {"tmp", "var"}, top - allowed
    assert absent(sb, readable_secret)
    # the interpreter and the engine are there, read-only
    package = os.path.dirname(mlgrade.__file__)
    assert "worker.py" in call(sb, "listdir", package).value["value"]
    assert call(sb, "write", os.path.join(package, "planted.py")).value["value"] in ("OSError", "PermissionError")
    assert call(sb, "write", "/usr/planted").value["value"] in ("OSError", "PermissionError")
    assert call(sb, "write", "/tmp/mine").value["value"] == "written"
    assert sb.report.missing == []
    assert not os.path.exists(os.path.join(package, "planted.py"))


@needs_root
def test_a_protected_path_inside_the_view_is_masked():
    import mlgrade

    # a folder inside the engine's package, which the view holds (the engine carries no course folder)
    inside = os.path.join(os.path.dirname(mlgrade.__file__), f"masked-by-test-{os.getpid()}")
    os.makedirs(inside)
    try:
        with open(os.path.join(inside, "secret.txt"), "w") as fh:
            fh.write("hidden\n")
        os.chmod(inside, 0o755)
        os.chmod(os.path.join(inside, "secret.txt"), 0o644)
        with sandbox() as box:  # control: the engine's package is in the view
            assert not absent(box, inside)
        with sandbox(protected=[inside]) as box:
            assert absent(box, inside)
            assert box.report.missing == []
        assert os.listdir(inside)  # masked in the worker only
    finally:
        shutil.rmtree(inside, ignore_errors=True)


@needs_root
def test_the_repository_is_hidden_from_the_worker():
    from mlgrade.course import open_course

    from conftest import REPO

    protected = open_course(REPO).get("ml-hw6").protected_paths()
    assert str(REPO / "reference") in protected and str(REPO / "graders") in protected
    with sandbox(protected=protected) as box:
        for folder in ("reference", "graders", "tests", "student_template"):
            assert absent(box, str(REPO / folder)), folder


@needs_root
def test_the_worker_has_no_network(sb):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()  # control: reachable from here
        assert call(sb, "connect", "127.0.0.1", port).value["value"] in ("ConnectionRefusedError", "OSError")
        assert call(sb, "connect", "1.1.1.1", 53).value["value"] == "OSError"
    finally:
        server.close()


@needs_root
def test_the_memory_limit_kills_an_allocation_bomb():
    with sandbox(limits=Limits(memory_mb=512, call_timeout=30, load_timeout=30)) as box:
        assert call(box, "hog", 128).value["value"] == 2
        with pytest.raises(WorkerDied, match=re.escape("the worker was killed by SIGKILL (killed: memory limit")):
            call(box, "hog", 4096)
        assert box.report.cgroup
        assert call(box, "add", 1, 1).value["value"] == 2  # a fresh worker


def test_a_memory_bomb_stops_at_the_first_limit_it_meets():
    """In a cgroup (root) the 512 MB memory limit kills the worker before the 1536 MB address
    space runs out; without one, the allocation past the address-space limit raises MemoryError
    in the worker, which goes on serving calls."""
    limits = Limits(memory_mb=512, address_space_mb=1536, call_timeout=30, load_timeout=30)
    with sandbox(limits=limits) as box:
        box.ensure_started()
        in_cgroup = box.containment.has_cgroup
        if in_cgroup:
            with pytest.raises(WorkerDied, match="SIGKILL"):
                call(box, "hog", 8192)
        else:
            reply = call(box, "hog", 8192)
            assert (reply.ok, reply.error["type"]) == (False, "MemoryError")
        assert call(box, "add", 2, 3).value["value"] == 5


def _alive_descendants() -> set[int]:
    from mlgrade.containment import _descendants

    alive = set()
    for pid in _descendants(os.getpid()):
        try:
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
                alive.add(pid)
        except OSError:
            pass
    return alive


def test_forked_children_die_with_the_worker(worker_uid):
    before = set(pids_of_uid(worker_uid)) if worker_uid is not None else set()  # the module's own worker
    ours = _alive_descendants()
    box = sandbox(limits=Limits(processes=64, call_timeout=10, load_timeout=30))
    try:
        children = call(box, "fork_sleepers", 5).value["value"]
        assert len(children) == 5
    finally:
        box.close()
    time.sleep(0.1)
    # the pids the worker saw are those of its own PID namespace: look from here instead
    assert _alive_descendants() <= ours
    if worker_uid is not None:
        assert set(pids_of_uid(worker_uid)) <= before


@needs_root
def test_the_process_limit_stops_a_fork_bomb():
    with sandbox(limits=Limits(processes=32, call_timeout=10, load_timeout=30)) as box:
        box.ensure_started()
        assert box.load_errors == {}
        reply = call(box, "fork_sleepers", 200)
        assert not reply.ok and reply.error["type"] == "BlockingIOError"


def test_close_is_idempotent_and_kills_the_worker():
    box = sandbox()
    call(box, "add", 1, 1)
    pid = box.proc.pid
    box.close()
    box.close()
    assert not os.path.exists(f"/proc/{pid}")
