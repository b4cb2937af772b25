"""The local pool: submissions graded by a few reused grading processes, each with a deadline.

Each pool process imports numpy, torch, pytest and the engine once (the forkserver preloads
them) and then calls :func:`mlgrade.runner.grade` for one submission after another, with its
kept fork server (:class:`mlgrade.runner.ForkServers`); student code still runs in a fresh
sandbox worker per submission. The parent only schedules (:func:`run_pool`): at most one
submission per pool process is in flight, each with an overall deadline. A submission that
overruns it has its pool killed and restarted (the others in flight are re-queued, unharmed);
a pool that breaks (a grading process died) has its in-flight submissions retried one at a
time, so the one that breaks it again is the one marked failed. Every submission is reported
exactly once (:func:`report`).

When grading as root, pool process k runs student code as its own user (``mlgrade`` for k=0,
``mlgrade-w<k>`` otherwise; ``$MLGRADE_WORKER_USER`` replaces ``mlgrade``): the sandbox kills every process of its worker user when a
submission ends, which must not reach a neighbour's worker.
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from mlgrade.course import Assignment
from mlgrade.intake import Submission

__all__ = ["Failure", "MSG_RAISED", "MSG_TIMEOUT", "Pool", "cut_log", "ensure_slot_users", "grade_one", "grade_outcome", "report",
           "run_pool"]

PRELOAD = ["numpy", "torch", "pytest", "mlgrade.runner", "mlgrade.grading", "mlgrade.results"]
MAX_LOG_CHARS = 2_000_000

MSG_CRASHED = "the grading process crashed on this submission"
MSG_RAISED = "grading failed ({type}: {message})"
MSG_TIMEOUT = "grading took longer than {timeout:g} s and was stopped"


@dataclass(frozen=True)
class Failure:
    """A grading that gave no score: why (for the student and the instructor), and the log."""

    reason: str
    seconds: float = 0.0
    log: str = ""
    writable: bool = True  # False: its output folder is not ours to write (nothing is written)



_ASSIGNMENT: Assignment | None = None
_FORK_SERVERS = None  # this process's fork servers (runner.ForkServers): workers start without importing torch


def _slot_user(slot: int) -> str:
    from mlgrade.provision import worker_user_name

    base = worker_user_name()
    return base if slot == 0 else f"{base}-w{slot}"


def _init(assignment: Assignment, slots) -> None:
    """Pool process initializer: one worker user per process, the assignment as the parent read it
    (plain data: its course, paths and limits, not read again)."""
    global _ASSIGNMENT
    slot = slots.get()
    if os.geteuid() == 0:
        os.environ["MLGRADE_WORKER_USER"] = _slot_user(slot)
    import numpy  # noqa: F401  (already there when the forkserver preloaded them)
    import torch  # noqa: F401

    import mlgrade.runner  # noqa: F401
    _ASSIGNMENT = assignment


def cut_log(text: str) -> str:
    """A log within MAX_LOG_CHARS: its beginning and its end (where grader errors are)."""
    if len(text) <= MAX_LOG_CHARS:
        return text
    half = MAX_LOG_CHARS // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def _warm_grade(assignment: Assignment, folder: Path, results_path: str | None):
    """runner.grade with this process's warm fork server (started on first use, replaced when it died)."""
    from mlgrade.runner import ForkServers, grade

    global _FORK_SERVERS
    if _FORK_SERVERS is None:
        _FORK_SERVERS = ForkServers()
    return grade(assignment, folder, results_path, zygote=_FORK_SERVERS.get(assignment))


def grade_one(assignment: Assignment, folder: Path, results_path: str | None) -> dict:
    """Grade one staged submission in this process, with its warm fork server: in a pool
    process, or in a Dask worker (mlgrade.cluster). ``written``: whether the runner wrote
    results.json (only with a ``results_path``)."""
    outcome = _warm_grade(assignment, folder, results_path)
    return {"results": outcome.results, "log": cut_log(outcome.log), "written": results_path is not None,
            "pid": os.getpid(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _grade_one(student: str, folder: str, results_path: str) -> dict:
    """In a pool process: grade one submission (the runner writes its results.json)."""
    return grade_one(_ASSIGNMENT, Path(folder), results_path)


def grade_outcome(student: str, folder: str, results_path: str) -> object:
    """In a pool process: grade one submission and return its whole runner.Outcome, every test's
    verdict included (``mlgrade validate`` judges each); no results.json is written."""
    return _warm_grade(_ASSIGNMENT, Path(folder), None)


def ensure_slot_users(jobs: int) -> None:
    if os.geteuid() != 0:
        return
    from mlgrade.provision import ensure_user

    for slot in range(jobs):
        ensure_user(_slot_user(slot))


class Pool:
    def __init__(self, assignment: Assignment, jobs: int):
        self.assignment, self.jobs = assignment, jobs
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)
        self.executor = None

    def start(self) -> ProcessPoolExecutor:
        slots = self.ctx.Queue()
        for slot in range(self.jobs):
            slots.put(slot)
        self.executor = ProcessPoolExecutor(self.jobs, mp_context=self.ctx, initializer=_init,
                                            initargs=(self.assignment, slots))
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


def run_pool(pool: Pool, tasks: list[Submission], jobs: int, timeout: float, out_dir: Path, on_done,
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

