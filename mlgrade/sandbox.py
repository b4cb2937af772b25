"""The grading side of the sandbox: start, talk to, time out and kill worker processes.

A :class:`Sandbox` owns at most one live worker for one submission. Every call has a
wall-clock deadline; a worker that misses it, crashes or exits is killed with everything it
started (process group, cgroup, every process of the worker user), and the next call starts
a fresh one. Replies are decoded by :mod:`mlgrade.wire` only.
"""
from __future__ import annotations

import ctypes
import functools
import json
import os
import pwd
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

from mlgrade import wire

PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE = 36, 4
MAX_REPLY = 512 << 20
ERROR_CHARS = {"message": 2000, "traceback": 4000}  # longest kept of an error record's fields (others 200)
CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass
class Limits:
    """Resource limits of one worker; an assignment may override any of them."""

    memory_mb: int = 1024
    cpu_seconds: int = 600
    processes: int = 64
    file_size_mb: int = 64
    call_timeout: float = 20.0
    load_timeout: float = 60.0
    # per submission (mlgrade.budget): time that calls which time out or stop the worker may
    # lose, and time of all calls together; well inside Gradescope's 10 minutes on half a CPU
    lost_seconds: float = 60.0
    budget_seconds: float = 360.0
    output_chars: int = 2000
    # torch hangs at import under RLIMIT_AS below about 1 GB: this floor only stops runaways
    address_space_mb: int | None = None

    def rlimit_as(self, have_cgroup: bool) -> int:
        if self.address_space_mb:
            return self.address_space_mb
        return max(4096 if have_cgroup else 2 * self.memory_mb, 1536)


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


# what a worker reports missing that makes grading unsafe or unfair: no limits on student code,
# a view the kernel allows but that could not be built, hidden files the worker user can read
def required_missing(missing: list[str], require_isolation: bool) -> list[str]:
    return [m for m in missing if m.startswith("RLIMIT_") or m == "root view"
            or (require_isolation and m.startswith("exposed "))]


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


def worker_env(scratch: str) -> dict:
    """The whole environment of a worker: nothing of the grading process's leaks into it."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": scratch,
        "TMPDIR": scratch,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LANG", "LC_ALL"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


# what a worker started as root sees of the host: the system, the interpreter and the installed
# packages, read-only; any other file (a second checkout, a staged reference, /autograder,
# home folders) is simply not there, whatever its permissions
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/dev", "/proc", "/sys")


def _place(path: str, links: dict, binds: set, depth: int = 0) -> None:
    """Record how to make ``path`` resolve in the view as on the host: symlinks on the way, then a bind."""
    parts = os.path.normpath(path).split("/")[1:]
    current = "/"
    for i, part in enumerate(parts):
        current = os.path.join(current, part)
        if os.path.islink(current) and depth < 16:
            target = os.readlink(current)
            links[current] = target
            _place(os.path.normpath(os.path.join(os.path.dirname(current), target, *parts[i + 1:])), links, binds, depth + 1)
            return
    if os.path.exists(current) and current != "/":  # never the whole host
        binds.add(current)


@functools.lru_cache(maxsize=1)
def worker_view() -> dict:
    """Symlinks and read-only binds that make up a worker's root file system.

    The interpreter's prefixes and site-packages, plus the folder of each package a worker
    imports; an editable install contributes its package folder only, never the checkout
    around it (graders, reference, tests).
    """
    import importlib.util
    import site

    wanted = [*SYSTEM_PATHS, sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()]
    for package in ("mlgrade", "numpy", "torch", "scipy", "cvxopt"):
        spec = importlib.util.find_spec(package)
        if spec and spec.submodule_search_locations:
            wanted.extend(spec.submodule_search_locations)
    links: dict[str, str] = {}
    binds: set[str] = set()
    for path in wanted:
        if os.path.isabs(path):
            _place(path, links, binds)
    # a bind carries everything below it
    binds = {b for b in binds if not any(b != o and b.startswith(o.rstrip("/") + "/") for o in binds)}
    links = {k: v for k, v in links.items() if not any(k.startswith(o.rstrip("/") + "/") for o in binds)}
    return {"links": sorted(links.items()), "binds": sorted(binds)}


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
                raise WorkerDied(f"the worker could not be started ({exc})") from None
            finally:
                os.close(status_w)
        if not reply:
            os.close(status_r)
            raise WorkerDied("the worker could not be started (the fork server stopped)")
        os.set_inheritable(status_r, False)
        return ForkedWorker(int(json.loads(reply)["pid"]), status_r)

    def close(self) -> None:
        self._sock.close()
        self.proc.kill()
        self.proc.wait()


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def worker_user() -> pwd.struct_passwd | None:
    """The unprivileged user that runs student code when grading as root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("MLGRADE_WORKER_USER", "")
    for candidate in filter(None, [name, "mlgrade", "nobody"]):
        try:
            return pwd.getpwnam(candidate)
        except KeyError:
            continue
    raise RuntimeError("grading as root needs an unprivileged user: create 'mlgrade' (useradd --system mlgrade)")


class _Cgroup:
    """A memory + pids cgroup (v2 or v1) holding one worker and all it forks."""

    def __init__(self, memory_bytes: int, pids: int):
        self.dirs: list[str] = []
        name = f"mlgrade-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        if os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers"):
            self._make(f"{CGROUP_ROOT}/{name}", {"memory.max": memory_bytes, "memory.swap.max": 0, "pids.max": pids})
        else:
            self._make(f"{CGROUP_ROOT}/memory/{name}", {"memory.limit_in_bytes": memory_bytes})
            self._make(f"{CGROUP_ROOT}/pids/{name}", {"pids.max": pids})

    def _make(self, path: str, settings: dict) -> None:
        try:
            os.mkdir(path)
        except OSError:
            return
        self.dirs.append(path)
        for key, val in settings.items():
            try:
                with open(f"{path}/{key}", "w") as fh:
                    fh.write(str(val))
            except OSError:
                pass

    @property
    def procs_files(self) -> list[str]:
        return [f"{d}/cgroup.procs" for d in self.dirs]

    def pids(self) -> set[int]:
        found = set()
        for procs in self.procs_files:
            try:
                with open(procs) as fh:
                    found.update(int(line) for line in fh if line.strip())
            except OSError:
                pass
        return found

    def peak_mb(self) -> float:
        for d in self.dirs:
            for key in ("memory.max_usage_in_bytes", "memory.peak"):
                try:
                    with open(f"{d}/{key}") as fh:
                        return int(fh.read()) / 2**20
                except OSError:
                    continue
        return 0.0

    def kill_all(self) -> None:
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs:
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.01)
        self.dirs = []


def kill_user_processes(uid: int) -> None:
    """Kill every process of ``uid`` (a detached daemon included): kill(-1) from that uid."""
    for _ in range(3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.setgid(65534)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        if not _pids_of_uid(uid):
            return
        time.sleep(0.02)


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as fh:
                    for line in fh:
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) == uid:
                                pids.append(int(entry))
                            break
            except OSError:
                pass
    return pids


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


class Sandbox:
    """One submission's worker: ``call(probe, **kwargs)`` runs a probe in it.

    ``modules`` are the submission's modules as made by :mod:`mlgrade.loading` (name, file,
    chunks); ``protected`` are paths the worker must not see. As root the worker sees only
    :func:`worker_view` and these are masked in it too; elsewhere they are expected
    unreadable by file permissions.
    """

    def __init__(self, modules: list[dict], limits: Limits | None = None, protected: list[str] = (), torch: bool = True,
                 zygote: "Zygote | None" = None, require_isolation: bool = True):
        self.modules = modules
        self.require_isolation = require_isolation
        self.failure: EngineFailure | None = None  # once set, no worker is started again
        self.zygote = zygote
        self.limits = limits or Limits()
        self.protected = [os.path.realpath(p) for p in protected]
        self.torch = torch
        self.user = worker_user()
        self.proc: subprocess.Popen | None = None
        self.cgroup: _Cgroup | None = None
        self.load_errors: dict[str, dict] = {}
        self.load_output: dict[str, str] = {}
        self._starter: threading.Thread | None = None
        self._uncontained = False  # a worker ran outside a cgroup: kill by user or descendants
        self.report = SandboxReport(user=self.user.pw_name if self.user else pwd.getpwuid(os.getuid()).pw_name)
        self.deaths = 0
        self._next_id = 0
        self._tmp = tempfile.mkdtemp(prefix="mlgrade-")
        os.chmod(self._tmp, 0o700)
        self._output_path = os.path.join(self._tmp, "output.txt")
        _prctl(PR_SET_DUMPABLE, 0)  # no same-uid ptrace or /proc/pid/mem on the grading process
        _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of the worker come back to us to be killed

    # -- lifecycle -----------------------------------------------------------------------

    def _start(self) -> None:
        scratch = tempfile.mkdtemp(prefix="work-", dir=self._tmp)
        view_root = tempfile.mkdtemp(prefix="view-", dir=self._tmp)  # a mount point, in the worker only
        if self.user:
            os.chmod(self._tmp, 0o711)  # the worker may enter its scratch dir, list nothing else
            os.chown(scratch, self.user.pw_uid, self.user.pw_gid)
            try:
                self.cgroup = _Cgroup(self.limits.memory_mb << 20, self.limits.processes)
            except OSError:
                self.cgroup = None
        have_cgroup = bool(self.cgroup and self.cgroup.dirs)
        self.report.cgroup = have_cgroup
        limits = asdict(self.limits)
        limits["address_space_mb"] = self.limits.rlimit_as(have_cgroup)
        cfg = {
            "limits": limits,
            "scratch": scratch,
            "uid": self.user.pw_uid if self.user else None,
            "gid": self.user.pw_gid if self.user else None,
            "mask": self.protected,
            # as root, or in an unprivileged user namespace where the kernel allows one
            "view": {"root": view_root, **worker_view()},
            "cgroup_procs": self.cgroup.procs_files if have_cgroup else [],
            "torch": self.torch,
        }
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        out_fd = os.open(self._output_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
        env = worker_env(scratch)
        cfg["fds"] = [req_r, rep_w]
        try:
            if self.zygote is not None:
                self.proc = self.zygote.fork({**cfg, "env": env}, [req_r, rep_w, out_fd])
            else:
                self.proc = subprocess.Popen(
                    [sys.executable, "-I", "-m", "mlgrade.worker", json.dumps(cfg)],
                    stdin=subprocess.DEVNULL, stdout=out_fd, stderr=out_fd, env=env, cwd="/",
                    pass_fds=(req_r, rep_w), start_new_session=True,
                )
        finally:
            for fd in (req_r, rep_w, out_fd):
                os.close(fd)
        self._req, self._rep = req_w, rep_r
        os.set_inheritable(self._req, False)
        os.set_inheritable(self._rep, False)
        self._have_cgroup = have_cgroup
        self._uncontained = True  # until the worker says it joined its cgroup

    def _handshake(self) -> None:
        """Wait for the new worker's imports, then load the submission's modules one by one."""
        have_cgroup = self._have_cgroup
        try:
            hello = self._request({"op": "hello"}, self.limits.load_timeout)
            missing = [str(m) for m in hello.value["missing"]]
        except (WorkerDied, TypeError, KeyError) as exc:
            # no student code exists in a worker before it answers hello
            output = getattr(exc, "output", "")
            self.failure = EngineFailure(f"the worker could not start: {getattr(exc, 'reason', exc)}", output)
            raise self.failure from None
        self.report.missing = sorted(set(self.report.missing) | set(missing))
        unsafe = required_missing(missing, self.require_isolation)
        if unsafe:
            self.kill()
            self.failure = EngineFailure("the sandbox could not be applied as required: " + ", ".join(unsafe))
            raise self.failure
        # everything the worker starts dies with it in its cgroup, or with its PID namespace's pid 1
        in_cgroup = have_cgroup and not any(m.startswith("cgroup") for m in missing)
        self._uncontained = not in_cgroup and "pid namespace" in missing or "namespaces" in missing and not in_cgroup
        for spec in self.modules:
            if spec["name"] in self.load_errors:
                continue
            try:
                loaded = self._request({"op": "load", "modules": [spec]}, self.limits.load_timeout)
            except WorkerDied as exc:
                # a module that kills its worker at import is not loaded again
                self.load_errors[spec["name"]] = {"kind": "load", "type": "the worker died", "message": exc.reason}
                return  # the next call starts a worker without it
            self.load_errors.update({name: err for name, err in loaded.value.items() if err})
            self.load_output[spec["name"]] = loaded.output

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """Kill the worker and everything it started; safe to call at any time."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.cgroup:
            self.report.peak_rss_mb = max(self.report.peak_rss_mb, self.cgroup.peak_mb())
            self.cgroup.remove()
            self.cgroup = None
        if not self._uncontained:
            pass  # nothing ran, or everything the worker started was in its cgroup, now empty
        elif self.user:
            # without a cgroup: every process of the worker user (one grading per machine, as on Gradescope)
            kill_user_processes(self.user.pw_uid)
            self._uncontained = False
        else:
            spared = {self.zygote.proc.pid} if self.zygote else set()
            for pid in set(_descendants(os.getpid())) - spared:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._uncontained = False
        if self.proc is not None:
            self.proc.wait()
            self.proc = None
            for fd in (self._req, self._rep):
                try:
                    os.close(fd)
                except OSError:
                    pass
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

    # -- requests ------------------------------------------------------------------------

    def start_async(self) -> None:
        """Start the worker now, and wait for its imports in the background (they overlap the
        grading process's own). The process is started from this thread: its parent-death
        signal follows the thread that started it."""
        if self.zygote is None:
            try:
                self._start()
            except (OSError, WorkerDied):
                return  # the first call starts it again and reports why
        # a fork server's child has the fork server as its parent: both steps may run here
        self._starter = threading.Thread(target=self._handshake_quietly, daemon=True)
        self._starter.start()

    def _handshake_quietly(self) -> None:
        try:
            if self.proc is None:
                self._start()
            self._handshake()
        except (OSError, WorkerDied, EngineFailure):
            pass  # the first call starts it again, or reports the failure

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
            try:
                self._start()
            except (OSError, WorkerDied) as exc:
                self.failure = EngineFailure(f"the worker could not be started: {getattr(exc, 'reason', exc)}")
                raise self.failure from None
            self._handshake()

    def call(self, probe: str, timeout: float | None = None, **kwargs) -> Reply:
        """Run ``probes.<probe>(**kwargs)`` in the worker (started on demand)."""
        self.ensure_started()
        return self._request({"op": "probe", "probe": probe, "kwargs": kwargs}, timeout or self.limits.call_timeout)

    def _request(self, message: dict, timeout: float) -> Reply:
        self._next_id += 1
        message = {"id": self._next_id, **message}
        os.truncate(self._output_path, 0)
        start = time.monotonic()
        self._timeout = timeout
        try:
            payload = wire.encode(message)
            frame = struct.pack("<Q", len(payload)) + payload
            self._write(frame, start + timeout)
            reply = self._read_reply(message["id"], start + timeout)
        except WorkerDied as exc:
            output = self._output()
            self.deaths += 1
            self.kill()
            raise type(exc)(exc.reason, output) from None
        reply.output = self._output()
        reply.seconds = time.monotonic() - start
        return reply

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CallTimeout(self._timeout_reason())
            _, writable, _ = select.select([], [self._req], [], remaining)
            if writable:
                try:
                    view = view[os.write(self._req, view[: 1 << 16]):]
                except BrokenPipeError:
                    raise WorkerDied(self._death_reason()) from None

    def _read_exact(self, n: int, deadline: float) -> bytes:
        chunks = []
        while n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CallTimeout(self._timeout_reason())
            readable, _, _ = select.select([self._rep], [], [], remaining)
            if not readable:
                raise CallTimeout(self._timeout_reason())
            chunk = os.read(self._rep, min(n, 1 << 20))
            if not chunk:
                raise WorkerDied(self._death_reason())
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _read_reply(self, request_id: int, deadline: float) -> Reply:
        (n,) = struct.unpack("<Q", self._read_exact(8, deadline))
        if n > MAX_REPLY:
            raise WorkerDied("the worker sent an oversized reply")
        try:
            data = wire.decode(self._read_exact(n, deadline))
        except wire.WireError as exc:
            raise WorkerDied(f"the worker sent a malformed reply ({exc})") from None
        if not (isinstance(data, dict) and data.get("id") == request_id and isinstance(data.get("ok"), bool)):
            raise WorkerDied("the worker's reply did not answer the request (something wrote to the reply channel)")
        error = data.get("error")
        if not data["ok"] and not (isinstance(error, dict) and all(isinstance(v, (str, int)) for v in error.values())):
            raise WorkerDied("the worker sent a malformed error")
        if error is not None:  # what the worker says about an error is the student's text: cut it
            error = {str(k)[:40]: (v[:ERROR_CHARS.get(k, 200)] if isinstance(v, str) else v) for k, v in error.items()}
        return Reply(ok=data["ok"], value=data.get("value"), error=error)

    def _timeout_reason(self) -> str:
        return f"did not finish within {self._timeout:g} s (wall clock); the worker was stopped"

    def _death_reason(self) -> str:
        if self.proc is None:
            return "the worker is not running"
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "the worker closed its reply channel"
        if code is None:
            return "the worker stopped (it exited, or a limit of the sandbox killed it)"
        if code < 0:
            name = signal.Signals(-code).name
            hint = {"SIGKILL": " (killed: memory limit or a limit of the sandbox)", "SIGXCPU": " (CPU time limit)"}.get(name, "")
            return f"the worker was killed by {name}{hint}"
        return f"the worker exited with status {code}"

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
