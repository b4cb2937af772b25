"""mlgrade.template: the student template made from the marked reference, for .py files and notebooks;
every catalogue template is up to date and holds no function body of the reference (AST comparison)."""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from mlgrade.course import open_course
from mlgrade.build import function_bodies, notebook_source
from mlgrade.template import TemplateError, generate, notebook_from_percent, stale, strip_notebook, strip_source, write

ROOT = Path(__file__).resolve().parent.parent
GENERATED = [a.id for a in open_course(ROOT).assignments() if a.template_sources]

REFERENCE = '''import torch


def pca(z, x, d):
    """Project z on the d leading components of x."""
    # BEGIN SOLUTION
    mean = x.mean(0)
    return mean
    # END SOLUTION
    # BEGIN STUB
    # # TODO: replace by your code
    # return solution.pca(z, x, d)
    # END STUB


def err(x):
    # BEGIN SOLUTION
    return x.sum()
    # END SOLUTION
# BEGIN HIDDEN
assert pca(1, 2, 3) is not None
# END HIDDEN
'''
STUDENT = '''import torch


def pca(z, x, d):
    """Project z on the d leading components of x."""
    # TODO: replace by your code
    return solution.pca(z, x, d)


def err(x):
    raise NotImplementedError  # TODO
'''


def test_solution_regions_become_stubs_and_hidden_regions_go():
    assert strip_source(REFERENCE, "hw.py") == STUDENT


def test_a_source_without_markers_is_unchanged():
    assert strip_source("x = 1\n# BEGIN nothing\n") == "x = 1\n# BEGIN nothing\n"


@pytest.mark.parametrize("source, message", [
    ("a = 1\n# BEGIN SOLUTION\nb = 2\n", "hw.py, line 2: `# BEGIN SOLUTION` is never closed by `# END SOLUTION`"),
    ("# END SOLUTION\n", "hw.py, line 1: `# END SOLUTION` closes no region opened before it"),
    ("# BEGIN SOLUTION\n# BEGIN HIDDEN\n", "hw.py, line 2: `# BEGIN HIDDEN` inside the region opened on line 1"),
    ("x = 1\n# BEGIN STUB\n# y\n# END STUB\n", "hw.py, line 2: `# BEGIN STUB` must follow `# END SOLUTION` directly"),
    ("# BEGIN SOLUTION\n# END SOLUTION\n    # BEGIN STUB\n    x = 1\n    # END STUB\n",
     "hw.py, line 4: a stub line must be a comment (`# ...`) indented like `# BEGIN STUB`"),
    ("# BEGIN SOLUTION\n# END STUB\n", "hw.py, line 2: `# END STUB` closes no region opened before it"),
])
def test_broken_markers_are_named_with_their_line(source, message):
    with pytest.raises(TemplateError, match=re.escape(message)):
        strip_source(source, "hw.py")


def _notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3"}, "language_info": {"version": "3.11.2"}}
    nb.cells = [nbformat.v4.new_markdown_cell("# Sheet"),
                nbformat.v4.new_code_cell("def f(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n",
                                          execution_count=3,
                                          outputs=[nbformat.v4.new_output("stream", text="hello")]),
                nbformat.v4.new_code_cell("assert f(1) == 2", metadata={"tags": ["hidden"]}),
                nbformat.v4.new_code_cell("%matplotlib inline\nplt.plot([f(1)])", metadata={"tags": ["keep"]})]
    return nb


def test_notebook_loses_solutions_outputs_and_hidden_cells():
    nb = _notebook()
    student = strip_notebook(nb, "nb.ipynb")
    assert [c.cell_type for c in student.cells] == ["markdown", "code", "code"]
    assert student.cells[1].source == "def f(x):\n    raise NotImplementedError  # TODO\n"
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert [c.id for c in student.cells] == [nb.cells[i].id for i in (0, 1, 3)]
    assert student.cells[2].metadata == {"tags": ["keep"]}
    assert student.metadata == {"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    assert nb.cells[1].outputs  # the reference is left as it is
    nbformat.validate(student)


def test_a_template_that_is_not_python_is_refused():
    nb = _notebook()
    nb.cells[1].source = "for i in range(3):\n    # BEGIN SOLUTION\n    print(i)\n    # END SOLUTION\n    # BEGIN STUB\n    # # TODO\n    # END STUB\n"
    with pytest.raises(TemplateError, match=re.escape("nb.ipynb, cell 2: the generated template is not valid Python (line 2:")):
        strip_notebook(nb, "nb.ipynb")


def test_write_and_stale(tmp_path):
    ref, out = tmp_path / "reference" / "hw", tmp_path / "student_template" / "hw"
    ref.mkdir(parents=True)
    (ref / "hw.py").write_text(REFERENCE)
    (ref / "utils.py").write_text("def helper():\n    return 1\n")
    nbformat.write(_notebook(), str(ref / "hw.ipynb"))
    (tmp_path / "mlgrade-course.toml").write_text("")
    (tmp_path / "assignments" / "hw").mkdir(parents=True)
    (tmp_path / "assignments" / "hw" / "assignment.toml").write_text(
        'id = "hw"\ntitle = "t"\ntemplate = ["hw.py", "hw.ipynb", "utils.py"]\n[[files]]\nname = "hw.py"\n')
    a = open_course(tmp_path).get("hw")
    assert stale(a) == [f"student_template/hw/{n} is missing: run `mlgrade template hw`" for n in ("hw.py", "hw.ipynb", "utils.py")]
    assert [p.name for p in write(a)] == ["hw.py", "hw.ipynb", "utils.py"]
    assert (out / "hw.py").read_text() == STUDENT
    assert (out / "utils.py").read_text() == "def helper():\n    return 1\n"
    assert stale(a) == []
    (out / "hw.py").write_text(STUDENT + "# edited by hand\n")
    assert stale(a) == ["student_template/hw/hw.py is out of date: run `mlgrade template hw`"]
    a.template_sources = []
    with pytest.raises(TemplateError, match=re.escape("hw declares no template sources")):
        generate(a)


@pytest.mark.parametrize("aid", GENERATED)
def test_committed_template_is_up_to_date(aid):
    assert stale(open_course(ROOT).get(aid)) == []


def solution_bodies(source: str) -> dict[str, str]:
    """function_bodies of the functions whose lines hold a `# BEGIN SOLUTION` (given ones, e.g. removepatch, aside)."""
    marked = {i for i, line in enumerate(source.splitlines(), start=1) if "BEGIN SOLUTION" in line}
    spans = [node for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
             and any(node.lineno <= i <= node.end_lineno for i in marked)]
    return {dump: name for dump, name in function_bodies(source).items()
            if any(node.name == name for node in spans)}


def python_of(name: str, text: str) -> str:
    return notebook_source(text) if name.endswith(".ipynb") else text


@pytest.mark.parametrize("aid", GENERATED)
def test_generated_template_holds_no_reference_code(aid):
    a = open_course(ROOT).get(aid)
    reference = {}
    for name in a.template_sources:
        reference.update(solution_bodies(python_of(name, (a.reference_dir / name).read_text())))
    assert len(reference) >= 3  # the comparison below is not vacuous: the solutions' bodies
    for name, data in generate(a).items():
        text = data.decode()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN" not in text, name
        bodies = function_bodies(python_of(name, text))
        leaked = sorted(reference[k] for k in set(bodies) & set(reference))
        assert not leaked, f"{name} has the body of {leaked}"


def test_cli_template_check(tmp_path):
    for aid in GENERATED:
        out = subprocess.run(["mlgrade", "template", aid, "--check"], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"{aid}: the student template is up to date" in out.stdout


def test_a_percent_source_makes_a_notebook_of_its_cells(tmp_path):
    source = tmp_path / "hw.py"
    source.write_text('# %% active="py"\n"""For the .py only."""\n\n# %% [markdown]\n# # Title\n#\n# Text.\n\n'
                      "# %%\n# %matplotlib inline\nimport math\n\n\n# %%\ndef f(x):\n    # BEGIN SOLUTION\n"
                      "    return math.sqrt(x)\n    # END SOLUTION\n\n\n# %% active=\"ipynb\"\n# print(f(4))\n")
    nb = strip_notebook(notebook_from_percent(source))
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        ("markdown", "# Title\n\nText."), ("code", "%matplotlib inline\nimport math"),
        ("code", "def f(x):\n    raise NotImplementedError  # TODO\n"), ("code", "print(f(4))")]
    assert [c.id for c in notebook_from_percent(source).cells] == [c.id for c in notebook_from_percent(source).cells]


def test_ml_hw6_notebook_and_py_come_from_one_source_and_grade_alike(tmp_path):
    """The notebook the reference's cells make is graded as the .py is: full marks (its
    playground, a VAE training loop among them, is not run); the generated one: nothing."""
    from mlgrade.runner import grade

    a = open_course(ROOT).get("ml-hw6")
    assert set(generate(a)) == {"hw6.py", "hw6.ipynb"}
    (tmp_path / "full").mkdir()
    nbformat.write(notebook_from_percent(a.reference_dir / "hw6.py"), tmp_path / "full" / "hw6.ipynb")
    full = grade(a, tmp_path / "full")
    assert full.results["score"] == sum(t.max_score for t in full.tests) > 0, full.results["output"][:2000]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "hw6.ipynb").write_bytes(generate(a)["hw6.ipynb"])
    assert grade(a, tmp_path / "empty").results["score"] == 0
