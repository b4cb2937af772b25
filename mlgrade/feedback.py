"""What the student reads in results.json: the wording of a failed test, of a test the engine could
not grade, of the submission-wide summary, and the bounds on each.

The results plugin (:mod:`mlgrade.results`) calls these when a test's report comes in and when the
session finishes; nothing here decides a score.
"""
from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from mlgrade.grading import GradingSession, SubmissionError
from mlgrade.sandbox import EngineFailure

__all__ = ["MSG_ENGINE_FAILED", "MSG_INTERNAL", "MSG_NOT_GRADED", "failure_output", "passed_output", "summary"]

MSG_ENGINE_FAILED = "The autograder itself failed (the instructor has the details). No score was given: {reason}"
MSG_NOT_GRADED = "not graded: the autograder itself failed (the instructor has the details)"
MSG_INTERNAL = "internal error in the grader ({type}); this is not your fault: please tell your instructor"
MAX_TEST_OUTPUT = 6000
MAX_OUTPUT = 20000  # the submission-wide message (load errors, what was graded)
MAX_LOAD_OUTPUT = 2000  # characters of what a module printed at import, shown in results.json's output


def failure_output(exc: BaseException | None, hide_errors: str | None, session: GradingSession) -> tuple[str, str | None]:
    """(the failed test's message for the student, the grader's traceback for the instructor when
    the grader itself raised, else None)."""
    internal = None
    if isinstance(exc, AssertionError):
        message = str(exc) or "check failed"
    elif exc is not None and isinstance(exc, pytest.skip.Exception):
        message = str(exc.msg)
    elif isinstance(exc, EngineFailure):  # latched by the sandbox: the grading gives no score
        return MSG_NOT_GRADED, None
    else:
        internal = "".join(traceback.format_exception(exc))
        message = MSG_INTERNAL.format(type=type(exc).__name__)
    if hide_errors:
        message = hide_errors
    elif session.calls and not isinstance(exc, SubmissionError):
        message += f"\nChecked with: {session.calls[-1]}"
    printed = "".join(session.output)
    if printed:
        message += "\nYour code printed:\n" + printed
    if len(message) > MAX_TEST_OUTPUT:
        message = message[:MAX_TEST_OUTPUT] + "\n... (truncated)"
    return message, internal


def passed_output(session: GradingSession) -> str:
    """What a passed test shows: what the student's code printed during it, if anything."""
    printed = "".join(session.output)
    return "Your code printed:\n" + printed if printed else ""


def summary(session: GradingSession) -> str:
    """The submission-wide message: which files were graded, and why a module could not be loaded."""
    assignment, sandbox = session.assignment, session.sandbox
    lines = []
    given = {Path(name).stem for name in assignment.helpers}  # utils.py of the sheet: not the student's
    modules = [m for m in session.modules.values() if m.name not in given]
    for m in modules:
        if m.chosen:
            lines.append(m.chosen)
        if m.error:
            lines.append(m.error.message + ".")
        elif m.file.endswith(".ipynb"):
            cells = len(m.chunks)
            lines.append(f"Graded {m.file}: the imports, functions, classes and constants of {cells} code "
                         "cell(s); other statements (training loops, plots, prints) were not run.")
        else:
            lines.append(f"Graded {m.file}.")
    if sandbox is not None:
        for m in modules:  # the submission's own modules, not whatever names a worker reported
            err = sandbox.load_errors.get(m.name)
            if err:
                lines.append(f"{m.name}: could not be loaded ({str(err.get('type'))[:200]}: {str(err.get('message', ''))[:300]}).")
        for m in modules:
            printed = sandbox.load_output.get(m.name, "")
            if printed.strip():
                cut = printed[:MAX_LOAD_OUTPUT] + ("\n... (output truncated)" if len(printed) > MAX_LOAD_OUTPUT else "")
                lines.append(f"{m.file} printed while it was loaded:\n{cut}")
    return "\n".join(lines)
