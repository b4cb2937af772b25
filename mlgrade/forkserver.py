"""The fork server: workers started in milliseconds instead of a torch import.

A :class:`Zygote` runs :func:`mlgrade.forkserver_loop.zygote`: it holds numpy and torch and never runs
student code; each worker is a fork of it that confines itself exactly as a freshly started
worker would (:func:`mlgrade.confinement.confine`). The fork server reaps its children and reports
each one's wait status on a pipe of its own, which is how the grading process learns how a
worker ended (:class:`ForkedWorker`).

The fork server is itself a fork of the grading process, taken before any grading started in
it (:func:`grading_started`): no grader, reference, submission or results file exists there
yet, so a single ``mlgrade run`` imports torch once. The fork keeps nothing of the grading
process's environment (its variables and the memory ``/proc/self/environ`` reads are wiped),
file descriptors or command line. Where that clean point has passed (another thread runs, a
grading already ran, string hashing is randomized, which a worker started fresh never is),
the fork server is started fresh as ``python -I -m mlgrade.worker`` instead.
"""
from __future__ import annotations

import ctypes
import gc
import io
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time

from mlgrade.containment import worker_env

__all__ = ["ForkServerGone", "ForkedWorker", "Zygote", "grading_started"]

_GRADING_STARTED = False
PROC_NAME = b"mlgrade-fork-server"


def grading_started() -> None:
    """Called before the graders are collected: from now on this process is no clean point to fork."""
    global _GRADING_STARTED
    _GRADING_STARTED = True


def _clean_point() -> bool:
    """Whether a fork of this process now holds nothing a worker may not see, and behaves like a fresh one."""
    # PYTHONHASHSEED=0 in a fresh worker (containment.worker_env): same set order in every run
    return not _GRADING_STARTED and threading.active_count() == 1 and sys.flags.hash_randomization == 0


class ForkServerGone(Exception):
    """The fork server could not start a worker (it stopped, or its socket broke)."""


class ForkedWorker:
    """A worker forked by a :class:`Zygote`: not our child; the fork server reports its exit
    status on ``status_fd`` (four bytes, a wait status) when it has reaped it."""

    def __init__(self, pid: int, status_fd: int):
        self.pid = pid
        self.returncode = None
        self._status_fd = status_fd

    def poll(self):
        if self.returncode is not None:
            return self.returncode
        readable, _, _ = select.select([self._status_fd], [], [], 0)
        if not readable:
            return None
        data = os.read(self._status_fd, 4)
        os.close(self._status_fd)
        self._status_fd = -1
        # a fork server that died without reporting: the worker died with it (parent-death signal)
        self.returncode = os.waitstatus_to_exitcode(struct.unpack("<i", data)[0]) if len(data) == 4 else -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None):
        deadline = time.monotonic() + (timeout if timeout is not None else 10)
        while self.poll() is None:
            if time.monotonic() > deadline:
                if timeout is not None:
                    raise subprocess.TimeoutExpired("worker", timeout)
                break
            time.sleep(0.005)
        return self.returncode


class Zygote:
    """A fork server for workers (``mlgrade.worker`` in zygote mode).

    It imports numpy and torch once; each worker is then a fork that confines itself like
    a fresh one, in milliseconds instead of a torch import. For batch grading, where one
    grading process grades many submissions. It never runs student code itself.
    """

    def __init__(self, torch: bool = True, preload: list[str] = ()):
        """``preload``: library modules every worker would import anyway (what the template imports)."""
        import socket

        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cfg = {"zygote": True, "socket_fd": theirs.fileno(), "torch": torch, "preload": list(preload)}
        self.forked = _clean_point()
        if self.forked:
            self.proc = _fork_server(cfg, self._sock)
        else:
            self.proc = subprocess.Popen(_fresh_command(cfg), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, env=worker_env("/"), cwd="/",
                                         pass_fds=(theirs.fileno(),), start_new_session=True)
        theirs.close()
        self._lock = threading.Lock()

    def fork(self, cfg: dict, fds: list[int]) -> ForkedWorker:
        import socket

        status_r, status_w = os.pipe()
        with self._lock:
            self._sock.settimeout(120)  # the first fork waits for the zygote's own imports
            try:
                socket.send_fds(self._sock, [json.dumps(cfg).encode()], [*fds, status_w])
                reply = self._sock.recv(4096)
            except OSError as exc:
                os.close(status_r)
                raise ForkServerGone(f"the worker could not be started ({exc})") from None
            finally:
                os.close(status_w)
        if not reply:
            os.close(status_r)
            raise ForkServerGone("the worker could not be started (the fork server stopped)")
        os.set_inheritable(status_r, False)
        return ForkedWorker(int(json.loads(reply)["pid"]), status_r)

    def close(self) -> None:
        self._sock.close()
        self.proc.kill()
        self.proc.wait()


class ForkServerProcess:
    """The forked fork server, our child: what :class:`Zygote` users need of a Popen."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None

    def poll(self):
        return self._wait(os.WNOHANG)

    def wait(self, timeout: float | None = None):
        return self._wait(0)

    def _wait(self, flags: int):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:  # reaped by the sandbox's sweep of orphans (Sandbox._reap)
                pid, status = self.pid, signal.SIGKILL
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _fresh_command(cfg: dict) -> list[str]:
    return [sys.executable, "-I", "-m", "mlgrade.worker", json.dumps(cfg)]


def _fork_server(cfg: dict, ours) -> ForkServerProcess:
    if cfg["torch"]:
        import torch  # noqa: F401  once, for the grading process (graders use it) and every worker
    import numpy  # noqa: F401
    from mlgrade.worker import preload

    preload(cfg["preload"])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()  # not printed twice by the fork
        except Exception:
            pass
    pid = os.fork()
    if pid:
        return ForkServerProcess(pid)
    try:
        ours.close()
        _leave_grading_process(cfg)
        from mlgrade import forkserver_loop

        forkserver_loop.zygote(cfg)
    except BaseException:
        pass
    os._exit(1)  # never back into the grading process's code


def _leave_grading_process(cfg: dict) -> None:
    """In the fork: drop what belongs to the grading process, or become a fresh fork server."""
    keep_fd = cfg["socket_fd"]
    os.setsid()
    os.chdir("/")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, os.sysconf("SC_OPEN_MAX"))
    # the grading process's stream objects may wrap descriptors just closed (pytest's capture)
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8")
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                                   encoding="utf-8", errors="backslashreplace", line_buffering=True)
    # objects of the grading process are never freed here (a file object's close would hit a
    # descriptor number that is reused), and their pages stay shared with it
    gc.freeze()
    os.environ.clear()
    if not _wipe_inherited_memory():
        # the variables' bytes could not be wiped: a fresh interpreter has none of them
        os.set_inheritable(keep_fd, True)
        os.execve(sys.executable, _fresh_command(cfg), worker_env("/"))
    os.environ.update(worker_env("/"))
    # the import path of `python -I`: neither the script's folder nor the current one
    added = [] if sys.flags.isolated or sys.flags.safe_path else sys.path[:1]
    sys.path[:] = [p for p in sys.path if p and p not in added]


def _wipe_inherited_memory() -> bool:
    """Zero the environment strings and the command line the fork shares with the grading process.

    After ``os.environ.clear()`` no pointer of libc's ``environ`` refers to them, but the bytes
    stay where the kernel placed them at exec, and ``/proc/self/environ`` reads that memory:
    Gradescope's tokens, had the grading process any. Fields 48-51 of ``/proc/self/stat`` say
    where (Linux 3.5 and later).
    """
    try:
        libc = ctypes.CDLL(None)
        libc.clearenv()
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        arg_start, arg_end, env_start, env_end = (int(fields[n - 3]) for n in (48, 49, 50, 51))
        if not (0 < arg_start <= arg_end <= env_start <= env_end):
            return False
        ctypes.memset(env_start, 0, env_end - env_start)
        ctypes.memset(arg_start, 0, arg_end - arg_start)
        name = PROC_NAME[: max(arg_end - arg_start - 1, 0)]
        ctypes.memmove(arg_start, name, len(name))
        return True
    except (OSError, ValueError, IndexError, AttributeError):
        return False
