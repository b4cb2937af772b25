"""The class report of ``mlgrade grade``: one self-contained HTML file that works offline.

In the order an instructor asks: how did each exercise go (mean share of its points, how many
students earned all of it, part of it, none); what went wrong and for whom (failures grouped by
cause, the cause hitting most students first, the students named; a submission that never
loaded, or was given no score, is one cause of its own, not a failure of every test); every test
with its full name and how many passed, earned partial credit or failed; the score histogram
(integer axes); then the students, a table sortable by any column, linking each student's
results.json and grading.log. The scores are those of graded submissions only: a submission
given no score (an engine failure, a crash, a timeout, an unreadable upload) is listed with its
reason, never counted as 0. Nothing is fetched: the figure is an embedded PNG, the sorting a
few lines of inline script.
"""
from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from mlgrade.scores import exercise_of, exercises, subtotals

__all__ = ["Cause", "causes", "write_report"]

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
MSG_NOT_LOADED = "nothing of it was graded"
MSG_NO_SCORE = "No score was given: {reason}"


@dataclass
class Cause:
    """One reason for failing, as the report groups them: the first line of the failure
    messages with its numbers masked (the same mistake on other inputs is the same cause)."""

    key: str
    example: str
    students: set[str] = field(default_factory=set)
    tests: set[str] = field(default_factory=set)
    whole: set[str] = field(default_factory=set)  # students of whom nothing was graded, for this cause


def _key(message: str) -> str:
    return NUMBER.sub("#", message)


def _never_loaded(row: dict) -> str | None:
    """The one message every test of a graded row failed with, when nothing earned a point."""
    messages = {t["message"] for t in row["tests"]}
    if row["tests"] and not any(t["passed"] or t["score"] for t in row["tests"]) and len(messages) == 1:
        return messages.pop()
    return None


def causes(rows: list[dict]) -> list[Cause]:
    """Failures grouped by cause, the cause hitting the most students first."""
    found: dict[str, Cause] = {}

    def add(message: str, student: str, test: str | None, whole: bool) -> None:
        # the same words from two functions are two causes; a submission that never loaded is one
        function = "" if whole or not test else test.split(": ", 1)[0]
        if function and function not in message:
            message = f"{function}: {message}"
        key = _key(message)
        cause = found.setdefault(key, Cause(key, message))
        cause.students.add(student)
        if test:
            cause.tests.add(test)
        if whole:
            cause.whole.add(student)

    for row in rows:
        if row.get("status") == "failed":
            add(MSG_NO_SCORE.format(reason=row.get("reason", "")), row["student"], None, True)
            continue
        whole = _never_loaded(row) is not None
        for t in row["tests"]:
            if not t["passed"]:
                add(t["message"] or "(no message)", row["student"], t["name"], whole)
    return sorted(found.values(), key=lambda c: (-len(c.students), -len(c.tests), c.key))


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _histogram(totals: list[float], maximum: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 3))
    top = maximum or max(totals or [1.0])
    width = max(1, round(top / 25))  # whole points per bar
    edges = [i * width for i in range(int(top // width) + 2)]
    ax.hist(totals, bins=edges, color="#3b6ea8", edgecolor="white")
    ax.set_xlim(0, edges[-1])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # students come whole
    ax.set_xlabel("total score" + (f" (out of {maximum:g})" if maximum else ""))
    ax.set_ylabel("students")
    image = _png(fig)
    plt.close(fig)
    return image


def _bar(full: int, partial: int, zero: int) -> str:
    """A stacked bar of students: full (green), partial (amber), none (red)."""
    n = full + partial + zero or 1
    parts = [(full, "full"), (partial, "partial"), (zero, "zero")]
    return ('<div class="bar">' + "".join(f'<span class="{cls}" style="width:{100 * k / n:.1f}%"></span>'
                                          for k, cls in parts if k) + "</div>")


def _split(points: float, maximum: float) -> str:
    return "full" if points >= maximum else ("zero" if points <= 0 else "partial")


STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; font-size: 0.9em; }
th { background: #f0f0f0; } td.n, th.n { text-align: right; white-space: nowrap; }
code { white-space: pre-wrap; word-break: break-word; }
.bar { display: flex; width: 160px; height: 12px; background: #eee; margin-top: 3px; }
.bar span { display: block; height: 100%; }
.full { background: #4f9a57; } .partial { background: #e0a030; } .zero { background: #c0504d; }
td.full, td.partial, td.zero { background: none; }
span.tag { font-size: 0.8em; padding: 0 4px; border-radius: 3px; color: white; }
span.tag.full { background: #4f9a57; } span.tag.partial { background: #e0a030; } span.tag.zero { background: #c0504d; }
th.sort { cursor: pointer; } th.sort:after { content: " \\2195"; color: #999; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
details summary { cursor: pointer; color: #335; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.classList.add("sort");
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var down = th.dataset.dir !== "down"; th.dataset.dir = down ? "down" : "up";
      function value(row) { var c = row.cells[col]; return c.dataset.v !== undefined ? c.dataset.v : c.textContent; }
      rows.sort(function (a, b) {
        var x = value(a), y = value(b), nx = parseFloat(x), ny = parseFloat(y);
        var d = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return down ? -d : d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def write_report(assignment, rows: list[dict], path: Path, errors=()) -> None:
    """``rows`` as made by mlgrade.batch (``status`` "graded" or "failed"); ``errors``: the
    instructor's problems that changed no score (files not written, export entries of nobody).
    Each student's files are linked as ``<student>/results.json`` and ``<student>/grading.log``
    beside ``path``."""
    e = html.escape
    not_graded = [r for r in rows if r.get("status") == "failed"]
    graded = [r for r in rows if r.get("status") != "failed"]
    parts = exercises(assignment, graded)
    maximum = sum(parts.values())
    points = {r["student"]: subtotals(assignment, r) for r in graded}
    totals = sorted(r["score"] for r in graded)
    mean = sum(totals) / len(totals) if totals else 0.0
    median = totals[len(totals) // 2] if totals else 0.0
    out = [f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(assignment.id)}: class report</title>
<style>{STYLE}</style></head><body>
<h1>{e(assignment.title)}</h1>
<p>{len(graded)} submissions graded; mean {mean:.2f}, median {median:g} out of {maximum:g}.""" +
           (f" {len(not_graded)} not graded (no score, see below)." if not_graded else "") + "</p>"]

    out.append('<h2 id="exercises">Exercises</h2><p class="legend">students who earned'
               '<span class="full"></span>all of its points<span class="partial"></span>part of them'
               '<span class="zero"></span>none</p>'
               '<table><thead><tr><th>exercise</th><th class="n">points</th><th class="n">mean</th>'
               '<th class="n">mean share</th><th class="n">full</th><th class="n">partial</th>'
               '<th class="n">zero</th><th>students</th></tr></thead><tbody>')
    for name, most in parts.items():
        got = [points[r["student"]].get(name, 0.0) for r in graded]
        split = [_split(p, most) for p in got]
        full, partial, zero = (split.count(k) for k in ("full", "partial", "zero"))
        avg = sum(got) / len(got) if got else 0.0
        out.append(f'<tr><td>{e(name)}</td><td class="n">{most:g}</td><td class="n">{avg:.2f}</td>'
                   f'<td class="n">{100 * avg / most if most else 0:.0f}%</td><td class="n">{full}</td>'
                   f'<td class="n">{partial}</td><td class="n">{zero}</td><td>{_bar(full, partial, zero)}</td></tr>')
    out.append("</tbody></table>")

    found = causes(rows)
    out.append(f'<h2 id="causes">What went wrong, for whom ({len(found)} causes)</h2>'
               "<p>Failures grouped by the first line of their message (numbers aside), the cause that hit "
               "the most students first. A submission of which nothing was graded (not submitted, a syntax "
               "error, no score given) appears once, under its cause.</p>"
               '<table><thead><tr><th class="n">students</th><th>cause (first line of the message)</th>'
               "<th>students</th><th>tests</th></tr></thead><tbody>")
    for cause in found:
        names = ", ".join(e(s) + (" <em>(" + MSG_NOT_LOADED + ")</em>" if s in cause.whole else "")
                          for s in sorted(cause.students))
        tests = (f"<details><summary>{len(cause.tests)} test(s)</summary>" +
                 "<br>".join(e(t) for t in sorted(cause.tests)) + "</details>") if cause.tests else "the whole submission"
        out.append(f'<tr class="cause"><td class="n">{len(cause.students)}</td><td><code>{e(cause.example)}</code></td>'
                   f"<td>{names}</td><td>{tests}</td></tr>")
    out.append("</tbody></table>")

    out.append('<h2 id="tests">Tests by exercise</h2><table><thead><tr><th>#</th><th>test</th><th class="n">points</th>'
               '<th class="n">passed</th><th class="n">partial</th><th class="n">failed</th><th></th></tr></thead><tbody>')
    seen: dict[str, dict] = {}
    for row in graded:
        for t in row["tests"]:
            seen.setdefault(t["name"], t)
    current = None
    for name, first in sorted(seen.items(), key=lambda kv: list(parts).index(exercise_of(assignment, kv[0]))):
        exercise = exercise_of(assignment, name)
        if exercise != current:
            current = exercise
            out.append(f'<tr><th colspan="7">{e(exercise)}</th></tr>')
        results = [t for r in graded for t in r["tests"] if t["name"] == name]
        split = [_split(t["score"], t["max_score"]) if not t["passed"] else "full" for t in results]
        full, partial, zero = (split.count(k) for k in ("full", "partial", "zero"))
        zero += len(graded) - len(results)  # a student without this test failed it too
        out.append(f'<tr><td class="n">{e(str(first.get("number") or ""))}</td><td>{e(name)}</td>'
                   f'<td class="n">{first["max_score"]:g}</td><td class="n">{full}</td><td class="n">{partial}</td>'
                   f'<td class="n">{zero}</td><td>{_bar(full, partial, zero)}</td></tr>')
    out.append("</tbody></table>")

    out.append('<h2 id="histogram">Scores</h2>'
               f'<img alt="score histogram" src="data:image/png;base64,{_histogram(totals, maximum)}">')

    out.append('<h2 id="students">Students</h2><p>Click a column title to sort.</p>'
               '<table class="sortable"><thead><tr><th>student</th><th>status</th><th class="n">total</th>' +
               "".join(f'<th class="n">{e(k)} ({v:g})</th>' for k, v in parts.items()) +
               "<th>files</th></tr></thead><tbody>")
    for row in sorted(rows, key=lambda r: r["student"]):
        link = quote(row["student"])
        files = (f'<a href="{link}/results.json">results.json</a> · <a href="{link}/grading.log">grading.log</a>')
        if row.get("status") == "failed":
            cells = f'<td class="n" data-v="-1">no score</td>' + '<td class="n" data-v="-1"></td>' * len(parts)
            status = f'not graded: {e(row.get("reason", ""))}'
        else:
            cells = f'<td class="n">{row["score"]:g}</td>' + "".join(
                f'<td class="n" data-v="{points[row["student"]].get(k, 0.0):g}">{points[row["student"]].get(k, 0.0):g} '
                f'<span class="tag {_split(points[row["student"]].get(k, 0.0), v)}">'
                f'{_split(points[row["student"]].get(k, 0.0), v)}</span></td>' for k, v in parts.items())
            lost = _never_loaded(row)
            status = f"nothing graded: {e(lost)}" if lost else "graded"
        out.append(f'<tr class="student"><td>{e(row["student"])}</td><td>{status}</td>{cells}<td>{files}</td></tr>')
    out.append("</tbody></table>")

    if not_graded:
        out.append(f'<h2 id="engine-failures">Engine failures: {len(not_graded)} submission(s) not graded</h2>'
                   "<p>No score was given; each student's grading.log has the details.</p>"
                   "<table><tr><th>student</th><th>reason</th></tr>")
        for r in sorted(not_graded, key=lambda r: r["student"]):
            out.append(f'<tr><td>{e(r["student"])}</td><td><code>{e(r.get("reason", ""))}</code></td></tr>')
        out.append("</table>")
    if errors:
        out.append('<h2 id="problems">Problems of the grading run</h2><ul>')
        out.extend(f"<li><code>{e(text)}</code></li>" for text in errors)
        out.append("</ul>")
    out.append(f"<script>{SORT_SCRIPT}</script></body></html>\n")
    Path(path).write_text("\n".join(out))
