"""The self-check page (`mlgrade check --page`): the sheet's figures from the student's code beside the reference's.

Read as a student would: every declared figure is there, labelled "yours" and "reference", each
a PNG; a figure that could not be made says why in its place; the page carries no reference
code, no hidden test and nothing fetched.
"""
import base64
import dataclasses
import io
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from mlgrade.course import open_course
from mlgrade.figures import declared, draw_figures, write_reference_images
from mlgrade.selfcheck_page import write_page

ROOT = Path(__file__).resolve().parents[1]
COURSE = open_course(ROOT)
PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Each figure section of the page: {name: {"yours"/"reference": {"png": bytes | None, "text": str}}}."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.titles: dict[str, str] = {}
        self._section = self._side = None
        self._in_h2 = self._in_label = False
        self.images: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "figure" in attrs.get("class", ""):
            self._section = attrs["id"]
            self.sections[self._section] = {}
        elif tag == "h2" and self._section:
            self._in_h2 = True
        elif tag == "figure" and self._section:
            self._side = attrs["class"]
            self.sections[self._section][self._side] = {"png": None, "text": "", "alt": None, "label": ""}
        elif tag == "figcaption":
            self._in_label = True
        elif tag == "img":
            self.images.append(attrs["src"])
            if self._side:
                side = self.sections[self._section][self._side]
                side["png"] = base64.b64decode(attrs["src"].split(",", 1)[1])
                side["alt"] = attrs.get("alt")

    def handle_endtag(self, tag):
        if tag == "figure":
            self._side = None
        elif tag == "section":
            self._section = None
        elif tag == "h2":
            self._in_h2 = False
        elif tag == "figcaption":
            self._in_label = False

    def handle_data(self, data):
        if self._in_h2 and self._section:
            self.titles[self._section] = self.titles.get(self._section, "") + data
        if self._side:
            side = self.sections[self._section][self._side]
            side["label" if self._in_label else "text"] += data


def png_pixels(data: bytes) -> np.ndarray:
    assert data.startswith(PNG)
    return matplotlib.image.imread(io.BytesIO(data), format="png")


def figures_of(assignment):
    with assignment.importable():
        return declared(assignment)


def solution_lines(path: Path) -> list[str]:
    """The reference's solution lines long enough to be its own (not `return x`)."""
    lines, inside = [], False
    for line in path.read_text().splitlines():
        if "BEGIN SOLUTION" in line:
            inside = True
        elif "END SOLUTION" in line:
            inside = False
        elif inside and len(line.strip()) >= 25:
            lines.append(line.strip())
    return lines


def hidden_test_names(assignment) -> list[str]:
    return [m for p in assignment.graders_dir.rglob("*.py")
            for m in re.findall(r'@check\(\s*"([^"{]{20,})', p.read_text())]


def test_check_page_of_a_half_done_submission(tmp_path):
    """Bob's ml-hw6: batch norm and the VAE done (with a bug each), the rest not started."""
    shutil.copy(ROOT / "examples" / "ml-hw6" / "bob" / "hw6.py", tmp_path / "hw6.py")
    proc = subprocess.run([sys.executable, "-m", "mlgrade.cli", "check", "ml-hw6", "--page", "--course", str(ROOT)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 1, proc.stderr  # the public checks fail, the page is written all the same
    path = tmp_path / "ml-hw6-selfcheck.html"
    assert f"Wrote the self-check page {path}" in " ".join(proc.stdout.split())
    assert f"python3 -m webbrowser {path.as_uri()}" in " ".join(proc.stdout.split())
    text = path.read_text()
    page = Page(text)
    assignment = COURSE.get("ml-hw6")
    figures = figures_of(assignment)
    assert [f.name for f in figures] == list(page.sections) == ["batchnorm", "vae_loss", "subpixel"]
    for f in figures:
        sides = page.sections[f.name]
        assert page.titles[f.name] == f.title
        assert [sides[s]["label"] for s in ("yours", "reference")] == ["yours", "reference"]
        # the reference's image is the one shipped with the assignment, intact
        assert sides["reference"]["png"] == (assignment.selfcheck_images / f"{f.name}.png").read_bytes()
        assert sides["reference"]["alt"] == f"reference: {f.title}"
        assert png_pixels(sides["reference"]["png"]).ndim == 3
    for name in ("batchnorm", "vae_loss"):  # drawn from Bob's own code: his bugs show
        yours = page.sections[name]["yours"]
        assert yours["alt"].startswith("yours: ") and png_pixels(yours["png"]).ndim == 3
        assert yours["png"] != page.sections[name]["reference"]["png"]
    subpixel = page.sections["subpixel"]["yours"]
    assert subpixel["png"] is None
    assert subpixel["text"].startswith("Your figure could not be made:")
    assert "hw6.py does not define `subpixel_conv`" in subpixel["text"]
    assert "Figures: 2 of 3 made from your code" in text and "Public checks: 1 of 16 passed" in text
    # offline and inert: every image embedded, nothing fetched, no script
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not re.search(r"https?://|<script|<link|<iframe|@import", text)
    # nothing of the reference's code, nothing of the hidden tests
    leaked = [line for line in solution_lines(assignment.reference_dir / "hw6.py") if line in text]
    assert leaked == []
    names = hidden_test_names(assignment)
    assert names and [n for n in names if n in text] == []


HOSTILE = '''
import numpy as np

def batchnorm_forward(x, gamma, beta, eps=1e-5):
    return x[:, :2], None                      # the wrong shape

def reparameterize(mu, log_sigma, eps):
    while True:                                # never returns
        pass

def kl_loss(mu, log_sigma):
    return mu.sum()

def subpixel_conv(A, K, stride=2):
    raise ValueError("stride must be 1 <script>alert(1)</script>")
'''


def test_a_figure_that_cannot_be_made_says_why_in_its_place(tmp_path):
    assignment = COURSE.get("ml-hw6")
    assignment = dataclasses.replace(assignment, limits=dataclasses.replace(assignment.limits, call_timeout=2))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "hw6.py").write_text(HOSTILE)
    drawn = {d.spec.name: d for d in draw_figures(assignment, tmp_path / "sub")}
    assert all(d.png is None for d in drawn.values())
    assert drawn["batchnorm"].problem == ("out of batchnorm_forward(x, gamma, beta): shape mismatch: "
                                          "expected (50, 3), got (50, 2)")
    assert drawn["vae_loss"].problem.startswith("reparameterize(") and \
        "did not finish within 2 s" in drawn["vae_loss"].problem
    assert drawn["subpixel"].problem.startswith("subpixel_conv(") and \
        "raised ValueError: stride must be 1 <script>alert(1)</script>" in drawn["subpixel"].problem
    text = write_page(tmp_path / "page.html", assignment, list(drawn.values()), "Graded hw6.py.", (0, 16), []).read_text()
    assert "<script" not in text  # the student's words are text on the page, never markup
    page = Page(text)
    for name, d in drawn.items():
        assert page.sections[name]["yours"]["text"] == "Your figure could not be made:" + d.problem
        assert page.sections[name]["reference"]["png"].startswith(PNG)


def test_an_assignment_without_figures_gets_a_page_that_says_so(tmp_path):
    from mlgrade import scaffold

    course = open_course(scaffold.new_course(tmp_path / "course", "Intro"))
    scaffold.new_assignment(course, "hw1", "Homework 1")
    assignment = open_course(course.root).get("hw1")
    assert draw_figures(assignment, tmp_path) == []
    text = write_page(tmp_path / "page.html", assignment, [], "", (1, 1), []).read_text()
    assert "hw1 declares no figures for the self-check" in text and Page(text).sections == {}


@pytest.mark.parametrize("assignment_id", [a.id for a in COURSE.assignments()])
def test_every_declared_figure_ships_its_reference_image(assignment_id):
    assignment = COURSE.get(assignment_id)
    names = [f.name for f in figures_of(assignment)]
    assert names, f"{assignment_id} declares no figure"
    assert sorted(p.stem for p in assignment.selfcheck_images.glob("*.png")) == sorted(names)
    shipped = {path for path, _ in assignment.shipped_files(hidden=False)}
    for name in names:
        assert png_pixels((assignment.selfcheck_images / f"{name}.png").read_bytes()).ndim == 3
        assert f"assignments/{assignment_id}/selfcheck/{name}.png" in shipped
    assert f"assignments/{assignment_id}/selfcheck.py" in shipped


def test_selfcheck_images_redraws_the_shipped_images_from_the_reference(tmp_path):
    assignment = COURSE.get("ml2-sheet10")
    (tmp_path / "stale.png").write_bytes(PNG)
    written, problems = write_reference_images(assignment, tmp_path)
    assert problems == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inpainting.png"]  # the stale image removed
    for path in written:
        shipped = png_pixels((assignment.selfcheck_images / path.name).read_bytes())
        assert np.abs(png_pixels(path.read_bytes()) - shipped).max() < 0.02, \
            f"{path.name} is out of date: run `mlgrade selfcheck-images {assignment.id}`"


def test_a_figure_without_its_reference_image_says_how_to_make_it(tmp_path):
    from mlgrade.figures import Drawn, figure

    assignment = COURSE.get("ml-hw6")
    spec = figure("not_shipped", "a figure nobody drew from the reference")(lambda fig: None)
    drawn = Drawn(spec, (assignment.selfcheck_images / "subpixel.png").read_bytes(), None, 0.1)
    page = Page(write_page(tmp_path / "page.html", assignment, [drawn], "", None, []).read_text())
    sides = page.sections["not_shipped"]
    assert sides["yours"]["png"] == drawn.png and sides["reference"]["png"] is None
    assert sides["reference"]["text"] == ("No reference image was shipped for this figure (the instructor makes them "
                                          "with `mlgrade selfcheck-images ml-hw6`).")


def test_a_page_path_that_is_not_html_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "hw6.py").write_text("x = 1\n")
    proc = subprocess.run([sys.executable, "-m", "mlgrade.cli", "check", "ml-hw6", "--page", "hw6.py", "--course",
                           str(ROOT)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 1
    assert "--page hw6.py: the page's path must end in .html" in proc.stderr
    assert (tmp_path / "hw6.py").read_text() == "x = 1\n" and sorted(p.name for p in tmp_path.iterdir()) == ["hw6.py"]
