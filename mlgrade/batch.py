"""``mlgrade grade``: grade a whole class with a pool of reused grading processes.

Each pool process imports numpy, torch, pytest and the engine once (the forkserver preloads
them) and then calls :func:`mlgrade.runner.grade` for one submission after another; student
code still runs in a fresh sandbox worker per submission. The parent only schedules: at most
one submission per pool process is in flight, each with an overall deadline. A submission that
overruns it has its pool killed and restarted (the others in flight are re-queued, unharmed);
a pool that breaks (a grading process died) has its in-flight submissions retried one at a
time, so the one that breaks it again is the one marked failed.

When grading as root, pool process k runs student code as its own user (``mlgrade`` for k=0,
``mlgrade-w<k>`` otherwise): the sandbox kills every process of its worker user when a
submission ends, which must not reach a neighbour's worker.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import re
import resource
import shutil
import tempfile
import time
import zipfile
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from mlgrade.assignments import Assignment

__all__ = ["Submission", "Summary", "discover", "grade_class", "tree_hash"]

HASH_FILE = ".mlgrade-hash"
METADATA = "submission_metadata.yml"
PRELOAD = ["numpy", "torch", "pytest", "mlgrade.runner", "mlgrade.grading", "mlgrade.results"]


@dataclass
class Submission:
    student: str
    folder: Path  # staged: only the contract's files
    submitters: str = ""


@dataclass
class Summary:
    graded: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    rows: list = field(default_factory=list)  # one dict per student (see _row)
    peak_rss_mb: dict = field(default_factory=dict)  # pool pid -> max RSS of that grading process


# --- finding the submissions -----------------------------------------------------------------

def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]+", "_", name).strip("._") or "student"


def _extract(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = (dest / info.filename).resolve()
            if not str(target).startswith(str(dest.resolve()) + os.sep) and target != dest.resolve():
                raise ValueError(f"{zip_path.name}: unsafe path {info.filename!r}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    return dest


def _read_metadata(path: Path) -> dict[str, str]:
    """Gradescope's submission_metadata.yml: submission folder -> 'Name <email>; ...'."""
    try:
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
    except ImportError:
        data = _mini_yaml(path.read_text())
    except Exception:  # a broken metadata file only loses the names
        return {}
    found = {}
    for sub_id, meta in data.items() if isinstance(data, dict) else []:
        people = (meta or {}).get(":submitters") or (meta or {}).get("submitters") or []
        names = []
        for p in people if isinstance(people, list) else []:
            if isinstance(p, dict):
                name, email = p.get(":name") or p.get("name") or "", p.get(":email") or p.get("email") or ""
                names.append(f"{name} <{email}>" if email else name)
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
    for candidate in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if (candidate / METADATA).is_file():
            return candidate, _read_metadata(candidate / METADATA)
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        inner = [p for p in entries[0].iterdir() if not p.name.startswith(".")]
        if inner and all(p.is_dir() for p in inner) or any(p.name == METADATA for p in inner):
            return _base(entries[0])
    return folder, {}


def _find(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    for name in names:  # a student who uploaded a folder
        hits = sorted(p for p in folder.rglob(name) if p.is_file() and "__MACOSX" not in p.parts)
        if hits:
            return hits[0]
    return None


def discover(assignment: Assignment, source: Path, work: Path) -> list[Submission]:
    """Stage every student's contract files under ``work/staged/<student>``."""
    source = Path(source)
    if source.is_file() and zipfile.is_zipfile(source):
        source = _extract(source, work / "export")
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: not a folder of submissions nor a zip")
    base, metadata = _base(source)
    accepted = {name: spec for spec in assignment.files for name in spec.accept}
    subs: list[Submission] = []
    seen: set[str] = set()
    for entry in sorted(base.iterdir()):
        if entry.name.startswith((".", "__MACOSX")) or entry.name == METADATA:
            continue
        student = _safe(entry.name if entry.is_dir() else entry.stem)
        if student in seen:
            student = _safe(entry.name)
        seen.add(student)
        staged = work / "staged" / student
        staged.mkdir(parents=True, exist_ok=True)
        if entry.is_dir():
            for spec in assignment.files:
                found = _find(entry, spec.accept)
                if found is not None:
                    shutil.copy(found, staged / found.name)
        elif entry.is_file():
            # one file per student: named after the student, graded as the contract's file of that type
            match = [n for n in accepted if Path(n).suffix == entry.suffix]
            if not match:
                continue
            shutil.copy(entry, staged / match[0])
        subs.append(Submission(student, staged, metadata.get(entry.name, "")))
    return subs


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
    tree_hash([assignment.graders_dir, assignment.reference_dir, assignment.package_dir], d)
    return d.hexdigest()


# --- the pool ------------------------------------------------------------------------------

_ASSIGNMENT: Assignment | None = None
_ZYGOTE = None  # this pool process's fork server: workers start without importing torch


def _slot_user(slot: int) -> str:
    return "mlgrade" if slot == 0 else f"mlgrade-w{slot}"


def _init(assignment_id: str, root: str | None, slots) -> None:
    """Pool process initializer: one worker user per process, the assignment loaded once."""
    global _ASSIGNMENT
    from mlgrade import assignments

    slot = slots.get()
    if os.geteuid() == 0:
        os.environ["MLGRADE_WORKER_USER"] = _slot_user(slot)
    import numpy  # noqa: F401  (already there when the forkserver preloaded them)
    import torch  # noqa: F401

    import mlgrade.runner  # noqa: F401
    _ASSIGNMENT = assignments.get(assignment_id, Path(root) if root else None)


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def _grade_one(student: str, folder: str, results_path: str) -> dict:
    from mlgrade.results import earned
    from mlgrade.runner import grade

    global _ZYGOTE
    from mlgrade.sandbox import Zygote

    if _ZYGOTE is None or _ZYGOTE.proc.poll() is not None:
        _ZYGOTE = Zygote()
    outcome = grade(_ASSIGNMENT, Path(folder), results_path, zygote=_ZYGOTE)
    tests = [{"name": t.name, "score": earned(t), "max_score": t.max_score, "passed": bool(t.passed),
              "message": "" if t.passed else _first_line(t.output)} for t in outcome.tests]
    return {"student": student, "score": outcome.results["score"], "tests": tests,
            "output": outcome.results.get("output", ""),
            "pid": os.getpid(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


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
        root = str(self.assignment.root) if self.assignment.root else None
        self.executor = ProcessPoolExecutor(self.jobs, mp_context=self.ctx, initializer=_init,
                                            initargs=(self.assignment.id, root, slots))
        return self.executor

    def kill(self) -> None:
        if self.executor is None:
            return
        for proc in list((self.executor._processes or {}).values()):
            try:
                proc.kill()
            except (OSError, AttributeError):
                pass
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = None


def _failure(message: str, seconds: float) -> dict:
    return {"score": 0.0, "execution_time": round(seconds, 1), "tests": [],
            "output": f"{message}. No score was given; your instructor has been told."}


def _run(pool: _Pool, tasks: list[Submission], jobs: int, timeout: float, out_dir: Path, on_done,
         fn=None) -> None:
    fn = fn or _grade_one
    pending: deque = deque(tasks)
    suspects: deque = deque()  # in flight when a pool broke: retried alone
    inflight: dict = {}  # future -> (submission, start, alone)
    executor = pool.start()
    try:
        while pending or suspects or inflight:
            alone_running = any(a for _, _, a in inflight.values())
            if suspects and not inflight:
                sub = suspects.popleft()
                fut = executor.submit(fn, sub.student, str(sub.folder), str(out_dir / sub.student / "results.json"))
                inflight[fut] = (sub, time.monotonic(), True)
            elif not suspects and not alone_running:
                while pending and len(inflight) < jobs:
                    sub = pending.popleft()
                    fut = executor.submit(fn, sub.student, str(sub.folder),
                                          str(out_dir / sub.student / "results.json"))
                    inflight[fut] = (sub, time.monotonic(), False)
            deadline = min(start for _, start, _ in inflight.values()) + timeout
            done, _ = wait(list(inflight), timeout=max(0.05, min(1.0, deadline - time.monotonic())),
                           return_when=FIRST_COMPLETED)
            restart = False
            for fut in done:
                sub, start, alone = inflight.pop(fut)
                try:
                    on_done(sub, fut.result(), None)
                except BrokenProcessPool:
                    restart = True
                    if alone:
                        on_done(sub, None, _failure("The grading process crashed on this submission",
                                                    time.monotonic() - start))
                    else:
                        suspects.append(sub)
                except Exception as exc:  # grader or engine error: this submission only
                    on_done(sub, None, _failure(f"Grading failed ({type(exc).__name__}: {str(exc)[:300]})",
                                                time.monotonic() - start))
            now = time.monotonic()
            for fut, (sub, start, alone) in list(inflight.items()):
                if now - start > timeout:
                    inflight.pop(fut)
                    restart = True
                    on_done(sub, None, _failure(f"Grading took longer than {timeout:g} s and was stopped",
                                                now - start))
            if restart:
                for fut, (sub, _, alone) in inflight.items():
                    # a broken pool fails every future: those still in flight are suspects too
                    (suspects if fut.done() and isinstance(fut.exception(), BrokenProcessPool) else pending).appendleft(sub)
                inflight.clear()
                pool.kill()
                executor = pool.start()
    finally:
        pool.kill()


def _row(student: str, submitters: str, result: dict) -> dict:
    return {"student": student, "submitters": submitters, "score": result.get("score", 0.0),
            "tests": result.get("tests", []), "output": result.get("output", "")}


def _stored_row(student: str, submitters: str, results_path: Path) -> dict:
    res = json.loads(results_path.read_text())
    tests = [{"name": t.get("name", ""), "score": t.get("score", 0.0), "max_score": t.get("max_score", 0.0),
              "passed": t.get("status") == "passed" if "status" in t else t.get("score") == t.get("max_score"),
              "message": "" if t.get("score") == t.get("max_score") else _first_line(t.get("output", ""))}
             for t in res.get("tests", [])]
    return _row(student, submitters, {"score": res.get("score", 0.0), "tests": tests, "output": res.get("output", "")})


def write_scores(rows: list[dict], path: Path) -> list[str]:
    names: list[str] = []
    for row in rows:
        for t in row["tests"]:
            if t["name"] not in names:
                names.append(t["name"])
    with_submitters = any(r["submitters"] for r in rows)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", *(["submitters"] if with_submitters else []), "total", *names])
        for row in sorted(rows, key=lambda r: r["student"]):
            by_name = {t["name"]: t["score"] for t in row["tests"]}
            w.writerow([row["student"], *([row["submitters"]] if with_submitters else []), f"{row['score']:g}",
                        *(f"{by_name[n]:g}" if n in by_name else "" for n in names)])
    return names


def grade_class(assignment: Assignment, submissions: Path, out_dir: Path, jobs: int = 2, force: bool = False,
                timeout: float = 900.0, console=None, progress: bool = True) -> Summary:
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
    try:
        subs = discover(assignment, Path(submissions), work)
        engine = _engine_hash(assignment)
        todo, hashes = [], {}
        for sub in subs:
            hashes[sub.student] = tree_hash([sub.folder], hashlib.sha256(engine.encode())).hexdigest()
            folder = out_dir / sub.student
            stored = folder / HASH_FILE
            if (not force and stored.is_file() and stored.read_text().strip() == hashes[sub.student]
                    and (folder / "results.json").is_file()):
                summary.skipped += 1
                summary.rows.append(_stored_row(sub.student, sub.submitters, folder / "results.json"))
                continue
            folder.mkdir(parents=True, exist_ok=True)
            for stale in (stored, folder / "results.json"):
                stale.unlink(missing_ok=True)
            todo.append(sub)

        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
                       console=console, disable=not progress, transient=False)
        with bar:
            task = bar.add_task(f"grading {assignment.id}", total=len(todo), last="")

            def on_done(sub: Submission, result: dict | None, failure: dict | None) -> None:
                folder = out_dir / sub.student
                if failure is not None:
                    summary.failed += 1
                    (folder / "results.json").write_text(json.dumps(failure, indent=2))
                    summary.rows.append(_row(sub.student, sub.submitters, failure))
                else:
                    summary.graded += 1
                    (folder / HASH_FILE).write_text(hashes[sub.student] + "\n")
                    summary.rows.append(_row(sub.student, sub.submitters, result))
                    pid = result.get("pid")
                    summary.peak_rss_mb[pid] = max(summary.peak_rss_mb.get(pid, 0.0), result.get("peak_rss_mb", 0.0))
                score = (failure or result).get("score", 0.0)
                bar.update(task, advance=1, last=f"{sub.student}: {score:g}")

            if todo:
                _ensure_slot_users(min(jobs, len(todo)))
                n = min(jobs, len(todo))
                _run(_Pool(assignment, n), todo, n, timeout, out_dir, on_done)
        write_scores(summary.rows, out_dir / "scores.csv")
        write_report(assignment, summary.rows, out_dir / "report.html")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary.seconds = time.monotonic() - start
    return summary
