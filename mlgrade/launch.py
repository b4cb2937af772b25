"""The ``mlgrade`` command as installed: :func:`mlgrade.cli.main` in a process started for it.

Two things only a process's own start and end can do. String hashing is fixed
(``PYTHONHASHSEED=0``, as in every sandboxed worker) by starting the interpreter again before
anything is imported, so that the fork server can be a fork of this process
(:mod:`mlgrade.forkserver`) and a worker still orders a set of strings the same way in every
run. And the process ends with ``os._exit`` once the command has returned and its output is
flushed: the interpreter's teardown of torch, pytest and the graders' modules takes about a
second and writes nothing (results.json is written, synced and renamed by then).
"""
from __future__ import annotations

import os
import sys

__all__ = ["fix_string_hashing", "main"]


def fix_string_hashing() -> None:
    """Start this interpreter again, with the same command line, if its string hashing is randomized.

    Called before anything is imported or printed (the command; mlgrade's own test session, so
    that its gradings take the fork server path users take)."""
    if sys.flags.hash_randomization and os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, "PYTHONHASHSEED": "0"})


def main() -> None:
    fix_string_hashing()
    from mlgrade.cli import main as run_command

    code = run_command()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code if isinstance(code, int) else 0)  # as sys.exit(None)
