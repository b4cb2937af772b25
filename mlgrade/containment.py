"""What holds a worker and everything it starts, on the grading side, and how all of it is killed.

The worker confines itself (:func:`mlgrade.worker.confine`: namespaces, the view, rlimits,
the unprivileged user); this module prepares what only the grading process can: the worker's
environment and file-system view, the worker user, a memory + pids cgroup, and
:class:`Containment`, the one way to kill a worker with everything it started (its process
group, its cgroup, and where neither a cgroup nor a PID namespace holds it, every process of
the worker user or every descendant of the grading process).
"""
from __future__ import annotations

import ctypes
import functools
import os
import pwd
import signal
import sys
import time
import uuid

__all__ = ["Cgroup", "Containment", "kill_user_processes", "prctl", "required_missing", "worker_env", "worker_user",
           "worker_view"]

CGROUP_ROOT = "/sys/fs/cgroup"


# what a worker reports missing that makes grading unsafe or unfair: no limits on student code,
# a view the kernel allows but that could not be built, hidden files the worker user can read
def required_missing(missing: list[str], require_isolation: bool) -> list[str]:
    return [m for m in missing if m.startswith("RLIMIT_")
            or (require_isolation and (m == "root view" or m.startswith("exposed ")))]


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
    for package in ("mlgrade", "numpy", "torch"):  # the rest of what courses need is in site-packages
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


def prctl(option: int, value: int) -> None:
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


class Cgroup:
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


class Containment:
    """One worker's containment on the grading side, from its start to its death.

    :meth:`prepare` before a worker starts (a fresh cgroup when grading as root),
    :meth:`confirm` with what the worker reported missing once it has confined itself, and
    :meth:`kill` to kill the worker with everything it started: its process group, then
    its cgroup; where neither a cgroup nor a PID namespace held it, every process of the
    worker user (one grading per user) or, not as root, every descendant of this process
    but ``spared`` (a fork server).
    """

    def __init__(self, user: pwd.struct_passwd | None, memory_bytes: int, processes: int, spared=()):
        self.user = user
        self.memory_bytes, self.processes = memory_bytes, processes
        self.spared = set(spared)
        self.cgroup: Cgroup | None = None
        self.uncontained = False  # a worker may have left processes that only a sweep finds
        self.peak_mb = 0.0

    def prepare(self) -> list[str]:
        """Make this worker's cgroup (as root); the ``cgroup.procs`` files it must join."""
        # no student code runs before the worker confirms what holds it (confirm): a worker that
        # dies before that leaves nothing a sweep of its user could find, and a sweep would reach
        # every other process of that uid on the machine (another grading, a container's worker)
        self.uncontained = False
        if self.user is None:
            return []
        try:
            self.cgroup = Cgroup(self.memory_bytes, self.processes)
        except OSError:
            self.cgroup = None
        return self.cgroup.procs_files if self.cgroup and self.cgroup.dirs else []

    @property
    def has_cgroup(self) -> bool:
        return bool(self.cgroup and self.cgroup.dirs)

    def confirm(self, missing: list[str]) -> None:
        """What the worker, before any student code, said it could not apply."""
        in_cgroup = self.has_cgroup and not any(m.startswith("cgroup") for m in missing)
        in_pid_namespace = not ({"pid namespace", "namespaces"} & set(missing))
        self.uncontained = not (in_cgroup or in_pid_namespace)

    def kill(self, pid: int | None) -> None:
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.cgroup:
            self.peak_mb = max(self.peak_mb, self.cgroup.peak_mb())
            self.cgroup.remove()
            self.cgroup = None
        if not self.uncontained:
            return  # nothing ran, or all of it was in the cgroup or PID namespace, now gone
        if self.user:
            kill_user_processes(self.user.pw_uid)
        else:
            for found in set(_descendants(os.getpid())) - self.spared:
                try:
                    os.kill(found, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.uncontained = False
