"""A class's scores by exercise: the subtotals the report and scores.csv show, and scores.csv itself.

A test belongs to the exercise whose contract names include the name its title begins with
(``"kl_loss: ..."`` is in ``vae`` when ``[exercises] vae = ["reparameterize", "kl_loss"]``).

scores.csv, one line per student, sorted by student, in this column order:

- ``student``: the output folder's name (``out/<student>/results.json``);
- ``name``, ``email``, ``submitters``: only for a Gradescope export (its submission_metadata.yml);
  a group's names and emails are joined with "; ";
- ``status``: ``graded``, or ``failed`` when no score was given (then every score cell is empty);
- ``total``, then one column per exercise (its subtotal), in the order of assignment.toml;
- then one column per test, titled with its name.

Every score is a plain number. A gradebook import reads it as is: Moodle (Grades > Import > CSV
file) maps ``email`` to "Email address" and ``total`` or an exercise column to a grade item;
Canvas and Gradescope's own import match students by ``email`` (or the name) and take one points column.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

__all__ = ["exercise_of", "exercises", "subtotals", "write_scores"]

OTHER = "other"  # tests whose title begins with no contract name of an exercise (a file's own tests)


def exercise_of(assignment, test_name: str) -> str:
    prefix = test_name.split(": ", 1)[0]
    for exercise, names in assignment.exercises.items():
        if prefix in names:
            return exercise
    return OTHER


def exercises(assignment, rows: list[dict]) -> dict[str, float]:
    """Each exercise's points (maximum), in the order of assignment.toml, from the graded rows."""
    maxima: dict[str, float] = {}
    seen: set[str] = set()
    for row in rows:
        for t in row["tests"]:
            if t["name"] not in seen:
                seen.add(t["name"])
                key = exercise_of(assignment, t["name"])
                maxima[key] = maxima.get(key, 0.0) + t.get("max_score", 0.0)
    order = [*assignment.exercises, OTHER]
    return {k: maxima[k] for k in order if k in maxima}


def subtotals(assignment, row: dict) -> dict[str, float]:
    """A graded student's points per exercise."""
    points: dict[str, float] = {}
    for t in row["tests"]:
        key = exercise_of(assignment, t["name"])
        points[key] = points.get(key, 0.0) + t["score"]
    return points


def _cell(text) -> str:
    """A text cell a spreadsheet keeps as text: a leading = + - @ tab or CR would start a formula."""
    text = str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


_PERSON = re.compile(r"^(?P<name>.*?)\s*<(?P<email>[^<>]*)>$")


def _people(submitters: str) -> tuple[str, str]:
    """('Name; Name', 'email; email') from batch's 'Name <email>; Name <email>'."""
    names, emails = [], []
    for person in filter(None, (p.strip() for p in submitters.split(";"))):
        m = _PERSON.match(person)
        names.append(m["name"] if m else person)
        emails.append(m["email"] if m else "")
    return "; ".join(names), "; ".join(e for e in emails if e)


def _number(value: float) -> str:
    return f"{value:g}"


def write_scores(assignment, rows: list[dict], path: Path) -> None:
    """Write scores.csv (the format of this module's docstring) for ``rows`` as made by mlgrade.batch."""
    graded = [r for r in rows if r.get("status") != "failed"]
    parts = exercises(assignment, graded)
    tests: dict[str, None] = {}  # the tests' names, in the order of the first results that hold them
    for row in graded:
        for t in row["tests"]:
            tests.setdefault(t["name"])
    people = any(r["submitters"] for r in rows)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", *(["name", "email", "submitters"] if people else []), "status", "total",
                    *map(_cell, parts), *map(_cell, tests)])
        for row in sorted(rows, key=lambda r: r["student"]):
            who = [*map(_cell, _people(row["submitters"])), _cell(row["submitters"])] if people else []
            if row["score"] is None:
                w.writerow([_cell(row["student"]), *who, row["status"], "", *([""] * (len(parts) + len(tests)))])
                continue
            points = subtotals(assignment, row)
            by_name = {t["name"]: t["score"] for t in row["tests"]}
            w.writerow([_cell(row["student"]), *who, row["status"], _number(row["score"]),
                        *(_number(points.get(k, 0.0)) for k in parts),
                        *(_number(by_name[n]) if n in by_name else "" for n in tests)])
