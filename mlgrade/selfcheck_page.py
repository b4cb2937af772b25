"""The self-check page of ``mlgrade check --page``: one static HTML file that works offline.

First what a student asks ("are my public checks passing, which of my figures could not be
made"), then each figure of the sheet: the one drawn from the student's own functions
("yours") beside the reference's, shipped as an image with the assignment. A figure that
could not be made shows why in its place. Images are embedded as ``data:`` URIs; nothing is
fetched, nothing runs in the page.
"""
from __future__ import annotations

import base64
import html
from datetime import datetime
from pathlib import Path

from mlgrade.figures import Drawn

__all__ = ["write_page"]

YOURS, REFERENCE = "yours", "reference"
WIDE = 2.2  # a figure wider than this (width / height) is shown above the reference's, not beside it
MSG_NO_FIGURES = ("{id} declares no figures for the self-check (its sheet asks for none): the public checks "
                  "are the whole self-check.")
MSG_NO_REFERENCE = ("No reference image was shipped for this figure (the instructor makes them with "
                    "`mlgrade selfcheck-images {id}`).")
MSG_NOT_MADE = "Your figure could not be made:"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1250px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin: 1.6em 0 .3em; }
.summary { background: #f4f6f8; border-radius: 6px; padding: .6em 1em; }
.summary li { margin: .15em 0; } .bad { color: #a40000; } .good { color: #1a6b1a; }
.caption { color: #444; margin: .2em 0 .6em; max-width: 60em; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; align-items: start; }
.pair.wide { grid-template-columns: 1fr; }
figure { margin: 0; border: 1px solid #ccc; border-radius: 6px; padding: .4em; background: #fff; }
figure.yours { border-color: #3465a4; } figure.reference { border-color: #888; }
figcaption { font-weight: 600; margin-bottom: .3em; }
figure.yours figcaption { color: #3465a4; } figure.reference figcaption { color: #555; }
img { max-width: 100%; height: auto; display: block; }
.problem { background: #fdecea; border: 1px solid #e6a19b; border-radius: 4px; padding: .6em; white-space: pre-wrap;
           font-family: ui-monospace, monospace; font-size: .9em; overflow-wrap: anywhere; }
.missing { background: #f5f5f5; border: 1px dashed #aaa; border-radius: 4px; padding: .6em; }
code { background: #f0f0f0; padding: 0 .2em; border-radius: 3px; }
"""


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure_html(d: Drawn, reference: bytes | None, assignment_id: str) -> str:
    e = html.escape
    spec = d.spec
    wide = spec.size[0] / spec.size[1] > WIDE
    if d.png is not None:
        yours = _image(d.png, f"{YOURS}: {spec.title}")
    else:
        yours = f'<p class="bad">{e(MSG_NOT_MADE)}</p><div class="problem">{e(d.problem or "")}</div>'
    theirs = (_image(reference, f"{REFERENCE}: {spec.title}") if reference is not None else
              f'<div class="missing">{e(MSG_NO_REFERENCE.format(id=assignment_id))}</div>')
    return (f'<section class="figure" id="{e(spec.name)}"><h2>{e(spec.title)}</h2>'
            + (f'<p class="caption">{e(spec.caption)}</p>' if spec.caption else "")
            + f'<div class="pair{" wide" if wide else ""}">'
            f'<figure class="{YOURS}" data-figure="{e(spec.name)}"><figcaption>{YOURS}</figcaption>{yours}</figure>'
            f'<figure class="{REFERENCE}" data-figure="{e(spec.name)}"><figcaption>{REFERENCE}</figcaption>{theirs}'
            "</figure></div></section>")


def write_page(path: Path, assignment, drawn: list[Drawn], graded: str, checks: tuple[int, int] | None,
               failed_checks: list[str]) -> Path:
    """Write the page to ``path``: ``graded`` says which files were graded, ``checks`` is (passed,
    total) of the public checks, ``failed_checks`` their failing names with their first lines."""
    e = html.escape
    out = [f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>{e(assignment.id)}: self-check</title><style>{STYLE}</style></head><body>
<h1>{e(assignment.id)}: your figures beside the reference's</h1>
<p>{e(assignment.title)}. Made by <code>mlgrade check {e(assignment.id)} --page</code> on
{datetime.now().strftime("%Y-%m-%d %H:%M")}. Each figure on the left (<b>{YOURS}</b>) was drawn from what your
functions returned on public inputs, run in the same sandbox as the autograder; the one on the right
(<b>{REFERENCE}</b>) is the same figure drawn from the instructor's solution, shipped as an image.</p>
<div class="summary"><ul>"""]
    if graded:
        out.append(f"<li>{e(graded)}</li>")
    if checks is not None:
        passed, total = checks
        mark = "good" if passed == total else "bad"
        out.append(f'<li class="{mark}">Public checks: {passed} of {total} passed'
                   + (" (the terminal shows each failure in full)." if passed < total else ".") + "</li>")
        if failed_checks:  # folded: the terminal has them, the figures are what this page is for
            out.append(f"<details><summary>the {len(failed_checks)} failing check(s), first lines</summary><ul>"
                       + "".join(f"<li><code>{e(t)}</code></li>" for t in failed_checks) + "</ul></details>")
    if drawn:
        made = [d for d in drawn if d.png is not None]
        mark = "good" if len(made) == len(drawn) else "bad"
        out.append(f'<li class="{mark}">Figures: {len(made)} of {len(drawn)} made from your code: '
                   + ", ".join(f'<a href="#{e(d.spec.name)}">{e(d.spec.title)}</a>'
                               + ("" if d.png is not None else ' <span class="bad">(could not be made)</span>')
                               for d in drawn) + ".</li>")
    out.append("</ul></div>")
    if not drawn:
        out.append(f"<p>{e(MSG_NO_FIGURES.format(id=assignment.id))}</p>")
    for d in drawn:
        image = assignment.selfcheck_images / f"{d.spec.name}.png"
        out.append(_figure_html(d, image.read_bytes() if image.is_file() else None, assignment.id))
    out.append("<p class=\"caption\">Passing the public checks and matching figures do not mean full marks: hidden "
               "tests on Gradescope check more inputs.</p></body></html>\n")
    path = Path(path)
    path.write_text("\n".join(out), encoding="utf-8")
    return path
