"""The class report of ``mlgrade grade``: one self-contained HTML file.

A histogram of the totals and the pass rate of every test (matplotlib, Agg, embedded as base64
PNG), then per test the most common failure messages (first line of the output, counted). The
scores are those of graded submissions only: a submission given no score (an engine failure,
a crash, a timeout, an unreadable upload) is listed by name with its reason, never counted as 0.
"""
from __future__ import annotations

import base64
import html
import io
from collections import Counter
from pathlib import Path

__all__ = ["write_report"]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _figures(rows: list[dict], names: list[str], maximum: float) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = [r["score"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = min(25, max(5, int(maximum) + 1)) if maximum else 10
    ax.hist(totals, bins=bins, range=(0, maximum or max(totals or [1])), color="#3b6ea8", edgecolor="white")
    ax.set_xlabel("total score" + (f" (out of {maximum:g})" if maximum else ""))
    ax.set_ylabel("students")
    ax.set_title(f"Score histogram ({len(rows)} submissions)")
    hist = _png(fig)
    plt.close(fig)

    rates = []
    for name in names:
        scored = [t for r in rows for t in r["tests"] if t["name"] == name]
        # a student without this test (crash, timeout) failed it too
        passed = sum(1 for t in scored if t["passed"])
        rates.append(100.0 * passed / len(rows) if rows else 0.0)
    height = max(2.5, 0.28 * len(names) + 1)
    fig, ax = plt.subplots(figsize=(8, height))
    y = range(len(names))
    ax.barh(list(y), rates, color=["#c0504d" if r < 50 else "#4f9a57" for r in rates])
    ax.set_yticks(list(y), [n if len(n) <= 60 else n[:57] + "..." for n in names], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of submissions passing")
    ax.set_title("Pass rate per test")
    bars = _png(fig)
    plt.close(fig)
    return hist, bars


def write_report(assignment, rows: list[dict], path: Path, top: int = 3, errors=()) -> None:
    """``rows`` as made by mlgrade.batch (``status`` "graded" or "failed"); ``errors``: the
    instructor's problems that changed no score (files not written, export entries of nobody)."""
    not_graded = [r for r in rows if r.get("status") == "failed"]
    rows = [r for r in rows if r.get("status") != "failed"]
    names: list[str] = []
    maxima: dict[str, float] = {}
    for row in rows:
        for t in row["tests"]:
            if t["name"] not in names:
                names.append(t["name"])
            maxima[t["name"]] = t["max_score"]
    maximum = sum(maxima.values())
    hist, bars = _figures(rows, names, maximum)
    failures: dict[str, Counter] = {n: Counter() for n in names}
    for row in rows:
        for t in row["tests"]:
            if not t["passed"]:
                failures[t["name"]][t.get("message") or "(no message)"] += 1
    totals = sorted(r["score"] for r in rows)
    mean = sum(totals) / len(totals) if totals else 0.0
    median = totals[len(totals) // 2] if totals else 0.0
    e = html.escape
    parts = [f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{e(assignment.id)}: class report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; font-size: 0.9em; }}
th {{ background: #f0f0f0; }} td.n {{ text-align: right; }} code {{ white-space: pre-wrap; }}
</style></head><body>
<h1>{e(assignment.title)}</h1>
<p>{len(rows)} submissions graded; mean {mean:.2f}, median {median:g} out of {maximum:g}.""" +
             (f" {len(not_graded)} not graded (no score, see below)." if not_graded else "") + f"""</p>
<h2>Scores</h2>
<img alt="score histogram" src="data:image/png;base64,{hist}">
<h2>Pass rate per test</h2>
<img alt="pass rate per test" src="data:image/png;base64,{bars}">
<h2>Most common failures</h2>
<table><tr><th>test</th><th>pass rate</th><th>count</th><th>first line of the failure message</th></tr>"""]
    for name in names:
        passed = len(rows) - sum(failures[name].values())
        common = failures[name].most_common(top)
        if not common:
            continue
        for i, (msg, count) in enumerate(common):
            lead = (f'<td rowspan="{len(common)}">{e(name)}</td><td class="n" rowspan="{len(common)}">'
                    f"{100.0 * passed / len(rows):.0f}%</td>") if i == 0 else ""
            parts.append(f'<tr>{lead}<td class="n">{count}</td><td><code>{e(msg)}</code></td></tr>')
    parts.append("</table>")
    if not_graded:
        parts.append(f'<h2 id="engine-failures">Engine failures: {len(not_graded)} submission(s) not graded</h2>'
                     "<p>No score was given; each student's grading.log has the details.</p>"
                     "<table><tr><th>student</th><th>reason</th></tr>")
        for r in sorted(not_graded, key=lambda r: r["student"]):
            parts.append(f'<tr><td>{e(r["student"])}</td><td><code>{e(r.get("reason", ""))}</code></td></tr>')
        parts.append("</table>")
    if errors:
        parts.append('<h2 id="problems">Problems of the grading run</h2><ul>')
        parts.extend(f"<li><code>{e(text)}</code></li>" for text in errors)
        parts.append("</ul>")
    parts.append("</body></html>\n")
    Path(path).write_text("\n".join(parts))
