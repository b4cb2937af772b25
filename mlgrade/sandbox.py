"""The lifecycle of one submission's worker: start it, load the submission, ask, time out, replace.

A :class:`Sandbox` owns at most one live worker for one submission. It uses three parts,
each with one job: :mod:`mlgrade.forkserver` (or a fresh ``python -m mlgrade.worker``) to
start a worker, :mod:`mlgrade.containment` to hold and kill it with everything it started,
and :mod:`mlgrade.channel` to exchange frames with it under a wall-clock deadline. Replies
are decoded by :mod:`mlgrade.wire` only. A worker that misses a deadline, crashes or breaks
the protocol is killed and the next call starts a fresh one; a worker that cannot start,
or cannot confine itself as required, is the engine's failure (:class:`EngineFailure`).
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

from mlgrade import wire, worker_errors
from mlgrade.channel import Channel, ChannelClosed, ChannelTimeout, FrameTooLarge
from mlgrade.containment import Containment, prctl, required_missing, worker_env, worker_user, worker_view
from mlgrade.forkserver import ForkedWorker, ForkServerGone, Zygote
from mlgrade.limits import Limits
from mlgrade.worker_errors import ErrorKind

__all__ = ["CallTimeout", "EngineFailure", "Limits", "Reply", "Sandbox", "SandboxReport", "WorkerDied"]

PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE = 36, 4
# a reply holds a few arrays; the grading process must stay well inside Gradescope's 768 MB
MAX_REPLY = 64 << 20
ERROR_KEYS = ("kind", "type", "message", "traceback", "file", "line")
ERROR_CHARS = {"message": 2000, "traceback": 4000}  # longest kept of an error record's fields (others 200)
MSG_NO_LOAD_REPORT = "the worker did not report how loading went"
MSG_TIMEOUT = "did not finish within {seconds:g} s (wall clock); the worker was stopped"


def checked_error(error) -> dict | None:
    """An error record as the worker sent it, or None where it is not one: what the worker says
    about an error is the student's text, so its kind must be one of ErrorKind and each field is
    cut to its length."""
    if not (isinstance(error, dict) and error.get("kind") in worker_errors.KNOWN
            and all(isinstance(v, (str, int)) for v in error.values())):
        return None
    return {k: (v[:ERROR_CHARS.get(k, 200)] if isinstance(v, str) else v) for k, v in error.items() if k in ERROR_KEYS}


class WorkerDied(Exception):
    """The worker exited, was killed or broke the protocol during a request."""

    def __init__(self, reason: str, output: str = ""):
        super().__init__(reason)
        self.reason, self.output = reason, output


class CallTimeout(WorkerDied):
    pass


class EngineFailure(Exception):
    """The sandbox could not be set up: the engine's failure, never the submission's.

    ``reason`` is for the instructor's log; a student only learns that no score was given.
    """

    def __init__(self, reason: str, output: str = ""):
        super().__init__(reason)
        self.reason, self.output = reason, output


@dataclass
class Reply:
    ok: bool
    value: object = None
    error: dict | None = None
    output: str = ""
    seconds: float = 0.0


@dataclass
class SandboxReport:
    """What the sandbox could enforce on this platform (shown to instructors)."""

    user: str = ""
    cgroup: bool = False
    missing: list = field(default_factory=list)
    peak_rss_mb: float = 0.0


def death_reason(returncode: int | None) -> str:
    """How a worker ended, in the words a student reads."""
    if returncode is None:
        return "the worker stopped (it exited, or a limit of the sandbox killed it)"
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = {"SIGKILL": " (killed: memory limit or a limit of the sandbox)", "SIGXCPU": " (CPU time limit)"}.get(name, "")
        return f"the worker was killed by {name}{hint}"
    return f"the worker exited with status {returncode}"


@dataclass
class _Worker:
    """One started worker: its process and its channel."""

    proc: subprocess.Popen | ForkedWorker
    channel: Channel


class Sandbox:
    """One submission's worker: ``call(probe, **kwargs)`` runs a probe in it.

    ``modules`` are the submission's modules as made by :mod:`mlgrade.loading` (name, file,
    chunks); ``protected`` are paths the worker must not see: its root file system is only
    :func:`mlgrade.containment.worker_view`, these are masked in it too, and a worker that
    could still read them is refused when ``require_isolation`` (hidden tests).
    """

    def __init__(self, modules: list[dict], limits: Limits | None = None, protected: list[str] = (), torch: bool = True,
                 zygote: Zygote | None = None, require_isolation: bool = True):
        self.modules = modules
        self.require_isolation = require_isolation
        self.failure: EngineFailure | None = None  # once set, no worker is started again
        self.zygote = zygote
        self.limits = limits or Limits()
        self.protected = [os.path.realpath(p) for p in protected]
        self.torch = torch
        self.user = worker_user()
        self.containment = Containment(self.user, self.limits.memory_mb << 20, self.limits.processes,
                                       spared={zygote.proc.pid} if zygote else set())
        self.worker: _Worker | None = None
        self.load_errors: dict[str, dict] = {}
        self.load_output: dict[str, str] = {}  # what each module printed at import (shown to the student)
        self._starter: threading.Thread | None = None
        self.report = SandboxReport(user=self.user.pw_name if self.user else pwd.getpwuid(os.getuid()).pw_name)
        self.deaths = 0
        self._next_id = 0
        self._tmp = tempfile.mkdtemp(prefix="mlgrade-")
        os.chmod(self._tmp, 0o700)
        self._output_path = os.path.join(self._tmp, "output.txt")
        prctl(PR_SET_DUMPABLE, 0)  # no same-uid ptrace or /proc/pid/mem on the grading process
        prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of the worker come back to us to be killed

    @property
    def proc(self):
        return self.worker.proc if self.worker else None

    # -- lifecycle -----------------------------------------------------------------------

    def _config(self, scratch: str, view_root: str, cgroup_procs: list[str]) -> dict:
        """What a worker needs to confine itself (see mlgrade.confinement.confine)."""
        limits = asdict(self.limits)
        limits["address_space_mb"] = self.limits.rlimit_as(bool(cgroup_procs))
        return {
            "limits": limits,
            "scratch": scratch,
            "uid": self.user.pw_uid if self.user else None,
            "gid": self.user.pw_gid if self.user else None,
            "mask": self.protected,
            # as root, or in an unprivileged user namespace where the kernel allows one
            "view": {"root": view_root, **worker_view()},
            "cgroup_procs": cgroup_procs,
            "torch": self.torch,
        }

    def _start(self) -> None:
        scratch = tempfile.mkdtemp(prefix="work-", dir=self._tmp)
        view_root = tempfile.mkdtemp(prefix="view-", dir=self._tmp)  # a mount point, in the worker only
        if self.user:
            os.chmod(self._tmp, 0o711)  # the worker may enter its scratch dir, list nothing else
            os.chown(scratch, self.user.pw_uid, self.user.pw_gid)
        cgroup_procs = self.containment.prepare()
        self.report.cgroup = bool(cgroup_procs)
        cfg = self._config(scratch, view_root, cgroup_procs)
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        out_fd = os.open(self._output_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
        env = worker_env(scratch)
        cfg["fds"] = [req_r, rep_w]
        try:
            if self.zygote is not None:
                proc = self.zygote.fork({**cfg, "env": env}, [req_r, rep_w, out_fd])
            else:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-m", "mlgrade.worker", json.dumps(cfg)],
                    stdin=subprocess.DEVNULL, stdout=out_fd, stderr=out_fd, env=env, cwd="/",
                    pass_fds=(req_r, rep_w), start_new_session=True,
                )
        except BaseException:
            for fd in (req_w, rep_r):
                os.close(fd)
            raise
        finally:
            for fd in (req_r, rep_w, out_fd):
                os.close(fd)
        os.set_inheritable(req_w, False)
        os.set_inheritable(rep_r, False)
        self.worker = _Worker(proc, Channel(rep_r, req_w))

    def _fail(self, reason: str, output: str = "") -> EngineFailure:
        """Latch the engine's failure: from now on no worker is started and every call raises it."""
        self.failure = EngineFailure(reason, output)
        return self.failure

    def _handshake(self) -> str | None:
        """Wait for the new worker's imports, then load the submission's modules one by one.

        Returns None when the worker is ready, or the name of the module that killed it at import
        (recorded in ``load_errors`` and left out of the next worker); EngineFailure when the
        worker could not start or confine itself as required."""
        try:
            hello = self._request({"op": "hello"}, self.limits.load_timeout)
            missing = [str(m) for m in hello.value["missing"]]
        except (WorkerDied, TypeError, KeyError) as exc:
            # no student code exists in a worker before it answers hello
            raise self._fail(f"the worker could not start: {getattr(exc, 'reason', exc)}",
                             getattr(exc, "output", "")) from None
        self.report.missing = sorted(set(self.report.missing) | set(missing))
        self.containment.confirm(missing)
        unsafe = required_missing(missing, self.require_isolation)
        if unsafe:
            self.kill()
            raise self._fail("the sandbox could not be applied as required: " + ", ".join(unsafe))
        for spec in self.modules:
            if spec["name"] in self.load_errors:
                continue
            try:
                loaded = self._request({"op": "load", "modules": [spec]}, self.limits.load_timeout)
            except WorkerDied as exc:
                # a module that kills its worker at import is not loaded again
                self.load_errors[spec["name"]] = {"kind": ErrorKind.LOAD.value, "type": "the worker died", "message": exc.reason}
                return spec["name"]
            self.load_output[spec["name"]] = loaded.output
            if not loaded.ok:  # the load itself raised (student code can reach the worker's own loading)
                self.load_errors[spec["name"]] = {**loaded.error, "kind": ErrorKind.LOAD.value}
                continue
            reported = loaded.value.get(spec["name"]) if isinstance(loaded.value, dict) else MSG_NO_LOAD_REPORT
            if reported:
                self.load_errors[spec["name"]] = checked_error(reported) or {
                    "kind": ErrorKind.LOAD.value, "type": "the worker broke the protocol", "message": MSG_NO_LOAD_REPORT}
        return None

    def alive(self) -> bool:
        return self.worker is not None and self.worker.proc.poll() is None

    def kill(self) -> None:
        """Kill the worker and everything it started; safe to call at any time."""
        worker, self.worker = self.worker, None
        self.containment.kill(worker.proc.pid if worker else None)
        self.report.peak_rss_mb = self.containment.peak_mb
        if worker is not None:
            worker.proc.wait()
            worker.channel.close()
        self._reap()

    @staticmethod
    def _reap() -> None:
        # orphans re-parented to us by the subreaper flag
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def close(self) -> None:
        if self._starter is not None:
            self._starter.join()
            self._starter = None
        self.kill()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start_async(self) -> None:
        """Start the worker now, and wait for its imports in the background (they overlap the
        grading process's own). A fresh worker is started from this thread, since its
        parent-death signal follows the thread that started it; a fork server's child has
        the fork server as its parent, so there both steps run in the background. What goes
        wrong is latched as the engine's failure (:meth:`_started`), which the first call raises."""
        if self.zygote is None and not self._started(self._start):
            return
        self._starter = threading.Thread(target=self._start_in_background, daemon=True)
        self._starter.start()

    def _start_in_background(self) -> None:
        if self.worker is not None or self._started(self._start):
            self._started(self._handshake)  # a module that killed its worker: ensure_started starts the next

    def _started(self, step) -> bool:
        """Run a start-up step; False when it failed, with the engine's failure latched."""
        try:
            step()
        except EngineFailure:
            return False
        except (OSError, ForkServerGone) as exc:
            self._fail(f"the worker could not be started: {exc}")
            return False
        return True

    def ensure_started(self) -> None:
        if self._starter is not None:
            self._starter.join()
            self._starter = None
        # each round either ends with a live worker or with one more module that killed its
        # worker at import recorded in load_errors (and left out of the next worker)
        for _ in range(len(self.modules) + 1):
            if self.failure is not None:
                raise self.failure
            if self.alive():
                return
            self.kill()
            if self._started(self._start):
                self._handshake()
        if self.failure is not None:
            raise self.failure

    # -- requests ------------------------------------------------------------------------

    def call(self, probe: str, timeout: float | None = None, **kwargs) -> Reply:
        """Run ``probes.<probe>(**kwargs)`` in the worker (started on demand)."""
        self.ensure_started()
        return self._request({"op": "probe", "probe": probe, "kwargs": kwargs}, timeout or self.limits.call_timeout)

    def _request(self, message: dict, timeout: float) -> Reply:
        self._next_id += 1
        message = {"id": self._next_id, **message}
        os.truncate(self._output_path, 0)
        start = time.monotonic()
        try:
            reply = self._exchange(message, start + timeout, timeout)
        except WorkerDied as exc:
            output = self._output()
            self.deaths += 1
            self.kill()
            raise type(exc)(exc.reason, output) from None
        reply.output = self._output()
        reply.seconds = time.monotonic() - start
        return reply

    def _exchange(self, message: dict, deadline: float, timeout: float) -> Reply:
        """Send one request, read its reply; every way the worker can fail it is a WorkerDied."""
        channel = self.worker.channel
        try:
            channel.send(wire.encode(message), deadline)
            data = wire.decode(channel.receive(deadline, MAX_REPLY))
        except ChannelTimeout:
            raise CallTimeout(MSG_TIMEOUT.format(seconds=timeout)) from None
        except ChannelClosed:
            raise WorkerDied(self._death_reason()) from None
        except FrameTooLarge:
            raise WorkerDied("the worker sent an oversized reply") from None
        except wire.WireError as exc:
            raise WorkerDied(f"the worker sent a malformed reply ({exc})") from None
        if not (isinstance(data, dict) and data.get("id") == message["id"] and isinstance(data.get("ok"), bool)):
            raise WorkerDied("the worker's reply did not answer the request (something wrote to the reply channel)")
        if data["ok"]:
            return Reply(ok=True, value=data.get("value"), error=None)
        error = checked_error(data.get("error"))
        if error is None:
            raise WorkerDied("the worker sent a malformed error")
        return Reply(ok=False, value=None, error=error)

    def _death_reason(self) -> str:
        if self.worker is None:
            return "the worker is not running"
        try:
            code = self.worker.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "the worker closed its reply channel"
        return death_reason(code)

    def _output(self) -> str:
        try:
            with open(self._output_path, "rb") as fh:
                data = fh.read(self.limits.output_chars * 4 + 1)
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        if len(text) > self.limits.output_chars or len(data) > self.limits.output_chars * 4:
            text = text[: self.limits.output_chars] + "\n... (output truncated)"
        return text
