"""ml2-sheet10 as a student meets it: a notebook that still calls solution.err is told so, by name,
in every err test, and its pca and theory are graded as usual."""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from mlgrade.course import open_course
from mlgrade.runner import grade

ROOT = Path(__file__).resolve().parent.parent
MSG_ERR = ("err still calls `solution.err` (sheet10.ipynb, cell 12, line 4), the course's reference solution, "
           "which is not available to submissions: replace it by your own implementation")


@pytest.fixture(scope="module")
def sheet10():
    return open_course(ROOT).get("ml2-sheet10")


def test_a_notebook_still_calling_solution_err_loses_err_only(sheet10, tmp_path):
    """The template's notebook with pca written (the reference's cell) and err left as on the sheet."""
    template = nbformat.read(str(sheet10.template_dir / "sheet10.ipynb"), as_version=4)
    solved = nbformat.read(str(sheet10.reference_dir / "sheet10.ipynb"), as_version=4)
    (cell,) = [i for i, c in enumerate(template.cells) if "return solution.pca" in c.source]
    template.cells[cell].source = solved.cells[cell].source
    nbformat.write(template, str(tmp_path / "sheet10.ipynb"))
    shutil.copy(sheet10.reference_dir / "sheet10_theory.py", tmp_path)
    outcome = grade(sheet10, tmp_path)
    by_name = {t.name: t for t in outcome.tests}
    err = [t for name, t in by_name.items() if name.startswith("err: ")]
    others = [t for name, t in by_name.items() if not name.startswith("err: ")]
    assert err and not any(t.passed for t in err)
    assert {t.output.split("\n")[0] for t in err} == {MSG_ERR}
    assert others and all(t.passed for t in others), [t.name for t in others if not t.passed]
