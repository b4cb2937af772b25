"""A worker's confinement of itself, before any student code exists in it.

:func:`confine` applies the sandbox in an order that needs root first: the cgroup, its own
network, IPC, PID and mount namespaces (an unprivileged user namespace where not root), the root
file system of :func:`mlgrade.containment.worker_view` with the protected paths masked, private
/tmp, /var/tmp and /dev/shm, rlimits, only its own file descriptors, then the unprivileged user
and no capabilities. It returns what could not be applied, which the worker reports in its
hello (the grading process decides whether that is acceptable: containment.required_missing).
Raw system calls through libc: nothing here imports more than the standard library.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import struct

__all__ = ["PR_SET_PDEATHSIG", "confine", "limits_mb", "load_libc"]

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUSER = 0x00020000, 0x40000000, 0x10000000
CLONE_NEWIPC, CLONE_NEWPID = 0x08000000, 0x20000000
MS_REC, MS_PRIVATE, MS_RDONLY, MS_NOSUID, MS_NODEV = 0x4000, 0x40000, 1, 2, 4
MS_BIND, MS_REMOUNT, MS_NOEXEC = 0x1000, 0x20, 8
PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG = 38, 1
# a spawned worker whose grader died sees EOF on its request pipe and exits


PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
WRITABLE_BINDS = ("/dev", "/proc")  # /dev/null and friends; /proc/self


def limits_mb(cfg: dict) -> int:
    return int(cfg["limits"].get("file_size_mb") or 64)


def load_libc():
    return ctypes.CDLL(None, use_errno=True)


def _enter_view(libc, view: dict, missing: list, private_mb: int) -> bool:
    """chroot into a tmpfs holding only the view's symlinks and read-only binds (see containment.worker_view).

    Called as root in a private mount namespace; returns False without the chroot if the
    kernel refuses a mount (the masks then remain the only protection).
    """
    root = view["root"]
    if libc.mount(b"tmpfs", root.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=1m,mode=755") != 0:
        return False
    try:
        # the private temporary folders first: a venv or checkout that lives under /tmp is bound
        # below them afterwards, instead of being hidden by them
        size = f"size={private_mb}m,mode=1777".encode()
        for path in PRIVATE_DIRS:
            os.makedirs(root + path, exist_ok=True)
            if libc.mount(b"tmpfs", (root + path).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, size) != 0:
                return False
        for path, target in view["links"]:
            os.makedirs(os.path.dirname(root + path), exist_ok=True)
            os.symlink(target, root + path)
        for path in view["binds"]:
            inside = (root + path).encode()
            if os.path.isdir(path):
                os.makedirs(root + path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(root + path), exist_ok=True)
                open(root + path, "a").close()
            if libc.mount(path.encode(), inside, None, MS_BIND | MS_REC, None) != 0:
                return False
            if path not in WRITABLE_BINDS and libc.mount(
                    None, inside, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None) != 0:
                missing.append(f"read-only {path}")  # file permissions still apply
    except OSError:
        return False
    os.chroot(root)
    os.chdir("/")
    return True


def confine(cfg: dict) -> list[str]:
    """Apply the sandbox, in an order that needs root first; returns what could not be applied."""
    libc = load_libc()
    missing = []
    parent = os.getppid()
    is_root = os.geteuid() == 0
    if cfg.get("cgroup_procs"):
        for procs in cfg["cgroup_procs"]:
            try:
                with open(procs, "w") as fh:
                    fh.write(str(os.getpid()))
            except OSError:
                missing.append(f"cgroup {procs}")
    private = bool(cfg.get("mask") or cfg.get("view"))
    flags = _unshare(libc, is_root, private, missing)
    if flags & CLONE_NEWNS:
        libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
        in_view = bool(cfg.get("view")) and _enter_view(libc, cfg["view"], missing, limits_mb(cfg))
        if cfg.get("view") and not in_view:
            missing.append("root view")
        # inside the view too: a protected folder below a bound one (a checkout in site-packages)
        for path in cfg.get("mask", ()):
            if os.path.isdir(path):
                rc = libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, b"size=4k")
                if rc != 0:
                    missing.append(f"mask {path}")
        # a private /tmp: the host's shared temporary folders may hold other submissions, staged
        # references or results files that file permissions alone do not protect
        size = f"size={limits_mb(cfg)}m,mode=1777".encode()
        for path in PRIVATE_DIRS if not in_view else ():
            if os.path.isdir(path) and libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, size) != 0:
                missing.append(f"private {path}")
        if not os.path.isdir(cfg["scratch"]):  # the scratch folder was under a now private /tmp
            os.makedirs(cfg["scratch"], mode=0o700)
            if is_root and cfg.get("uid") is not None:
                os.chown(cfg["scratch"], cfg["uid"], cfg["gid"])
    if flags & CLONE_NEWPID:
        _become_init(libc)
        # only the namespace's own processes exist for the worker (no parent, no other grading)
        if libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
            missing.append("private /proc")
    limits = cfg["limits"]
    mb = 1 << 20
    for name, soft in (
        ("RLIMIT_CPU", limits["cpu_seconds"]),
        ("RLIMIT_FSIZE", limits["file_size_mb"] * mb),
        ("RLIMIT_NPROC", limits["processes"]),
        ("RLIMIT_CORE", 0),
        ("RLIMIT_NOFILE", 256),
        ("RLIMIT_AS", limits["address_space_mb"] * mb if limits.get("address_space_mb") else None),
    ):
        if soft is None:
            continue
        hard = soft + 5 if name == "RLIMIT_CPU" else soft
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError):
            missing.append(name)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails instead of killing us
    if is_root and cfg.get("uid") is not None:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
    elif flags & CLONE_NEWUSER and not _drop_capabilities(libc):
        missing.append("capabilities")  # in its own user namespace it could undo the view
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    # die with the process that started us, even if it is SIGKILLed (set after setuid, which
    # clears it); a parent already gone leaves nothing to serve (in a PID namespace the parent
    # is invisible: its death kills us through this signal, and the pipes' EOF ends us anyway)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not flags & CLONE_NEWPID and os.getppid() != parent:
        os._exit(0)
    missing.extend(f"exposed {path}" for path in cfg.get("mask", ()) if _readable(path))
    os.chdir(cfg["scratch"])
    return missing


def _unshare(libc, is_root: bool, private: bool, missing: list) -> int:
    """New namespaces for this worker; returns the flags that took effect.

    Network, IPC (no SysV segment or queue outlives it or reaches another submission), PID
    (see :func:`_become_init`) and, for a view, mounts. Not as root, an unprivileged user
    namespace makes the same possible where the kernel allows it. Where a kernel or a
    container refuses (Gradescope's unprivileged containers), less is applied and reported.
    """
    mounts = CLONE_NEWNS if private else 0
    if is_root:
        attempts = [CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID | mounts, CLONE_NEWNET | mounts]
    else:
        attempts = [CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNS, CLONE_NEWUSER | CLONE_NEWNET]
    uid, gid = os.getuid(), os.getgid()
    for flags in attempts:
        if libc.unshare(flags) == 0:
            if flags & CLONE_NEWUSER:
                _map_ids(uid, gid)
            for flag, name in ((CLONE_NEWPID, "pid namespace"), (CLONE_NEWIPC, "ipc namespace"),
                               (CLONE_NEWNS, "mount namespace" if private else "")):
                if not flags & flag and name:
                    missing.append(name)
            return flags
    missing.append("namespaces")
    return 0


def _map_ids(uid: int, gid: int) -> None:
    """In a new user namespace: the same uid and gid as outside, and nothing else."""
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)


def _become_init(libc) -> None:
    """Fork into the new PID namespace; returns in the worker, the namespace's pid 2.

    Three processes: this one (known to the grading process or fork server), the
    namespace's pid 1, and the worker. Pid 1 reaps whatever the worker leaves behind and,
    when the worker ends, passes its wait status back here and exits, which kills everything
    else in the namespace: nothing a submission starts outlives it. This process then ends
    the same way as the worker did (exit status or signal). Signals the worker sends to pid 1
    are ignored by the kernel (pid 1 has no handlers), and nothing outside is visible to it.
    """
    status_r, status_w = os.pipe()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    init = os.fork()
    if init == 0:
        worker = os.fork()
        if worker == 0:
            os.close(status_r)
            os.close(status_w)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            return
        _only_fds(libc, status_w)
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                os._exit(1)
            except InterruptedError:
                continue
            if pid == worker:
                os.write(status_w, struct.pack("<i", status))
                os._exit(0)
    _only_fds(libc, status_r)
    while True:
        try:
            _, init_status = os.waitpid(init, 0)
            break
        except InterruptedError:
            continue
    data = os.read(status_r, 4)
    status = struct.unpack("<i", data)[0] if len(data) == 4 else init_status
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be handled, nor need resetting
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _only_fds(libc, keep: int) -> None:
    """A waiting process: dies with its parent, holds no fd of the worker's but ``keep``."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    os.closerange(3, keep)
    os.closerange(keep + 1, limit)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities(libc) -> bool:
    """No capability left, in the user namespace either: a chroot cannot be escaped, nothing remounted."""
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; fails harmlessly past the last capability
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    return libc.capset(ctypes.byref(header), data) == 0


def _readable(path: str) -> bool:
    """Whether this process (already the worker user, no student code yet) can read anything below ``path``."""
    try:
        if not os.path.isdir(path):
            with open(path, "rb") as fh:
                fh.read(1)
            return True
        for dirpath, dirnames, filenames in os.walk(path):
            for name in filenames:
                try:
                    with open(os.path.join(dirpath, name), "rb") as fh:
                        fh.read(1)
                    return True
                except OSError:
                    continue
    except OSError:
        return False
    return False
