"""The fork server: workers started in milliseconds instead of a torch import.

A :class:`Zygote` is ``python -I -m mlgrade.worker`` in zygote mode: it imports numpy and
torch once and never runs student code; each worker is a fork of it that confines itself
exactly as a freshly started worker would (:func:`mlgrade.worker.confine`). The fork server
reaps its children and reports each one's wait status on a pipe of its own, which is how
the grading process learns how a worker ended (:class:`ForkedWorker`).
"""
from __future__ import annotations

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

__all__ = ["ForkServerGone", "ForkedWorker", "Zygote"]


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

    def __init__(self, torch: bool = True):
        import socket

        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cfg = {"zygote": True, "socket_fd": theirs.fileno(), "torch": torch}
        self.proc = subprocess.Popen([sys.executable, "-I", "-m", "mlgrade.worker", json.dumps(cfg)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=worker_env("/"), cwd="/", pass_fds=(theirs.fileno(),), start_new_session=True)
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
