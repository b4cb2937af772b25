"""``mlgrade grade``: grade a whole class with a pool of reused grading processes.

Each pool process imports numpy, torch, pytest and the engine once (the forkserver preloads
them) and then calls :func:`mlgrade.runner.grade` for one submission after another; student
code still runs in a fresh sandbox worker per submission. The parent only schedules: at most
one submission per pool process is in flight, each with an overall deadline. A submission that
overruns it has its pool killed and restarted (the others in flight are re-queued, unharmed);
a pool that breaks (a grading process died) has its in-flight submissions retried one at a
time, so the one that breaks it again is the one marked failed.

Every student is reported once: graded (a score), or failed (no score: an engine failure, a
crash, a timeout, or a submission that could not be read), never both. results.json is written
by the runner for a completed grading (on a Dask cluster, mlgrade.cluster, by this module from
the worker's reply) and by :func:`mlgrade.results.write_results` for every failure; what fails afterwards (the log, the hash file) is the instructor's problem, reported
in the summary, and never replaces a result.

When grading as root, pool process k runs student code as its own user (``mlgrade`` for k=0,
``mlgrade-w<k>`` otherwise): the sandbox kills every process of its worker user when a
submission ends, which must not reach a neighbour's worker.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import re
import resource
import shutil
import stat
import tempfile
import time
import traceback
import zipfile
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from mlgrade.course import Assignment
from mlgrade.loading import MAX_SOURCE_BYTES, find_file
from mlgrade.results import engine_failure, failure_reason, is_engine_failure, passed, write_results
from mlgrade.terminal import printable

__all__ = ["ExportError", "Failure", "Submission", "Summary", "discover", "grade_class", "grade_one", "tree_hash"]

HASH_FILE = ".mlgrade-hash"
LOG_FILE = "grading.log"  # beside each student's results.json: the instructor's log of that grading
METADATA = "submission_metadata.yml"
RESERVED = frozenset({"scores.csv", "report.html"})  # the output folder's own files: never a student
PRELOAD = ["numpy", "torch", "pytest", "mlgrade.runner", "mlgrade.grading", "mlgrade.results"]

MAX_NAME = 80  # characters of an output folder name
MAX_METADATA_BYTES = 16 << 20
MAX_LOG_CHARS = 2_000_000
# an export zip: at most this many entries, expanding to at most MAX_EXPORT_RATIO times its own
# size (at least MIN_EXPORT_BYTES, at most MAX_EXPORT_BYTES), counted in bytes actually read
MAX_EXPORT_ENTRIES = 50_000
MAX_EXPORT_RATIO = 100
MIN_EXPORT_BYTES = 256 << 20
MAX_EXPORT_BYTES = 4 << 30

MSG_NOT_REGULAR = "{path} is {kind}, not a regular file: not read"
MSG_TOO_LARGE = "{path} is larger than {mb} MB: not read"
MSG_UNSAFE_ENTRY = "the export's entry {name!r} points outside its folder: not extracted"
MSG_BAD_ENTRY = "the export's entry {name!r} could not be extracted ({error})"
MSG_TOO_MANY_ENTRIES = "{zip}: {count} entries, more than {limit}: refused"
MSG_EXPORT_TOO_LARGE = "{zip}: expands to more than {mb} MB ({ratio} times its size at most): refused"
MSG_OUT_NOT_FOLDER = "{path} exists and is not a folder: nothing written for this student"
MSG_CRASHED = "the grading process crashed on this submission"
MSG_RAISED = "grading failed ({type}: {message})"
MSG_TIMEOUT = "grading took longer than {timeout:g} s and was stopped"
MSG_UNRECORDED = "{file} not written ({type}: {message})"


class ExportError(ValueError):
    """An export zip refused as a whole (too many entries, expands too far): nobody is graded."""


class _Refused(Exception):
    """A student's file that is not read (a link, a device, too large): the reason."""


@dataclass
class Submission:
    student: str  # the output folder's name: unique, never one of RESERVED
    folder: Path  # staged: only the contract's files
    submitters: str = ""
    problems: list[str] = field(default_factory=list)  # why it cannot be graded (none: it is graded)
    digest: str = ""  # of its staged files and the engine: unchanged ones are not graded again


@dataclass
class Summary:
    graded: int = 0
    skipped: int = 0
    failed: int = 0  # submissions given no score: engine failure, crash, timeout, unreadable input
    seconds: float = 0.0
    rows: list = field(default_factory=list)  # one dict per student (see _row)
    failures: dict = field(default_factory=dict)  # student -> why no score was given
    errors: list = field(default_factory=list)  # the instructor's problems that changed no score
    peak_rss_mb: dict = field(default_factory=dict)  # pool pid -> max RSS of that grading process

    @property
    def ok(self) -> bool:
        """Every student has a score and everything was written."""
        return not self.failed and not self.errors


@dataclass(frozen=True)
class Failure:
    """A grading that gave no score: why (for the student and the instructor), and the log."""

    reason: str
    seconds: float = 0.0
    log: str = ""
    writable: bool = True  # False: its output folder is not ours to write (nothing is written)


# --- reading what students submitted, without following links --------------------------------

def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return kind
    return "not a regular file"


def _lmode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return None


def _is_dir(path: Path) -> bool:
    mode = _lmode(path)
    return mode is not None and stat.S_ISDIR(mode)


def _is_file(path: Path) -> bool:
    mode = _lmode(path)
    return mode is not None and stat.S_ISREG(mode)


def _read_regular(path: Path, limit: int, label: str) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; else _Refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        mode = _lmode(path)
        raise _Refused(MSG_NOT_REGULAR.format(path=label, kind=_kind(mode)) if mode is not None
                       and not stat.S_ISREG(mode) else f"{label} could not be read ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _Refused(MSG_NOT_REGULAR.format(path=label, kind=_kind(mode)))
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise _Refused(MSG_TOO_LARGE.format(path=label, mb=limit >> 20))
    return data


def _source_limit(name: str) -> int:
    return MAX_SOURCE_BYTES.get(Path(name).suffix, MAX_SOURCE_BYTES[".py"])


# --- output names ------------------------------------------------------------------------------

def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]+", "_", name)[:MAX_NAME].strip("._") or "student"


def _output_names(preferred: list[tuple[str, ...]]) -> list[str]:
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
            except _Refused as exc:
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
        raise _Refused(MSG_UNSAFE_ENTRY.format(name=info.filename[:200]))
    dest.joinpath(*(parts if info.is_dir() else parts[:-1])).mkdir(parents=True, exist_ok=True)
    if info.is_dir() or not parts or not wanted:
        return 0
    mode = info.external_attr >> 16
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise _Refused(MSG_NOT_REGULAR.format(path="/".join(parts), kind=_kind(mode)))
    limit = MAX_METADATA_BYTES if parts[-1] == METADATA else _source_limit(parts[-1])
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
                    raise _Refused(MSG_TOO_LARGE.format(path=label, mb=limit >> 20))
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
        text = _read_regular(path, MAX_METADATA_BYTES, METADATA).decode("utf-8", "replace")
    except _Refused:
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
    for candidate in [folder, *sorted(p for p in folder.iterdir() if _is_dir(p))]:
        if _is_file(candidate / METADATA):
            return candidate, _read_metadata(candidate / METADATA)
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and _is_dir(entries[0]):
        inner = [p for p in entries[0].iterdir() if not p.name.startswith(".")]
        if inner and all(_is_dir(p) for p in inner) or any(p.name == METADATA for p in inner):
            return _base(entries[0])
    return folder, {}


def _stage(entry: Path, assignment: Assignment, accepted: dict, staged: Path) -> list[str]:
    """Copy one student's contract files into ``staged``; return the problems (nothing is
    followed or copied but regular files)."""
    problems = []
    mode = _lmode(entry)
    if mode is not None and stat.S_ISDIR(mode):
        found = [f for f in (find_file(entry, spec.accept) for spec in assignment.files) if f is not None]
        copies = [(f, f.name, f.relative_to(entry).as_posix()) for f in found]
    else:  # one file per student: named after the student, graded as the contract's file of that type
        match = [n for n in accepted if Path(n).suffix == entry.suffix]
        copies = [(entry, match[0] if match else entry.name, entry.name)]
    for source, name, label in copies:
        try:
            (staged / name).write_bytes(_read_regular(source, _source_limit(name), label))
        except _Refused as exc:
            problems.append(str(exc))
    return problems


def _is_student(entry: Path, suffixes: set[str]) -> bool:
    mode = _lmode(entry)
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
    names = _output_names([(e.name,) if _is_dir(e) else (e.stem, e.name) for e in entries])
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


# --- hashing --------------------------------------------------------------------------------

def tree_hash(paths: list[Path], digest=None):
    digest = digest or hashlib.sha256()
    for root in paths:
        if root is None or not Path(root).exists():
            continue
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()
                                                     and "__pycache__" not in p.parts)
        for p in files:
            digest.update(p.relative_to(root.parent if root.is_file() else root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(p.read_bytes()).digest())
    return digest


def _engine_hash(assignment: Assignment) -> str:
    d = hashlib.sha256(importlib.metadata.version("mlgrade").encode() + b"\0")
    tree_hash([assignment.course.root / name for name, _ in assignment.shipped_files(hidden=True)], d)
    return d.hexdigest()


# --- the pool ------------------------------------------------------------------------------

_ASSIGNMENT: Assignment | None = None
_ZYGOTE = None  # this pool process's fork server: workers start without importing torch


def _slot_user(slot: int) -> str:
    return "mlgrade" if slot == 0 else f"mlgrade-w{slot}"


def _init(assignment_id: str, root: str, slots) -> None:
    """Pool process initializer: one worker user per process, the assignment loaded once."""
    global _ASSIGNMENT
    from mlgrade.course import open_course

    slot = slots.get()
    if os.geteuid() == 0:
        os.environ["MLGRADE_WORKER_USER"] = _slot_user(slot)
    import numpy  # noqa: F401  (already there when the forkserver preloaded them)
    import torch  # noqa: F401

    import mlgrade.runner  # noqa: F401
    _ASSIGNMENT = open_course(root).get(assignment_id)


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def _cut(text: str) -> str:
    """A log within MAX_LOG_CHARS: its beginning and its end (where grader errors are)."""
    if len(text) <= MAX_LOG_CHARS:
        return text
    half = MAX_LOG_CHARS // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def grade_one(assignment: Assignment, folder: Path, results_path: str | None) -> dict:
    """Grade one staged submission in this process, with its warm fork server (started on first
    use, replaced when it died): in a pool process, or in a Dask worker (mlgrade.cluster).
    ``written``: whether the runner wrote results.json (only with a ``results_path``)."""
    from mlgrade.runner import fork_server, grade

    global _ZYGOTE
    if _ZYGOTE is None or _ZYGOTE.proc.poll() is not None:
        _ZYGOTE = fork_server(assignment)
    outcome = grade(assignment, folder, results_path, zygote=_ZYGOTE)
    return {"results": outcome.results, "log": _cut(outcome.log), "written": results_path is not None,
            "pid": os.getpid(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _grade_one(student: str, folder: str, results_path: str) -> dict:
    """In a pool process: grade one submission (the runner writes its results.json)."""
    return grade_one(_ASSIGNMENT, Path(folder), results_path)


def _ensure_slot_users(jobs: int) -> None:
    if os.geteuid() != 0:
        return
    from mlgrade.provision import ensure_user

    for slot in range(jobs):
        ensure_user(_slot_user(slot))


class _Pool:
    def __init__(self, assignment: Assignment, jobs: int):
        self.assignment, self.jobs = assignment, jobs
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)
        self.executor = None

    def start(self) -> ProcessPoolExecutor:
        slots = self.ctx.Queue()
        for slot in range(self.jobs):
            slots.put(slot)
        root = str(self.assignment.course.root)
        self.executor = ProcessPoolExecutor(self.jobs, mp_context=self.ctx, initializer=_init,
                                            initargs=(self.assignment.id, root, slots))
        return self.executor

    def kill(self) -> None:
        """Kill every grading process and wait for them: none writes anything afterwards."""
        if self.executor is None:
            return
        procs = list((self.executor._processes or {}).values())
        for proc in procs:
            try:
                proc.kill()
            except (OSError, AttributeError):
                pass
        for proc in procs:
            try:
                proc.join(10)
            except (OSError, AttributeError, AssertionError, ValueError):
                pass
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = None


def _run(pool: _Pool, tasks: list[Submission], jobs: int, timeout: float, out_dir: Path, on_done,
         fn=None) -> list[str]:
    """Grade ``tasks``; call ``on_done(sub, result, failure)`` exactly once per submission.

    ``result`` is what ``fn`` returned (the grading completed), else ``failure`` says why it did
    not (crash, timeout, exception). What ``on_done`` raises is bookkeeping gone wrong: it is
    returned, one line per error, and never turns into a second report of that submission.
    """
    fn = fn or _grade_one
    pending: deque = deque(tasks)
    suspects: deque = deque()  # in flight when a pool broke: retried alone
    inflight: dict = {}  # future -> (submission, start, alone)
    errors: list[str] = []
    executor = pool.start()

    def submit(sub: Submission, alone: bool) -> None:
        fut = executor.submit(fn, sub.student, str(sub.folder), str(out_dir / sub.student / "results.json"))
        inflight[fut] = (sub, time.monotonic(), alone)

    try:
        while pending or suspects or inflight:
            alone_running = any(a for _, _, a in inflight.values())
            if suspects and not inflight:
                submit(suspects.popleft(), True)
            elif not suspects and not alone_running:
                while pending and len(inflight) < jobs:
                    submit(pending.popleft(), False)
            deadline = min(start for _, start, _ in inflight.values()) + timeout
            done, _ = wait(list(inflight), timeout=max(0.05, min(1.0, deadline - time.monotonic())),
                           return_when=FIRST_COMPLETED)
            restart = False
            finished = []  # (submission, result, failure): reported once no grading process can write
            for fut in done:
                sub, start, alone = inflight.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    restart = True
                    if alone:
                        finished.append((sub, None, Failure(MSG_CRASHED, time.monotonic() - start)))
                    else:
                        suspects.append(sub)
                except Exception as exc:  # the grading raised: this submission only
                    reason = MSG_RAISED.format(type=type(exc).__name__, message=str(exc)[:300])
                    log = "".join(traceback.format_exception(exc))
                    finished.append((sub, None, Failure(reason, time.monotonic() - start, log)))
                else:
                    finished.append((sub, result, None))
            now = time.monotonic()
            for fut, (sub, start, alone) in list(inflight.items()):
                if now - start > timeout and not fut.done():
                    inflight.pop(fut)
                    restart = True
                    finished.append((sub, None, Failure(MSG_TIMEOUT.format(timeout=timeout), now - start)))
            if restart:
                for fut, (sub, _, alone) in inflight.items():
                    # a broken pool fails every future: those still in flight are suspects too
                    (suspects if fut.done() and isinstance(fut.exception(), BrokenProcessPool) else pending).appendleft(sub)
                inflight.clear()
                pool.kill()
                executor = pool.start()
            for sub, result, failure in finished:
                report(on_done, sub, result, failure, errors)
    finally:
        pool.kill()
    return errors


def report(on_done, sub: Submission, result: dict | None, failure: Failure | None, errors: list[str]) -> None:
    """Report ``sub`` once through ``on_done``; what that raises is our bookkeeping, not the
    grading: one line in ``errors``, never retried nor reported again."""
    try:
        on_done(sub, result, failure)
    except Exception as exc:
        errors.append(f"{sub.student}: recording the result failed ({type(exc).__name__}: {exc})")


# --- rows (scores.csv: mlgrade.scores) ---------------------------------------------------------------------------

def _failure_reason(results: dict) -> str:
    """Why an engine_failure results.json gave no score (the reason it was written with)."""
    return failure_reason(results) or _first_line(results.get("output", "") or "") or "no score was given"


def _row(sub: Submission, results: dict) -> dict:
    """A student's line in scores.csv and the report, from their results.json."""
    failed = is_engine_failure(results)
    tests = [] if failed else [
        {"name": t.get("name", ""), "number": t.get("number", ""), "score": t.get("score", 0.0),
         "max_score": t.get("max_score", 0.0),
         "passed": passed(t), "message": "" if passed(t) else _first_line(t.get("output", ""))}
        for t in results.get("tests", [])]
    return {"student": sub.student, "submitters": sub.submitters, "status": "failed" if failed else "graded",
            "score": None if failed else results.get("score", 0.0), "tests": tests,
            "reason": _failure_reason(results) if failed else "", "output": results.get("output", "")}


# --- the class -----------------------------------------------------------------------------------

def _write_log(path: Path, text: str) -> None:
    text = _cut(printable(text))
    path.write_text(text if text.endswith("\n") else text + "\n")


def _stored(folder: Path, digest: str) -> dict | None:
    """The results.json of an unchanged, graded submission (None: grade it again)."""
    try:
        if (folder / HASH_FILE).read_text().strip() != digest:
            return None
        results = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) and not is_engine_failure(results) else None


def _prepare(folder: Path) -> None:
    """The student's output folder, emptied of an earlier grading's files (OSError: unusable)."""
    if os.path.lexists(folder) and not _is_dir(folder):
        raise NotADirectoryError(MSG_OUT_NOT_FOLDER.format(path=folder))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (HASH_FILE, "results.json", LOG_FILE):
        (folder / stale).unlink(missing_ok=True)


def grade_class(assignment: Assignment, submissions: Path, out_dir: Path, jobs: int = 2, force: bool = False,
                timeout: float = 900.0, console=None, progress: bool = True, run=None) -> Summary:
    """Grade every submission under ``submissions`` (a folder or an export zip) into ``out_dir``.

    ``run``: what grades the submissions to grade, ``run(assignment, todo, timeout, on_done)``
    returning the bookkeeping errors like :func:`_run` (``mlgrade.cluster.Cluster.run``: a Dask
    cluster); by default the local pool of ``jobs`` processes.

    ``summary.ok`` is False when a student was given no score (``summary.failed``, reasons in
    ``summary.failures``) or something was not written (``summary.errors``). Raises ExportError
    for an export zip refused as a whole.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from mlgrade.report import write_report
    from mlgrade.scores import write_scores

    if not assignment.has_graders():
        raise FileNotFoundError(f"no graders for {assignment.id} under {assignment.graders_dir}")
    start = time.monotonic()
    jobs = max(1, int(jobs))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    work = Path(tempfile.mkdtemp(prefix="mlgrade-batch-"))
    os.chmod(work, 0o711)
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[last]}", markup=False),
                   console=console, disable=not progress, transient=False)

    def say(text: str) -> None:
        bar.console.print(printable(text), markup=False, highlight=False)

    def problem(text: str) -> None:
        summary.errors.append(printable(text))
        say(text)

    try:
        subs, unplaced = discover(assignment, Path(submissions), work)
        for text in unplaced:
            problem(f"export: {text}")
        todo, refused = _plan(subs, out_dir, _engine_hash(assignment), force, summary)

        def on_done(sub: Submission, result: dict | None, failure: Failure | None) -> None:
            """Report ``sub`` once: count it, then write what is ours (each write on its own)."""
            if failure is not None:
                results, log = engine_failure(failure.reason, failure.seconds), failure.log or failure.reason
            else:
                results, log = result["results"], result.get("log", "")
                pid = result.get("pid")
                summary.peak_rss_mb[pid] = max(summary.peak_rss_mb.get(pid, 0.0), result.get("peak_rss_mb", 0.0))
            row = _row(sub, results)
            summary.rows.append(row)
            if row["status"] == "failed":
                summary.failed += 1
                summary.failures[sub.student] = row["reason"]
                say(f"{sub.student}: not graded: {row['reason']}")
            else:
                summary.graded += 1
            shown = "no score" if row["score"] is None else f"{row['score']:g}"
            bar.update(task, advance=1, last=printable(f"{sub.student}: {shown}"))
            if failure is None or failure.writable:
                unwritten = failure is not None or not result.get("written", True)  # a cluster's: ours to write
                error = _record(out_dir / sub.student, results if unwritten else None, log,
                                sub.digest if row["status"] == "graded" else None)
                if error:
                    problem(f"{sub.student}: {error}")

        with bar:
            task = bar.add_task(f"grading {assignment.id}", total=len(todo) + len(refused), last="")
            for sub, failure in refused:
                on_done(sub, None, failure)
            if todo and run is not None:
                for text in run(assignment, todo, timeout, on_done):
                    problem(text)
            elif todo:
                _ensure_slot_users(min(jobs, len(todo)))
                n = min(jobs, len(todo))
                for text in _run(_Pool(assignment, n), todo, n, timeout, out_dir, on_done):
                    problem(text)
        write_scores(assignment, summary.rows, out_dir / "scores.csv")
        write_report(assignment, summary.rows, out_dir / "report.html", errors=summary.errors)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary.seconds = time.monotonic() - start
    return summary


def _plan(subs: list[Submission], out_dir: Path, engine: str, force: bool, summary: Summary):
    """(to grade, refused with their Failure): unchanged graded students are skipped (their row
    taken from the results.json they have), every other's output folder is emptied."""
    todo, refused = [], []
    for sub in subs:
        sub.digest = tree_hash([sub.folder], hashlib.sha256(engine.encode())).hexdigest()
        folder = out_dir / sub.student
        stored = None if force or sub.problems else _stored(folder, sub.digest)
        if stored is not None:
            summary.skipped += 1
            summary.rows.append(_row(sub, stored))
            continue
        try:
            _prepare(folder)
        except OSError as exc:
            refused.append((sub, Failure(str(exc), writable=False)))
        else:
            if sub.problems:
                refused.append((sub, Failure("; ".join(sub.problems), log="\n".join(sub.problems))))
            else:
                todo.append(sub)
    return todo, refused


def _record(folder: Path, results: dict | None, log: str, digest: str | None) -> str | None:
    """Write a reported student's files: results.json when the runner did not write it (a
    failure record, a cluster's grading), the log, then the hash (only once all the rest is
    written). Returns what could not be written, or None."""
    writes = [("results.json", lambda: write_results(str(folder / "results.json"), results))
              ] if results is not None else []
    writes.append((LOG_FILE, lambda: _write_log(folder / LOG_FILE, log)))
    if digest is not None:  # graded and recorded in full: skipped while unchanged
        writes.append((HASH_FILE, lambda: _write_hash(folder / HASH_FILE, digest)))
    for file, write in writes:
        try:
            write()
        except Exception as exc:
            return MSG_UNRECORDED.format(file=file, type=type(exc).__name__, message=str(exc)[:300])
    return None


def _write_hash(path: Path, digest: str) -> None:
    path.write_text(digest + "\n")
