"""Staging: a submission's contract files, and nothing else, copied into a folder of their own.

The one way every command makes what is graded: ``mlgrade check`` (the student's files),
``mlgrade grade`` (each student of a class, :mod:`mlgrade.intake`), a Dask worker (the bytes a
client sent, :mod:`mlgrade.cluster`), ``mlgrade validate`` (the reference, mutants) and the
trivial answers (:mod:`mlgrade.trivial`). A file is read without following links, only if it is
a regular file within its size limit (``loading.MAX_SOURCE_BYTES``); a name that is not one of
the contract's files is never written.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from mlgrade.loading import MAX_SOURCE_BYTES, find_file

__all__ = ["MSG_NOT_CONTRACT", "MSG_NOT_REGULAR", "MSG_TOO_LARGE", "Refused", "contract_files", "file_kind", "is_dir",
           "is_file", "lmode", "read_bounded", "source_limit", "stage"]

MSG_NOT_REGULAR = "{path} is {kind}, not a regular file: not read"
MSG_TOO_LARGE = "{path} is larger than {mb} MB: not read"
MSG_NOT_CONTRACT = "submission file {name!r} refused: {why}"


class Refused(Exception):
    """A student's file that is not read (a link, a device, too large): the reason."""


def file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return kind
    return "not a regular file"


def lmode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return None


def is_dir(path: Path) -> bool:
    mode = lmode(path)
    return mode is not None and stat.S_ISDIR(mode)


def is_file(path: Path) -> bool:
    mode = lmode(path)
    return mode is not None and stat.S_ISREG(mode)


def read_bounded(path: Path, limit: int, label: str) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; else Refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        mode = lmode(path)
        raise Refused(MSG_NOT_REGULAR.format(path=label, kind=file_kind(mode)) if mode is not None
                      and not stat.S_ISREG(mode) else f"{label} could not be read ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise Refused(MSG_NOT_REGULAR.format(path=label, kind=file_kind(mode)))
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise Refused(MSG_TOO_LARGE.format(path=label, mb=limit >> 20))
    return data


def source_limit(name: str) -> int:
    return MAX_SOURCE_BYTES.get(Path(name).suffix, MAX_SOURCE_BYTES[".py"])


def contract_files(assignment, folder: Path) -> dict[str, Path]:
    """The contract's files found in ``folder`` (:func:`mlgrade.loading.find_file`), by the name each is staged as."""
    found = [find_file(folder, spec.accept) for spec in assignment.files]
    return {path.name: path for path in found if path is not None}


def stage(assignment, files: Mapping[str, Path | bytes], target: Path, root: Path | None = None) -> list[str]:
    """Write each of ``files`` (the contract's file name it is graded as -> its path or its bytes)
    into ``target``; return what was not written, one line each (a link, a device, too large).

    ``root``: the folder the paths are shown relative to (default: their names). A name outside
    the contract, or a value that is neither a path nor bytes, is a ValueError: nothing asks for one
    but a peer that broke the protocol.
    """
    accepted = {name for spec in assignment.files for name in spec.accept}
    for name, source in files.items():
        if not isinstance(name, str) or name not in accepted:
            raise ValueError(MSG_NOT_CONTRACT.format(name=str(name)[:100], why="not a file of the contract"))
        if not isinstance(source, (bytes, Path)):
            raise ValueError(MSG_NOT_CONTRACT.format(name=name, why="not bytes"))
    target.mkdir(parents=True, exist_ok=True)
    problems = []
    for name, source in files.items():
        limit = source_limit(name)
        try:
            if isinstance(source, bytes):
                if len(source) > limit:
                    raise Refused(MSG_TOO_LARGE.format(path=name, mb=limit >> 20))
                data = source
            else:
                data = read_bounded(source, limit, source.relative_to(root).as_posix() if root else source.name)
                saved = os.lstat(source)
        except Refused as exc:
            problems.append(str(exc))
            continue
        (target / name).write_bytes(data)
        if isinstance(source, Path):
            # the time the student saved it: of hw6.py and hw6.ipynb side by side, the one saved last is graded
            os.utime(target / name, ns=(saved.st_atime_ns, saved.st_mtime_ns))
    return problems
