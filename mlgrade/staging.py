"""Finding and staging a submission's contract files: which file is graded, and a copy of those
files, and nothing else, in a folder of their own.

:func:`find_file` is the one way every command finds a contract's file (:func:`choose_file`
says why when two accepted files lie side by side); :func:`stage` is the one way every command
makes what is graded: ``mlgrade check`` (the student's files), ``mlgrade grade`` (each student
of a class, :mod:`mlgrade.intake`), a Dask worker (the bytes a client sent, :mod:`mlgrade.cluster`),
``mlgrade validate`` (the reference) and the trivial answers (:mod:`mlgrade.trivial`). A file is
read without following links, only if it is a regular file within its size limit
(MAX_SOURCE_BYTES), with its modification time kept; a name that is not one of the contract's
files is never written.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

__all__ = ["MAX_SOURCE_BYTES", "MSG_NOT_CONTRACT", "MSG_NOT_REGULAR", "MSG_TOO_LARGE", "Refused", "choose_file",
           "contract_files", "file_kind", "find_file", "is_dir", "is_file", "lmode", "read_bounded", "source_limit", "stage"]

MAX_SOURCE_BYTES = {".py": 5 << 20, ".ipynb": 100 << 20}  # notebooks carry their plots
MSG_CHOSEN = ("Graded {file}, not {others}: {why}. To have the other graded, delete this one "
              "(or save the other last).")

MSG_NOT_REGULAR = "{path} is {kind}, not a regular file: not read"
MSG_TOO_LARGE = "{path} is larger than {mb} MB: not read"
MSG_NOT_CONTRACT = "submission file {name!r} refused: {why}"


SKIPPED_FOLDERS = ("__MACOSX", ".ipynb_checkpoints", "__pycache__")  # metadata and copies, never the submission
MAX_FOLDER_ENTRIES = 20_000  # files and folders searched in one student's upload


def find_file(folder: Path, names) -> Path | None:
    """The entry graded as the contract's file: of ``names`` (the file and its accepted
    alternatives, in order of preference) the first present, at the shallowest depth, the
    first in sorted order among equals; when several accepted names lie in that folder (hw6.py
    and hw6.ipynb), the one saved last, which is the file the student worked in, and the first
    of ``names`` when saved at the same time. The one way every command finds a contract's file.

    Students upload folders and zips with extra nesting; macOS metadata, notebook checkpoints
    and caches are skipped, and the walk stops after MAX_FOLDER_ENTRIES entries. Symbolic links
    to folders are not followed; an entry of that name that is not a file (a folder, a link) is
    found too, so that the reader can say what it is.
    """
    hits: dict[str, list[Path]] = {name: [] for name in names}
    seen = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_FOLDERS)
        for entry in (*dirnames, *filenames):
            if entry in hits:
                hits[entry].append(Path(dirpath) / entry)
        seen += len(dirnames) + len(filenames)
        if seen > MAX_FOLDER_ENTRIES:
            break
    return _newest(folder, names, hits)


def choose_file(folder: Path, names) -> tuple[Path | None, str]:
    """:func:`find_file`, and why that file when another accepted name lies beside it ("" otherwise)."""
    found = find_file(folder, names)
    if found is None:
        return None, ""
    others = [found.parent / n for n in names if n != found.name and os.path.lexists(found.parent / n)]
    if not others:
        return found, ""
    newer = all(_mtime(found) > _mtime(p) for p in others)
    why = "it was saved last" if newer else "both were saved at the same time, and it comes first"
    return found, MSG_CHOSEN.format(file=found.name, others=" and ".join(p.name for p in others), why=why)


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return float("-inf")


def _newest(folder: Path, names, hits: dict[str, list[Path]]) -> Path | None:
    """The first of ``names`` present, at its shallowest depth; but of accepted names lying in
    that same folder, the one saved last (the student's choice: the file they worked in)."""
    best = {name: min(paths, key=lambda path: (len(path.relative_to(folder).parts), path.parts))
            for name, paths in hits.items() if paths}
    if not best:
        return None
    first = next(best[n] for n in names if n in best)
    beside = [best[n] for n in names if n in best and best[n].parent == first.parent]
    return max(beside, key=lambda path: (_mtime(path), -beside.index(path)))


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
    """The contract's files found in ``folder`` (:func:`find_file`), by the name each is staged as."""
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
