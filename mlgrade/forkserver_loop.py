"""The fork server's loop, in the fork server process (:class:`mlgrade.forkserver.Zygote` is the
grading process's side of it).

:func:`zygote` imports numpy and torch once and then, for each request on its unix socket (a
worker's config and its request, reply, output and exit-status descriptors), forks a child that
confines itself exactly as a freshly started worker does (:func:`mlgrade.confinement.confine`)
and only then serves (:func:`mlgrade.worker.serve`). It never runs student code itself; it reaps
its children and writes each one's wait status to that child's status descriptor.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import sys

from mlgrade.confinement import PR_SET_PDEATHSIG, confine, load_libc
from mlgrade.worker import import_libraries, serve

__all__ = ["zygote"]


def zygote(cfg: dict) -> None:
    """A fork server: numpy and torch imported once, one forked worker per request.

    It never runs student code: each request (a config and the worker's request, reply and
    output fds, over a unix socket) is forked into a child that confines itself exactly as
    a freshly started worker does, and only then serves.
    """
    import socket

    # a fork server and its workers must not outlive the grading process that owns them,
    # even when that process is SIGKILLed (a batch timeout): no cleanup code would run then
    load_libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    import_libraries(cfg.get("torch", True), cfg.get("preload", ()))
    sock = socket.socket(fileno=cfg["socket_fd"])
    status_fds: dict[int, int] = {}  # child pid -> where its exit status goes (the grading process reads it)

    def reap(*_):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fd = status_fds.pop(pid, None)
            if fd is not None:
                try:
                    os.write(fd, struct.pack("<i", status))
                except OSError:
                    pass
                os.close(fd)

    signal.signal(signal.SIGCHLD, reap)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 20, 4)
        except OSError:
            os._exit(0)
        if not msg or len(fds) != 4:
            os._exit(0)
        child_cfg = json.loads(msg)
        sys.stdout.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # the pid is recorded before it can be reaped
        pid = os.fork()
        if pid == 0:
            sock.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            for fd in (fds[3], *status_fds.values()):
                os.close(fd)  # only the fork server reports exit statuses
            os.setsid()
            request_fd, reply_fd, out_fd = fds[:3]
            os.dup2(out_fd, 1)
            os.dup2(out_fd, 2)
            os.close(out_fd)
            os.environ.clear()
            os.environ.update(child_cfg["env"])
            missing = confine(child_cfg)
            try:
                serve(request_fd, reply_fd, missing)
            finally:
                os._exit(0)
        for fd in fds[:3]:
            os.close(fd)
        status_fds[pid] = fds[3]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        sock.send(json.dumps({"pid": pid}).encode())
