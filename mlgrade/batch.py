"""``mlgrade grade``: grade a whole class, each student once, into an output folder.

:func:`grade_class` reads the class in (:mod:`mlgrade.intake`), skips students whose staged files
and engine are unchanged since their last grading (a hash beside their results.json), grades the
others with the local pool (:mod:`mlgrade.pool`) or a Dask cluster (:mod:`mlgrade.cluster`), and
writes scores.csv (:mod:`mlgrade.scores`) and report.html (:mod:`mlgrade.report`).

Every student is reported once: graded (a score), or failed (no score: an engine failure, a
crash, a timeout, or a submission that could not be read), never both. results.json is written
by the runner for a completed grading (on a Dask cluster, by this module from the worker's
reply) and by :func:`mlgrade.results.write_results` for every failure; what fails afterwards
(the log, the hash file) is the instructor's problem, reported in the summary, and never
replaces a result.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlgrade.course import Assignment
from mlgrade.intake import ExportError, Submission, discover
from mlgrade.pool import Failure, Pool, cut_log, ensure_slot_users, run_pool
from mlgrade.results import engine_failure, is_engine_failure, write_results
from mlgrade.scores import score_row, write_scores
from mlgrade.staging import is_dir
from mlgrade.terminal import printable

__all__ = ["ExportError", "Summary", "grade_class", "tree_hash"]

HASH_FILE = ".mlgrade-hash"
LOG_FILE = "grading.log"  # beside each student's results.json: the instructor's log of that grading

MSG_OUT_NOT_FOLDER = "{path} exists and is not a folder: nothing written for this student"
MSG_UNRECORDED = "{file} not written ({type}: {message})"


@dataclass
class Summary:
    graded: int = 0
    skipped: int = 0
    failed: int = 0  # submissions given no score: engine failure, crash, timeout, unreadable input
    seconds: float = 0.0
    rows: list = field(default_factory=list)  # one dict per student (mlgrade.scores.score_row)
    failures: dict = field(default_factory=dict)  # student -> why no score was given
    errors: list = field(default_factory=list)  # the instructor's problems that changed no score
    peak_rss_mb: dict = field(default_factory=dict)  # pool pid -> max RSS of that grading process

    @property
    def ok(self) -> bool:
        """Every student has a score and everything was written."""
        return not self.failed and not self.errors




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



# --- the class -----------------------------------------------------------------------------------

def _write_log(path: Path, text: str) -> None:
    text = cut_log(printable(text))
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
    if os.path.lexists(folder) and not is_dir(folder):
        raise NotADirectoryError(MSG_OUT_NOT_FOLDER.format(path=folder))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (HASH_FILE, "results.json", LOG_FILE):
        (folder / stale).unlink(missing_ok=True)


def grade_class(assignment: Assignment, submissions: Path, out_dir: Path, jobs: int = 2, force: bool = False,
                timeout: float = 900.0, console=None, progress: bool = True, run=None) -> Summary:
    """Grade every submission under ``submissions`` (a folder or an export zip) into ``out_dir``.

    ``run``: what grades the submissions to grade, ``run(assignment, todo, timeout, on_done)``
    returning the bookkeeping errors like :func:`mlgrade.pool.run_pool` (``mlgrade.cluster.Cluster.run``: a Dask
    cluster); by default the local pool of ``jobs`` processes.

    ``summary.ok`` is False when a student was given no score (``summary.failed``, reasons in
    ``summary.failures``) or something was not written (``summary.errors``). Raises ExportError
    for an export zip refused as a whole.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from mlgrade.report import write_report

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
            row = score_row(sub, results)
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
                ensure_slot_users(min(jobs, len(todo)))
                n = min(jobs, len(todo))
                for text in run_pool(Pool(assignment, n), todo, n, timeout, out_dir, on_done):
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
            summary.rows.append(score_row(sub, stored))
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
