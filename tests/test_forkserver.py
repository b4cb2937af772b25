"""mlgrade.forkserver: the fork server forked from the grading process keeps nothing of it.

Each check runs in a fresh interpreter (a clean point to fork from: one thread, no grading
yet, string hashing fixed), the way `mlgrade run` starts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SECRET = "gs-token-4f1d9c2e7b"

SCRIPT = textwrap.dedent('''
    import json, os, sys
    held = open(sys.argv[1], "rb")  # a file the grading process holds (a reference, results.json)
    from mlgrade.forkserver import Zygote, grading_started
    from mlgrade.sandbox import Limits, Sandbox
    if sys.argv[2] == "late":
        grading_started()
    zygote = Zygote(torch=False)
    import mlgrade_reference_stand_in  # what the graders import after the fork
    source = """
    import os, sys
    def environ():
        import ctypes
        try:
            with open("/proc/self/environ", "rb") as fh:
                shown = fh.read().decode("latin-1")
        except PermissionError:  # a worker that changed its uid is not dumpable: root owns the file
            shown = ""
        # what that file shows, read from memory as any student code can
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[50 - 3]), int(fields[51 - 3])
        return [shown + ctypes.string_at(start, end - start).decode("latin-1"), dict(os.environ)]
    def cmdline():
        with open("/proc/self/cmdline", "rb") as fh:
            return fh.read().decode("latin-1")
    def modules():
        return sorted(sys.modules)
    """
    spec = {"name": "m", "file": "m.py", "chunks": [["m.py", source]]}
    box = Sandbox([spec], Limits(call_timeout=20, load_timeout=60), [], torch=False, zygote=zygote,
                  require_isolation=False)
    def call(fn):
        reply = box.call("call", target=["m", fn], args=[], kwargs={})
        assert reply.ok, (reply.error, reply.output)
        return reply.value["value"]
    environ = call("environ")  # the fork server has served a fork: it is past its own set-up
    with open(f"/proc/{zygote.proc.pid}/environ", "rb") as fh:
        server_environ = fh.read().decode("latin-1")
    server_fds = []
    for fd in os.listdir(f"/proc/{zygote.proc.pid}/fd"):
        try:
            server_fds.append(os.readlink(f"/proc/{zygote.proc.pid}/fd/{fd}"))
        except FileNotFoundError:  # a worker's status pipe, closed as we read
            pass
    print(json.dumps({"forked": zygote.forked, "environ": environ, "cmdline": call("cmdline"),
                      "modules": call("modules"), "server_environ": server_environ, "server_fds": server_fds,
                      "grading_has_stand_in": "mlgrade_reference_stand_in" in sys.modules}))
    box.close()
    zygote.close()
''')


def _run(tmp_path: Path, when: str) -> dict:
    held = tmp_path / "reference_answers.txt"
    held.write_text("the reference\n")
    (tmp_path / "mlgrade_reference_stand_in.py").write_text("ANSWER = 42\n")
    env = {**os.environ, "MLGRADE_TEST_SECRET": SECRET, "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(held), when], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def early(tmp_path_factory) -> dict:
    return _run(tmp_path_factory.mktemp("early"), "early")


def test_the_fork_server_is_forked_at_a_clean_point(early):
    assert early["forked"] is True


def test_a_forked_worker_sees_none_of_the_grading_processs_environment(early):
    raw, environ = early["environ"]
    assert SECRET not in raw and "MLGRADE_TEST_SECRET" not in raw
    assert "MLGRADE_TEST_SECRET" not in environ and SECRET not in json.dumps(environ)
    assert environ["PYTHONHASHSEED"] == "0" and environ["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert SECRET not in early["server_environ"] and "PYTHONPATH" not in early["server_environ"]


def test_a_forked_worker_does_not_show_the_grading_command(early):
    assert "reference_answers" not in early["cmdline"] and "-c" not in early["cmdline"].split("\0")


def test_the_fork_server_holds_no_file_of_the_grading_process(early):
    assert not [link for link in early["server_fds"] if "reference_answers" in link]
    # /dev/null as 0-2, its socket, and the status pipe of each live worker
    assert early["server_fds"].count("/dev/null") == 3
    assert all(link == "/dev/null" or link.startswith(("socket:", "pipe:")) for link in early["server_fds"]), early["server_fds"]


def test_what_the_grading_process_imports_after_the_fork_is_not_in_a_worker(early):
    assert early["grading_has_stand_in"]
    assert "mlgrade_reference_stand_in" not in early["modules"]
    assert not [name for name in early["modules"] if name.startswith("mlgrade_reference.")]


def test_after_grading_started_the_fork_server_is_started_fresh(tmp_path):
    late = _run(tmp_path, "late")
    assert late["forked"] is False
    assert SECRET not in late["environ"][0] and "mlgrade_reference_stand_in" not in late["modules"]


def test_the_fork_server_preloads_the_templates_installed_libraries(tmp_path, monkeypatch):
    from mlgrade.course import open_course
    from mlgrade.runner import template_imports

    hw6 = open_course(REPO).get("ml-hw6")
    assert template_imports(hw6) == ["numpy", "torch", "cvxopt", "scipy.special"]
    # a file of that name found first on the path (the current folder of `python -m`) is not imported
    (tmp_path / "cvxopt.py").write_text("raise SystemExit('imported into the grading process')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # as in a grading process that has not imported it yet (earlier tests of this run may have)
    for name in [m for m in sys.modules if m == "cvxopt" or m.startswith("cvxopt.")]:
        monkeypatch.delitem(sys.modules, name)
    assert template_imports(hw6) == ["numpy", "torch", "scipy.special"]
