"""scores.csv: one line per student, from each student's results.json.

:func:`score_row` is a student's row (also the report's, :mod:`mlgrade.report`); a student given
no score has status "failed", an empty total and the reason it was written with.
"""
from __future__ import annotations

import csv
from pathlib import Path

from mlgrade.intake import Submission
from mlgrade.results import failure_reason, is_engine_failure, passed

__all__ = ["score_row", "write_scores"]


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def _failure_reason(results: dict) -> str:
    """Why an engine_failure results.json gave no score (the reason it was written with)."""
    return failure_reason(results) or _first_line(results.get("output", "") or "") or "no score was given"


def score_row(sub: Submission, results: dict) -> dict:
    """A student's line in scores.csv and the report, from their results.json."""
    failed = is_engine_failure(results)
    tests = [] if failed else [
        {"name": t.get("name", ""), "score": t.get("score", 0.0), "max_score": t.get("max_score", 0.0),
         "passed": passed(t), "message": "" if passed(t) else _first_line(t.get("output", ""))}
        for t in results.get("tests", [])]
    return {"student": sub.student, "submitters": sub.submitters, "status": "failed" if failed else "graded",
            "score": None if failed else results.get("score", 0.0), "tests": tests,
            "reason": _failure_reason(results) if failed else "", "output": results.get("output", "")}


def _cell(text) -> str:
    """A text cell a spreadsheet keeps as text: a leading = + - @ tab or CR would start a formula."""
    text = str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_scores(rows: list[dict], path: Path) -> list[str]:
    """scores.csv: one line per student; a student given no score has an empty total."""
    names: list[str] = []
    for row in rows:
        for t in row["tests"]:
            if t["name"] not in names:
                names.append(t["name"])
    with_submitters = any(r["submitters"] for r in rows)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", *(["submitters"] if with_submitters else []), "status", "total", *map(_cell, names)])
        for row in sorted(rows, key=lambda r: r["student"]):
            by_name = {t["name"]: t["score"] for t in row["tests"]}
            total = "" if row["score"] is None else f"{row['score']:g}"
            w.writerow([_cell(row["student"]), *([_cell(row["submitters"])] if with_submitters else []),
                        row["status"], total, *(f"{by_name[n]:g}" if n in by_name else "" for n in names)])
    return names

