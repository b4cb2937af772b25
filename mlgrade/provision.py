"""Machine set-up for grading as root: the worker user, and an interpreter it can run.

Run once by ``make setup``, the autograder zip's setup.sh and the Docker image
(``mlgrade setup-worker``). Grading works without it only when not root.
"""
from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

WORKER_USER = "mlgrade"
WORKER_USER_ENV = "MLGRADE_WORKER_USER"


def worker_user_name() -> str:
    """The worker user of this machine's gradings: ``$MLGRADE_WORKER_USER``, else ``mlgrade``.
    Two grading sessions that must not reap each other's workers name different users."""
    return os.environ.get(WORKER_USER_ENV) or WORKER_USER


def ensure_user(name: str | None = None) -> str:
    name = name or worker_user_name()
    try:
        pwd.getpwnam(name)
        return f"user {name} exists"
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
        return f"created user {name}"


def ensure_interpreter_reachable() -> list[str]:
    """Give 'others' traverse (x) permission on the folders above the interpreter and its
    packages, where missing (e.g. a pyenv under /root): they list nothing, only let the
    worker user open the interpreter and its libraries."""
    changed = []
    paths = {Path(sys.executable).resolve(), Path(sysconfig.get_paths()["purelib"]), Path(sys.prefix).resolve(),
             Path(__file__).resolve().parent}
    for path in paths:
        for folder in [path, *path.parents] if path.is_dir() else path.parents:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                os.chmod(folder, mode | stat.S_IXOTH)
                changed.append(f"chmod o+x {folder}")
    return changed


def main() -> int:
    if os.geteuid() != 0:
        print("mlgrade setup-worker: not root; student code will run as the current user (no uid separation)")
        return 0
    user = worker_user_name()
    print(ensure_user(user))
    for line in ensure_interpreter_reachable():
        print(line)
    check = subprocess.run(["setpriv", f"--reuid={pwd.getpwnam(user).pw_uid}", "--regid=65534", "--clear-groups",
                            sys.executable, "-I", "-c", "import numpy, mlgrade.worker"], capture_output=True, text=True)
    if check.returncode != 0:
        print(f"the worker user cannot import numpy and mlgrade:\n{check.stderr[-800:]}")
        return 1
    print(f"worker user {user} can run {sys.executable} with numpy and mlgrade")
    return 0
