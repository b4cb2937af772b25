"""``mlgrade template``: the student template generated from the reference, one source for both.

The instructor writes the reference (``reference/<id>/``, .py files and notebooks) with the
solution marked inside it; the student template (``student_template/<id>/``) is made from it,
never written by hand, like Otter's and nbgrader's assign step::

    def pca(z, x, d):
        # BEGIN SOLUTION
        mean = x.mean(0)
        ...
        # END SOLUTION
        # BEGIN STUB
        # # TODO: replace by your code
        # return solution.pca(z, x, d)
        # END STUB

- a ``# BEGIN SOLUTION`` / ``# END SOLUTION`` region is replaced by the ``# BEGIN STUB`` /
  ``# END STUB`` block that follows it, uncommented (one ``# `` after the indentation taken
  off each line); without one, by ``raise NotImplementedError  # TODO``. The stub is a
  comment in the reference, so the reference runs as it is;
- a ``# BEGIN HIDDEN`` / ``# END HIDDEN`` region is removed, and so is a notebook cell
  tagged ``hidden`` (instructor-only checks, timings, the solution's own pictures);
- notebooks lose their outputs and execution counts; every other file is copied as it is.

Which reference files make the template is the assignment's ``template`` list in
``assignment.toml``; ``template_notebooks`` adds notebooks made from a reference .py written in
jupytext's percent format (``# %%`` cells), so one source gives the student both a .py and a
notebook (:func:`notebook_from_percent`). :func:`stale` compares what would be generated with what is committed
(``mlgrade template ID --check``).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = ["TemplateError", "generate", "stale", "strip_notebook", "strip_source", "write"]

BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
STUB_BEGIN, STUB_END = "BEGIN STUB", "END STUB"
HIDDEN_BEGIN, HIDDEN_END = "BEGIN HIDDEN", "END HIDDEN"
HIDDEN_TAG = "hidden"
DEFAULT_STUB = "raise NotImplementedError  # TODO"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
MARKER = re.compile(r"^(?P<indent>[ \t]*)#+\s*(?P<what>(BEGIN|END) (SOLUTION|STUB|HIDDEN))\s*$")
MSG_UNCLOSED = "{where}, line {line}: `# {begin}` is never closed by `# {end}`"
MSG_UNEXPECTED = "{where}, line {line}: `# {what}` {why}"
MSG_STUB_LINE = "{where}, line {line}: a stub line must be a comment (`# ...`) indented like `# BEGIN STUB`"
MSG_NOT_PYTHON = "{where}: the generated template is not valid Python (line {line}: {msg})"
MSG_NO_SOURCES = ("{id} declares no template sources: list the reference files that make its template "
                  "in assignment.toml (template = [...])")
MSG_STALE = "{path} is out of date: run `mlgrade template {id}`"
MSG_MISSING = "{path} is missing: run `mlgrade template {id}`"


class TemplateError(ValueError):
    """The reference's markers cannot be read; the message names file (cell) and line."""


@dataclass
class _Region:
    kind: str  # SOLUTION | STUB | HIDDEN
    indent: str
    line: int


def strip_source(source: str, where: str = "<source>") -> str:
    """The student's version of one Python source (a file or a notebook cell)."""
    out: list[str] = []
    lines = source.splitlines(True)
    region: _Region | None = None
    replaced: _Region | None = None  # the SOLUTION region just closed, whose stub may follow
    for number, line in enumerate(lines, start=1):
        marker = MARKER.match(line.rstrip("\r\n"))
        what = marker.group("what") if marker else None
        if what is None:
            if region is None:
                if replaced is not None:
                    out.append(f"{replaced.indent}{DEFAULT_STUB}\n")
                    replaced = None
                out.append(line)
            elif region.kind == "STUB":
                out.append(_uncomment(line, region.indent, where, number))
            continue
        verb, kind = what.split(" ")
        if verb == "BEGIN":
            if region is not None:
                raise TemplateError(MSG_UNEXPECTED.format(where=where, line=number, what=what,
                                                          why=f"inside the region opened on line {region.line}"))
            if kind == "STUB" and replaced is None:
                raise TemplateError(MSG_UNEXPECTED.format(where=where, line=number, what=what,
                                                          why="must follow `# END SOLUTION` directly"))
            if replaced is not None and kind != "STUB":
                out.append(f"{replaced.indent}{DEFAULT_STUB}\n")
            replaced = None
            region = _Region(kind, marker.group("indent"), number)
            continue
        if region is None or region.kind != kind:
            raise TemplateError(MSG_UNEXPECTED.format(where=where, line=number, what=what,
                                                      why="closes no region opened before it"))
        replaced = region if kind == "SOLUTION" else None
        region = None
    if region is not None:
        raise TemplateError(MSG_UNCLOSED.format(where=where, line=region.line, begin=f"BEGIN {region.kind}",
                                                end=f"END {region.kind}"))
    if replaced is not None:
        out.append(f"{replaced.indent}{DEFAULT_STUB}\n")
    return "".join(out)


def _uncomment(line: str, indent: str, where: str, number: int) -> str:
    if not line.strip():
        return line
    if not line.startswith(indent + "#"):
        raise TemplateError(MSG_STUB_LINE.format(where=where, line=number))
    rest = line[len(indent) + 1:]
    return indent + (rest[1:] if rest.startswith(" ") else rest)


def _check_python(source: str, where: str) -> None:
    lines = [("pass" if line.lstrip().startswith(("%", "!")) else line) for line in source.splitlines()]
    try:
        ast.parse("\n".join(lines))
    except SyntaxError as exc:
        raise TemplateError(MSG_NOT_PYTHON.format(where=where, line=exc.lineno, msg=exc.msg)) from None


def strip_notebook(nb, where: str = "<notebook>"):
    """The student's version of a notebook (a new nbformat v4 node; ``nb`` is left as it is)."""
    student = nbformat.v4.new_notebook()
    student.metadata = {k: v for k, v in nb.metadata.items() if k == "kernelspec"}
    for index, cell in enumerate(nb.cells, start=1):
        tags = list(cell.get("metadata", {}).get("tags", []))
        if HIDDEN_TAG in tags:
            continue
        label = f"{where}, cell {index}"
        source = strip_source(cell.source, label) if cell.cell_type == "code" else cell.source
        if cell.cell_type == "code":
            _check_python(source, label)
            new = nbformat.v4.new_code_cell(source)
        elif cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(source)
        else:
            new = nbformat.v4.new_raw_cell(source)
        if "id" in cell:
            new.id = cell.id
        if tags:
            new.metadata["tags"] = tags
        student.cells.append(new)
    return student


def _student_file(path: Path) -> bytes:
    where = path.name
    if path.suffix == ".ipynb":
        nb = nbformat.read(str(path), as_version=4)
        return (nbformat.writes(strip_notebook(nb, where)) + "\n").encode()
    if path.suffix == ".py":
        source = strip_source(path.read_text(), where)
        _check_python(source, where)
        return source.encode()
    return path.read_bytes()


def notebook_from_percent(path: Path):
    """The notebook a percent-format Python source stands for (jupytext's ``# %%`` cells,
    ``# %% [markdown]`` cells as comments, magics commented); a cell marked
    ``active="py"`` exists in the .py only, ``active="ipynb"`` in the notebook only."""
    import jupytext

    nb = jupytext.reads(path.read_text(), fmt="py:percent")
    nb.cells = [cell for cell in nb.cells
                if "ipynb" in cell.metadata.get("active", "ipynb").split(",")]
    for index, cell in enumerate(nb.cells, start=1):
        cell.id = f"cell-{index}"  # jupytext draws random ids: the generated file must be reproducible
    nb.metadata = {"kernelspec": KERNELSPEC}
    return nb


def generate(assignment) -> dict[str, bytes]:
    """{file name: contents} of the student template made from the reference."""
    if not assignment.template_sources:
        raise TemplateError(MSG_NO_SOURCES.format(id=assignment.id))
    reference = Path(assignment.reference_dir)
    files = {name: _student_file(reference / name) for name in assignment.template_sources}
    for notebook, source in assignment.template_notebooks.items():
        student = strip_notebook(notebook_from_percent(reference / source), f"{notebook} (from {source})")
        files[notebook] = (nbformat.writes(student) + "\n").encode()
    return files


def write(assignment, out_dir: Path | None = None) -> list[Path]:
    """Generate the template into ``out_dir`` (default: the assignment's student_template folder)."""
    out_dir = Path(out_dir or assignment.template_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in generate(assignment).items():
        (out_dir / name).write_bytes(data)
        written.append(out_dir / name)
    return written


def stale(assignment) -> list[str]:
    """One message per template file that differs from what the reference generates (none: up to date)."""
    problems = []
    for name, data in generate(assignment).items():
        path = Path(assignment.template_dir) / name
        shown = path.relative_to(assignment.course.root)
        if not path.is_file():
            problems.append(MSG_MISSING.format(path=shown, id=assignment.id))
        elif path.read_bytes() != data:
            problems.append(MSG_STALE.format(path=shown, id=assignment.id))
    return problems
