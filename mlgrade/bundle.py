"""The assignment bundle a Dask client sends its workers (:mod:`mlgrade.cluster`): a course of one
assignment (its graders and reference included) as a zip, the same bytes for the same files, with
a manifest of the mlgrade version it was made with; and its unpacking on a worker, into a private
folder, regular files only, nothing outside it, within entry and size limits.
"""
from __future__ import annotations

import importlib.metadata
import io
import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from mlgrade.course import Assignment

__all__ = ["BUNDLE_MANIFEST", "BundleError", "extract_bundle", "make_bundle", "private_dir"]

MAX_BUNDLE_BYTES = 256 << 20
MAX_BUNDLE_ENTRIES = 10_000
BUNDLE_MANIFEST = "mlgrade-bundle.json"

MSG_BAD_BUNDLE = "the assignment bundle's entry {name!r} refused: {why}"


class BundleError(RuntimeError):
    """A bundle that cannot be made (too large)."""


def make_bundle(assignment: Assignment) -> bytes:
    """The assignment as a course of one assignment (its graders and reference included), as a zip
    (the same bytes for the same files), with the mlgrade version it was made with."""
    manifest = {"assignment": assignment.id, "mlgrade": importlib.metadata.version("mlgrade")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(BUNDLE_MANIFEST, (1980, 1, 1, 0, 0, 0)), json.dumps(manifest, sort_keys=True))
        for name, path in assignment.shipped_files(hidden=True):
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), path.read_bytes())
    data = buffer.getvalue()
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"the course files of {assignment.id} exceed {MAX_BUNDLE_BYTES >> 20} MB")
    return data


def private_dir(path: Path) -> Path:
    """``path`` as a folder of ours alone (made 0700; refused if it is a link or someone else's)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise RuntimeError(f"{path} is not a private folder of this user: refused")
    return path


def extract_bundle(bundle: bytes, target: Path) -> None:
    """Unpack into ``target`` (made here, atomically): regular files only, nothing outside it,
    within the entry and size limits."""
    scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_BUNDLE_ENTRIES:
                raise RuntimeError(f"the assignment bundle has more than {MAX_BUNDLE_ENTRIES} entries")
            used = 0
            for info in infos:
                parts = Path(info.filename).parts
                if info.filename == BUNDLE_MANIFEST:
                    continue
                if info.filename.startswith("/") or ".." in parts or not parts:
                    raise RuntimeError(MSG_BAD_BUNDLE.format(name=info.filename[:200], why="outside the bundle's folder"))
                if stat.S_IFMT(info.external_attr >> 16) not in (0, stat.S_IFREG) or info.is_dir():
                    raise RuntimeError(MSG_BAD_BUNDLE.format(name=info.filename[:200], why="not a regular file"))
                data = zf.read(info)
                used += len(data)
                if used > MAX_BUNDLE_BYTES:
                    raise RuntimeError(f"the assignment bundle expands to more than {MAX_BUNDLE_BYTES >> 20} MB")
                dest = scratch.joinpath(*parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
        try:
            os.rename(scratch, target)
        except OSError:  # another worker of this host unpacked the same bundle first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
