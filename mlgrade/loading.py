"""Reading submissions: find the contract's files, turn .py and .ipynb into worker modules.

Nothing here executes student code: files are read as text and parsed with ``ast``; the
result is a list of (label, source) chunks that the worker compiles and runs. A notebook
keeps only its top-level imports, definitions and simple constant assignments; magics,
shell lines and every other statement (training loops, plots) are blanked out, so that
line numbers still match the cell the student sees.
"""
from __future__ import annotations

import ast
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["LoadError", "ModuleSource", "load_file", "find_file", "names_used"]

MAX_SOURCE_BYTES = {".py": 5 << 20, ".ipynb": 100 << 20}  # notebooks carry their plots
MSG_NOT_SUBMITTED = "{file} was not submitted"
MSG_IMPORTS_REFERENCE = (
    "{where}: imports `{name}`, the course's reference solution, which is not available "
    "to submissions: your file must contain its own implementation"
)
KEPT_MAGIC_CELLS = {"time", "timeit", "capture"}
SHELL_ASSIGN = re.compile(r"^\s*[\w, ]+=\s*[!%]")  # files = !ls


@dataclass
class LoadError:
    """Why a contract file cannot be graded; ``message`` names file, cell and line."""

    kind: str  # not_submitted | syntax | imports_reference | unreadable
    message: str


@dataclass
class ModuleSource:
    name: str  # module name in the worker, e.g. "hw6"
    file: str  # the file as submitted, e.g. "hw6.ipynb"
    chunks: list[tuple[str, str]] = field(default_factory=list)
    error: LoadError | None = None

    def spec(self) -> dict:
        return {"name": self.name, "file": self.file, "chunks": [list(c) for c in self.chunks]}

    @property
    def source(self) -> str:
        return "\n".join(src for _, src in self.chunks)


def find_file(submission_dir: Path, names: list[str]) -> Path | None:
    """The first of ``names`` present in the submission, at the shallowest depth.

    Students upload folders and zips with extra nesting; macOS metadata is ignored.
    """
    best: Path | None = None
    for name in names:
        for dirpath, dirnames, filenames in os.walk(submission_dir):
            dirnames[:] = sorted(d for d in dirnames if d not in ("__MACOSX", ".ipynb_checkpoints", "__pycache__"))
            if name in filenames:
                found = Path(dirpath) / name
                depth = len(found.relative_to(submission_dir).parts)
                if best is None or depth < len(best.relative_to(submission_dir).parts):
                    best = found
        if best is not None:
            return best
    return None


def _blank(lines: list[str], start: int, end: int) -> None:
    for i in range(start - 1, end):
        lines[i] = "\n" if lines[i].endswith("\n") else ""


def _is_constant(node: ast.AST, known: set[str]) -> bool:
    """A literal, or arithmetic of literals and names already kept as constants."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in known
    if isinstance(node, ast.UnaryOp):
        return _is_constant(node.operand, known)
    if isinstance(node, ast.BinOp):
        return _is_constant(node.left, known) and _is_constant(node.right, known)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_constant(e, known) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_constant(k, known) and _is_constant(v, known) for k, v in zip(node.keys, node.values))
    return False


def _kept(node: ast.stmt, known: set[str]) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.Assign) and _is_constant(node.value, known):
        if all(isinstance(t, ast.Name) for t in node.targets):
            known.update(t.id for t in node.targets)
            return True
    if isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
        if _is_constant(node.value, known):
            known.add(node.target.id)
            return True
    if isinstance(node, ast.Try):  # try: import x / except ImportError: ...
        body = node.body + [s for h in node.handlers for s in h.body] + node.orelse + node.finalbody
        return all(isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass)) for s in body)
    return False


def _strip_ipython(source: str) -> str | None:
    """Replace magics, shell and help lines by ``pass``; None for a %%bash-like cell.

    ``pass`` at the line's own indentation keeps both line numbers and blocks valid.
    """
    lines = source.splitlines(True)
    first = lines[0].split() if lines else []
    if first and first[0].startswith("%%"):
        if first[0][2:] not in KEPT_MAGIC_CELLS:
            return None
        lines[0] = "\n"
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        is_magic = stripped.startswith(("%", "!"))
        is_help = stripped.rstrip().endswith("?") and not stripped.startswith("#")
        if is_magic or is_help or SHELL_ASSIGN.match(line):
            lines[i] = line[: len(line) - len(stripped)] + "pass\n"
    return "".join(lines)


def _notebook_chunks(path: Path, file: str) -> tuple[list[tuple[str, str]], LoadError | None]:
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # nbformat raises several kinds for broken JSON
        return [], LoadError("unreadable", f"{file} is not a readable notebook ({type(exc).__name__}: {str(exc)[:200]})")
    chunks, known = [], set()
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        label = f"{file}, cell {index}"
        source = _strip_ipython(cell.source)
        if source is None:
            continue
        try:
            tree = ast.parse(source, filename=label)
        except SyntaxError as exc:
            return [], LoadError("syntax", f"{label}, line {exc.lineno}: SyntaxError: {exc.msg}")
        lines = source.splitlines(True)
        for node in tree.body:
            if not _kept(node, known):
                start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                _blank(lines, start, node.end_lineno)
        kept = "".join(lines)
        if kept.strip():
            chunks.append((label, kept))
    return chunks, None


def _check_imports(chunks: list[tuple[str, str]], forbidden: set[str]) -> LoadError | None:
    for label, source in chunks:
        for node in ast.walk(ast.parse(source, filename=label)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in forbidden:
                    where = f"{label}, line {node.lineno}"
                    return LoadError("imports_reference", MSG_IMPORTS_REFERENCE.format(where=where, name=name))
    return None


def load_file(submission_dir: Path, names: list[str], reference_modules: set[str] = frozenset()) -> ModuleSource:
    """Read the contract file ``names[0]`` (or an accepted alternative) from a submission."""
    module = ModuleSource(name=Path(names[0]).stem, file=names[0])
    path = find_file(Path(submission_dir), names)
    if path is None:
        module.error = LoadError("not_submitted", MSG_NOT_SUBMITTED.format(file=names[0]))
        return module
    module.file = path.name
    limit = MAX_SOURCE_BYTES.get(path.suffix, MAX_SOURCE_BYTES[".py"])
    if path.stat().st_size > limit:
        module.error = LoadError("unreadable", f"{path.name} is larger than {limit >> 20} MB")
        return module
    if path.suffix == ".ipynb":
        module.chunks, module.error = _notebook_chunks(path, path.name)
    else:
        source = path.read_bytes().decode("utf-8", "replace")
        try:
            ast.parse(source, filename=path.name)
        except SyntaxError as exc:
            module.error = LoadError("syntax", f"{path.name}, line {exc.lineno}: SyntaxError: {exc.msg}")
            return module
        module.chunks = [(path.name, source)]
    if module.error is None:
        module.error = _check_imports(module.chunks, set(reference_modules))
    return module


@functools.lru_cache(maxsize=256)
def _identifiers(label: str, source: str) -> tuple[tuple[tuple[str, ...], int], ...]:
    """Every name, attribute, imported name and string constant of ``source``, with its line."""
    found = []
    for node in ast.walk(ast.parse(source, filename=label)):
        if isinstance(node, ast.Name):
            parts = (node.id,)
        elif isinstance(node, ast.Attribute):
            parts = (node.attr,)
        elif isinstance(node, ast.alias):
            parts = tuple(node.name.split("."))
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = tuple(node.module.split("."))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            parts = (node.value,)  # getattr(F, "conv_transpose2d")
        else:
            continue
        found.append((parts, getattr(node, "lineno", 0)))
    return tuple(found)


def names_used(source_chunks: list[tuple[str, str]], names: set[str]) -> list[tuple[str, str, int]]:
    """Where any of ``names`` appears as a name, attribute or imported name: (name, label, line)."""
    found = []
    for label, source in source_chunks:
        for parts, line in _identifiers(label, source):
            hits = [part for part in parts if part in names]
            if hits:
                found.append((hits[-1], label, line))
    return found
