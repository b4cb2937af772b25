"""Reading a class in: every student's submission, from a folder or a Gradescope export zip.

:func:`discover` finds the students (descending through Gradescope's wrapper folder, names from
its ``submission_metadata.yml``), gives each an output folder name that is safe and unique, and
stages each one's contract files (:func:`mlgrade.staging.stage`). An export zip is unpacked with
limits (entries, bytes actually read, no link ever made, nothing outside its folder); a problem
with one student's files is that student's, never the class's.
"""
from __future__ import annotations

import os
import re
import stat
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from mlgrade.course import Assignment
from mlgrade.staging import (MSG_NOT_REGULAR, MSG_TOO_LARGE, Refused, contract_files, file_kind, is_dir, is_file,
                             lmode, read_bounded, source_limit, stage)

__all__ = ["ExportError", "RESERVED", "Submission", "discover", "output_names"]

METADATA = "submission_metadata.yml"
RESERVED = frozenset({"scores.csv", "report.html"})  # the output folder's own files: never a student

MAX_NAME = 80  # characters of an output folder name
MAX_METADATA_BYTES = 16 << 20
# an export zip: at most this many entries, expanding to at most MAX_EXPORT_RATIO times its own
# size (at least MIN_EXPORT_BYTES, at most MAX_EXPORT_BYTES), counted in bytes actually read
MAX_EXPORT_ENTRIES = 50_000
MAX_EXPORT_RATIO = 100
MIN_EXPORT_BYTES = 256 << 20
MAX_EXPORT_BYTES = 4 << 30

MSG_UNSAFE_ENTRY = "the export's entry {name!r} points outside its folder: not extracted"
MSG_BAD_ENTRY = "the export's entry {name!r} could not be extracted ({error})"
MSG_TOO_MANY_ENTRIES = "{zip}: {count} entries, more than {limit}: refused"
MSG_EXPORT_TOO_LARGE = "{zip}: expands to more than {mb} MB ({ratio} times its size at most): refused"


class ExportError(ValueError):
    """An export zip refused as a whole (too many entries, expands too far): nobody is graded."""


@dataclass
class Submission:
    student: str  # the output folder's name: unique, never one of RESERVED
    folder: Path  # staged: only the contract's files
    submitters: str = ""
    problems: list[str] = field(default_factory=list)  # why it cannot be graded (none: it is graded)
    digest: str = ""  # of its staged files and the engine: unchanged ones are not graded again




# --- output names ------------------------------------------------------------------------------

def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]+", "_", name)[:MAX_NAME].strip("._") or "student"


def output_names(preferred: list[tuple[str, ...]]) -> list[str]:
    """One output folder name per entry: safe, unique ignoring case, never one of RESERVED.

    ``preferred``: per entry, the names it would like, best first. A name that needs no change
    keeps it; the others take the first free safe form, then ``<name>-2``, ``<name>-3``, ... in
    the order given (sorted entries: the same names on every run).
    """
    names: list[str | None] = [None] * len(preferred)
    taken: set[str] = set(RESERVED)

    def claim(i: int, name: str) -> None:
        names[i] = name
        taken.add(name.casefold())

    for i, forms in enumerate(preferred):
        if _safe(forms[0]) == forms[0] and forms[0].casefold() not in taken:
            claim(i, forms[0])
    unchanged_first = sorted(range(len(preferred)), key=lambda i: _safe(preferred[i][0]) != preferred[i][0])
    for i in unchanged_first:
        if names[i] is not None:
            continue
        safe = [_safe(f) for f in preferred[i]]
        choice = next((s for s in safe if s.casefold() not in taken), None)
        n = 2
        while choice is None:
            candidate = f"{safe[0]}-{n}"
            choice = candidate if candidate.casefold() not in taken else None
            n += 1
        claim(i, choice)
    return names



# --- the export zip ----------------------------------------------------------------------------

def _entry_parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in re.split(r"[/\\]", name) if p not in ("", "."))


def _absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", name))


def _unsafe(name: str, parts: tuple[str, ...]) -> bool:
    return _absolute(name) or "\0" in name or ".." in parts


def _extract(zip_path: Path, dest: Path, assignment: Assignment) -> dict[tuple[str, ...], list[str]]:
    """Unpack the contract's files of an export (and its metadata) under ``dest``.

    Every folder of the export is made (so a student who submitted nothing is still listed), no
    link is ever made, and an entry that cannot be extracted safely is left out: the returned
    problems are keyed by the parts of its path, for the student it belongs to. Raises
    ExportError when the export as a whole is too large.
    """
    accepted = {name for spec in assignment.files for name in spec.accept}
    suffixes = {Path(name).suffix for name in accepted}
    budget = min(MAX_EXPORT_BYTES, max(MIN_EXPORT_BYTES, MAX_EXPORT_RATIO * zip_path.stat().st_size))
    used = 0
    problems: dict[tuple[str, ...], list[str]] = {}
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_EXPORT_ENTRIES:
            raise ExportError(MSG_TOO_MANY_ENTRIES.format(zip=zip_path.name, count=len(infos),
                                                          limit=MAX_EXPORT_ENTRIES))
        for info in infos:
            parts = _entry_parts(info.filename)
            name = parts[-1] if parts else ""
            wanted = name in accepted or name == METADATA or (len(parts) <= 2 and Path(name).suffix in suffixes)
            try:
                used += _extract_entry(zf, info, parts, dest, wanted, budget - used)
            except Refused as exc:
                problems.setdefault(parts, []).append(str(exc))
            except _ExportFull:
                raise ExportError(MSG_EXPORT_TOO_LARGE.format(zip=zip_path.name, mb=budget >> 20,
                                                              ratio=MAX_EXPORT_RATIO)) from None
            except (OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError) as exc:
                problems.setdefault(parts, []).append(
                    MSG_BAD_ENTRY.format(name=info.filename[:200], error=f"{type(exc).__name__}: {str(exc)[:200]}"))
    return problems


class _ExportFull(Exception):
    pass


def _extract_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, parts: tuple[str, ...], dest: Path, wanted: bool,
                   budget: int) -> int:
    """Make the folders of one entry and, if ``wanted``, its file; return the bytes written."""
    if _unsafe(info.filename, parts):
        # the student it names is still listed (and refused); nothing is made outside dest
        inside = () if _absolute(info.filename) or ".." not in parts else parts[:parts.index("..")]
        dest.joinpath(*inside).mkdir(parents=True, exist_ok=True)
        raise Refused(MSG_UNSAFE_ENTRY.format(name=info.filename[:200]))
    dest.joinpath(*(parts if info.is_dir() else parts[:-1])).mkdir(parents=True, exist_ok=True)
    if info.is_dir() or not parts or not wanted:
        return 0
    mode = info.external_attr >> 16
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise Refused(MSG_NOT_REGULAR.format(path="/".join(parts), kind=file_kind(mode)))
    limit = MAX_METADATA_BYTES if parts[-1] == METADATA else source_limit(parts[-1])
    return _unpack(zf, info, dest.joinpath(*parts), limit, budget, "/".join(parts))


def _unpack(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limit: int, budget: int, label: str) -> int:
    """Copy one entry, counting the bytes actually read (not the size its header claims)."""
    written = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        with zf.open(info) as src, os.fdopen(fd, "wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > budget:
                    raise _ExportFull()
                if written > limit:
                    raise Refused(MSG_TOO_LARGE.format(path=label, mb=limit >> 20))
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    # the time the student saved it: of hw6.py and hw6.ipynb, the one saved last is graded
    saved = time.mktime((*info.date_time, 0, 0, -1))
    os.utime(target, (saved, saved))
    return written



# --- finding the submissions -----------------------------------------------------------------

def _read_metadata(path: Path) -> dict[str, str]:
    """Gradescope's submission_metadata.yml: submission folder -> 'Name <email>; ...'."""
    try:
        text = read_bounded(path, MAX_METADATA_BYTES, METADATA).decode("utf-8", "replace")
    except Refused:
        return {}
    try:
        import yaml

        data = yaml.safe_load(text) or {}
    except ImportError:
        data = _mini_yaml(text)
    except Exception:  # a broken metadata file only loses the names
        return {}
    found = {}
    for sub_id, meta in data.items() if isinstance(data, dict) else []:
        meta = meta if isinstance(meta, dict) else {}
        people = meta.get(":submitters") or meta.get("submitters") or []
        names = []
        for p in people if isinstance(people, list) else []:
            if isinstance(p, dict):
                name, email = p.get(":name") or p.get("name") or "", p.get(":email") or p.get("email") or ""
                names.append(f"{name} <{email}>" if email else str(name))
        found[str(sub_id)] = "; ".join(names)
    return found


def _mini_yaml(text: str) -> dict:
    """Enough of YAML for submission_metadata.yml when PyYAML is missing: ids, names, emails."""
    data: dict = {}
    current = None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            current = data.setdefault(line.rstrip()[:-1].strip("'\""), {":submitters": []})
        elif current is not None:
            m = re.match(r"\s*-?\s*:(name|email):\s*(.*)$", line)
            if m:
                people = current[":submitters"]
                if line.lstrip().startswith("-") or not people or m.group(1) in people[-1]:
                    people.append({})
                people[-1][":" + m.group(1)] = m.group(2).strip().strip("'\"")
    return data


def _base(folder: Path) -> tuple[Path, dict[str, str]]:
    """The folder whose entries are the students (descending through Gradescope's wrapper)."""
    for candidate in [folder, *sorted(p for p in folder.iterdir() if is_dir(p))]:
        if is_file(candidate / METADATA):
            return candidate, _read_metadata(candidate / METADATA)
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and is_dir(entries[0]):
        inner = [p for p in entries[0].iterdir() if not p.name.startswith(".")]
        if inner and all(is_dir(p) for p in inner) or any(p.name == METADATA for p in inner):
            return _base(entries[0])
    return folder, {}


def _stage(entry: Path, assignment: Assignment, accepted: dict, staged: Path) -> list[str]:
    """Stage one student's contract files into ``staged`` (:func:`mlgrade.staging.stage`); return the problems."""
    if is_dir(entry):
        return stage(assignment, contract_files(assignment, entry), staged, root=entry)
    # one file per student: named after the student, graded as the contract's file of that type
    match = [n for n in accepted if Path(n).suffix == entry.suffix]
    if not match:  # a link or a device without a suffix (_is_student): refused as what it is
        try:
            read_bounded(entry, source_limit(entry.name), entry.name)
        except Refused as exc:
            return [str(exc)]
        return []
    return stage(assignment, {match[0]: entry}, staged, root=entry.parent)


def _is_student(entry: Path, suffixes: set[str]) -> bool:
    mode = lmode(entry)
    if mode is None or entry.name.startswith((".", "__MACOSX")) or entry.name == METADATA:
        return False
    if stat.S_ISDIR(mode):
        return True
    # a file named after its student; a link or device in its place is listed (and refused)
    return entry.suffix in suffixes or (not stat.S_ISREG(mode) and not entry.suffix)


def discover(assignment: Assignment, source: Path, work: Path) -> tuple[list[Submission], list[str]]:
    """Stage every student's contract files under ``work/staged/<student>``.

    Returns the submissions (those with ``problems`` are not graded) and the problems that belong
    to no student (an export entry outside every student's folder).
    """
    source = Path(source)  # the instructor's own argument: a link to it is followed
    problems: dict[tuple[str, ...], list[str]] = {}
    if source.is_file() and zipfile.is_zipfile(source):
        problems = _extract(source, work / "export", assignment)
        source = work / "export"
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: not a folder of submissions nor a zip")
    base, metadata = _base(source)
    prefix = base.relative_to(source).parts
    accepted = {name: spec for spec in assignment.files for name in spec.accept}
    suffixes = {Path(n).suffix for n in accepted}
    entries = [e for e in sorted(base.iterdir()) if _is_student(e, suffixes)]
    names = output_names([(e.name,) if is_dir(e) else (e.stem, e.name) for e in entries])
    subs: list[Submission] = []
    for entry, student in zip(entries, names):
        staged = work / "staged" / student
        staged.mkdir(parents=True)
        sub = Submission(student, staged, metadata.get(entry.name, ""), _stage(entry, assignment, accepted, staged))
        own = (*prefix, entry.name)
        for parts in [p for p in problems if p[:len(own)] == own]:
            sub.problems.extend(problems.pop(parts))
        subs.append(sub)
    return subs, [reason for reasons in problems.values() for reason in reasons]

