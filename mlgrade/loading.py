"""Reading submissions: a contract's file (found by :func:`mlgrade.staging.choose_file`) into a worker module.

Nothing here executes student code: files are read as text and parsed with ``ast``; the
result is a list of (label, source) chunks that the worker compiles and runs. A notebook
keeps only its top-level imports, definitions and simple constant assignments; magics,
shell lines and every other statement (training loops, plots) are blanked out, so that
line numbers still match the cell the student sees.
"""
from __future__ import annotations

import ast
import errno
import functools
import io
import json
import os
import re
import stat
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from mlgrade.staging import MAX_SOURCE_BYTES, choose_file

__all__ = ["LoadError", "ModuleSource", "load_file", "names_used"]

# what parsing may cost the grading process: ast takes ~500 bytes per token, json.loads ~100
# bytes per value; past these a submission is refused with a message instead
MAX_TOKENS = 100_000  # of code, in a .py file or all code cells of a notebook
MAX_CELLS = 5000
MAX_NOTEBOOK_VALUES = 1_000_000  # JSON containers and separators, outputs included
MSG_NOT_SUBMITTED = "{file} was not submitted"
MSG_LINK = "{file} is a symbolic link; submit the file itself"
MSG_NOT_A_FILE = "{file} is {what}, not a file; submit the file itself"
MSG_TOO_LARGE = "{file} is larger than {mb} MB"
MSG_TOO_LONG = "{file} is too long to grade: more than {n} tokens of code"
MSG_TOO_DEEP = ("{where}: an expression is too long or too deeply nested to be read; "
                "split it into several statements")
MSG_TOO_MANY_CELLS = "{file} has more than {n} cells"
MSG_NOTEBOOK_TOO_BIG = ("{file} holds too much to be read (more than {n} JSON values, mostly outputs): "
                        "clear its outputs and submit it again")
MSG_NOT_A_NOTEBOOK = "{file} is not a readable notebook ({why})"
MSG_IMPORTS_REFERENCE = (
    "{where}: imports `{name}`, the course's reference solution, which is not available "
    "to submissions: your file must contain its own implementation"
)
MSG_CALLS_REFERENCE = (
    "{function} still calls `{call}` ({where}), the course's reference solution, which is not "
    "available to submissions: replace it by your own implementation"
)
MSG_IMPORTS_MLGRADE = (
    "{where}: imports `{name}`, the autograder's own package, which submissions may not use: "
    "remove that import (your file must compute its answers itself)"
)
KEPT_MAGIC_CELLS = {"time", "timeit", "capture"}
SHELL_ASSIGN = re.compile(r"^\s*[\w, ]+=\s*[!%]")  # files = !ls


@dataclass
class LoadError:
    """Why a contract file cannot be graded; ``message`` names file, cell and line."""

    kind: str  # not_submitted | syntax | imports_reference | imports_mlgrade | unreadable (not a regular file, too large)
    message: str


@dataclass
class ModuleSource:
    name: str  # module name in the worker, e.g. "hw1"
    file: str  # the file as submitted, e.g. "hw1.ipynb"
    chunks: list[tuple[str, str]] = field(default_factory=list)
    error: LoadError | None = None
    # top-level functions and classes that cannot be graded, with the message saying why: in a
    # notebook, those that still use the sheet's `import solution` (that import is not run)
    unavailable: dict[str, str] = field(default_factory=dict)
    chosen: str = ""  # why this file, when another accepted file was there too

    def spec(self) -> dict:
        return {"name": self.name, "file": self.file, "chunks": [list(c) for c in self.chunks]}

    @property
    def source(self) -> str:
        return "\n".join(src for _, src in self.chunks)


def _not_regular(mode: int) -> str | None:
    """What a file system entry is, when it is not a regular file."""
    for test, what in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else "not a regular file"


def read_regular(path: Path, limit: int) -> bytearray | LoadError:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes, else why not.

    Never follows a symbolic link (nor opens a device or pipe, which could block or never
    end): lstat first for the message, then O_NOFOLLOW | O_NONBLOCK and fstat on what was
    opened, so that an entry swapped in between is caught too; at most ``limit + 1`` bytes
    are read. Messages never show the contents of anything.
    """
    file = path.name
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        return LoadError("unreadable", f"{file} cannot be read ({exc.strerror})")
    if stat.S_ISLNK(mode):
        return LoadError("unreadable", MSG_LINK.format(file=file))
    if _not_regular(mode):
        return LoadError("unreadable", MSG_NOT_A_FILE.format(file=file, what=_not_regular(mode)))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return LoadError("unreadable", MSG_LINK.format(file=file))
        return LoadError("unreadable", f"{file} cannot be read ({exc.strerror})")
    with os.fdopen(fd, "rb", buffering=0) as fh:
        try:
            st = os.fstat(fd)
            if _not_regular(st.st_mode):
                return LoadError("unreadable", MSG_NOT_A_FILE.format(file=file, what=_not_regular(st.st_mode)))
            # read in place: one copy of the file in memory, not chunks and their join
            data, size = bytearray(min(st.st_size, limit) + 1), 0
            while size <= limit:
                if size == len(data):  # the file grew since fstat
                    data.extend(bytes(min(1 << 20, limit + 1 - size)))
                with memoryview(data) as view:
                    n = fh.readinto(view[size:])
                if not n:
                    break
                size += n
        except OSError as exc:
            return LoadError("unreadable", f"{file} cannot be read ({exc.strerror})")
    if size > limit:
        return LoadError("unreadable", MSG_TOO_LARGE.format(file=file, mb=limit >> 20))
    del data[size:]
    return data


def _too_many_tokens(source: str) -> bool:
    """Whether ``source`` holds more than MAX_TOKENS tokens (counted without building anything)."""
    if len(source) <= MAX_TOKENS // 2:  # a token takes a character, a line's NEWLINE and DEDENTs aside
        return False
    count = 0
    try:
        for _ in tokenize.generate_tokens(io.StringIO(source).readline):
            count += 1
            if count > MAX_TOKENS:
                return True
    except (tokenize.TokenError, SyntaxError):
        pass  # ast.parse says what is wrong, where
    return False


def _parse(source: str, label: str) -> ast.Module | LoadError:
    """ast.parse, with every way it fails as a LoadError naming the file (and cell)."""
    try:
        return ast.parse(source, filename=label)
    except SyntaxError as exc:
        return LoadError("syntax", f"{label}, line {exc.lineno}: SyntaxError: {exc.msg}")
    except (RecursionError, MemoryError):
        return LoadError("syntax", MSG_TOO_DEEP.format(where=label))


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
    # an annotation is evaluated at module level: kept only when evaluating it runs nothing
    if isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name) \
            and isinstance(node.annotation, (ast.Name, ast.Constant)):
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


def _read_notebook(data: bytes, file: str):
    """The notebook in ``data`` (as version 4, outputs dropped) or a LoadError.

    Cells and JSON values are counted on the bytes first (upper bounds: the words and signs
    inside strings count too), so that nothing is built for a notebook that is too big.
    """
    if data.count(b'"cell_type"') > MAX_CELLS:
        return LoadError("unreadable", MSG_TOO_MANY_CELLS.format(file=file, n=MAX_CELLS))
    if sum(data.count(sign) for sign in (b"[", b"{", b",", b":")) > MAX_NOTEBOOK_VALUES:
        return LoadError("unreadable", MSG_NOTEBOOK_TOO_BIG.format(file=file, n=MAX_NOTEBOOK_VALUES))
    try:
        raw = json.loads(data)
        del data
        worksheets = raw.get("worksheets") or [] if isinstance(raw, dict) else []
        for cell in [*raw.get("cells", []), *(c for ws in worksheets for c in ws.get("cells", []))]:
            if isinstance(cell, dict) and "outputs" in cell:
                cell["outputs"] = []  # what the grader never reads is not validated or kept
        return nbformat.reads(json.dumps(raw), as_version=4)
    except Exception as exc:  # broken JSON, or JSON that is no notebook: nbformat raises several kinds
        why = type(exc).__name__ if not isinstance(exc, json.JSONDecodeError) else \
            f"JSON error at line {exc.lineno}, column {exc.colno}"
        return LoadError("unreadable", MSG_NOT_A_NOTEBOOK.format(file=file, why=why))


def _imports_of(node: ast.stmt, forbidden: set[str]) -> list[tuple[str, str]]:
    """(module, bound name) per module among ``forbidden`` that the import ``node`` imports."""
    if isinstance(node, ast.Import):
        return [(a.name, a.asname or a.name.split(".")[0]) for a in node.names if a.name.split(".")[0] in forbidden]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] in forbidden:
        return [(node.module, a.asname or a.name) for a in node.names]
    return []


def _reference_uses(defs: list[tuple[str, ast.stmt]], bound: set[str], forbidden: set[str]) -> dict[str, str]:
    """{function or class: message} for each top-level definition that uses the reference."""
    unavailable = {}
    for label, node in defs:
        for inner in ast.walk(node):
            if isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name) and inner.value.id in bound:
                call = f"{inner.value.id}.{inner.attr}"
            elif isinstance(inner, ast.Name) and inner.id in bound:
                call = inner.id
            elif isinstance(inner, (ast.Import, ast.ImportFrom)) and _imports_of(inner, forbidden):
                call = _imports_of(inner, forbidden)[0][0]
            else:
                continue
            unavailable[node.name] = MSG_CALLS_REFERENCE.format(function=node.name, call=call,
                                                                where=f"{label}, line {inner.lineno}")
            break
    return unavailable


def _notebook_chunks(data: bytes, file: str, forbidden: set[str] = frozenset()):
    """(chunks, load error, unavailable definitions) of a notebook.

    The sheet's ``import solution`` lines are not run; each function or class that still uses
    what they imported is unavailable, by name, and the notebook's other definitions are graded.
    """
    nb = _read_notebook(data, file)
    if isinstance(nb, LoadError):
        return [], nb, {}
    cells = [(index, _strip_ipython(cell.source)) for index, cell in enumerate(nb.cells, start=1)
             if cell.cell_type == "code" and cell.source.strip()]
    cells = [(index, source) for index, source in cells if source is not None]
    if _too_many_tokens("\n".join(source for _, source in cells)):
        return [], LoadError("unreadable", MSG_TOO_LONG.format(file=file, n=MAX_TOKENS)), {}
    chunks, known, bound, defs, taken = [], set(), set(), [], {}
    for index, source in cells:
        label = f"{file}, cell {index}"
        tree = _parse(source, label)
        if isinstance(tree, LoadError):
            return [], tree, {}
        lines = source.splitlines(True)
        for node in tree.body:
            reference = _imports_of(node, forbidden)
            bound.update(name for _, name in reference)
            taken.update(_taken_from_reference(node, reference, bound, label))
            if reference or not _kept_safely(node, known):
                start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                _blank(lines, start, node.end_lineno)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defs.append((label, node))
        kept = "".join(lines)
        if kept.strip():
            chunks.append((label, kept))
    # a name bound to the reference itself (from solution import f; f = solution.f) is unavailable
    # too, unless a later cell defines it
    defined = {node.name for _, node in defs}
    return chunks, None, {**{k: v for k, v in taken.items() if k not in defined}, **_reference_uses(defs, bound, forbidden)}


def _taken_from_reference(node: ast.stmt, reference: list, bound: set[str], label: str) -> dict[str, str]:
    """{name: message} for the top-level names ``node`` binds to the reference's objects."""
    where = f"{label}, line {node.lineno}"
    if isinstance(node, ast.ImportFrom) and reference:
        return {name: MSG_CALLS_REFERENCE.format(function=name, call=f"{module}.{name}", where=where)
                for module, name in reference}
    if isinstance(node, ast.Assign):
        used = [n.id for n in ast.walk(node.value) if isinstance(n, ast.Name) and n.id in bound]
        if used:
            return {t.id: MSG_CALLS_REFERENCE.format(function=t.id, call=ast.unparse(node.value)[:80], where=where)
                    for t in node.targets if isinstance(t, ast.Name)}
    return {}


def _kept_safely(node: ast.stmt, known: set[str]) -> bool:
    """_kept, where a statement too deep to judge is not kept (it is blanked like any other)."""
    try:
        return _kept(node, known)
    except RecursionError:
        return False


def _check_imports(chunks: list[tuple[str, str]], forbidden: set[str]) -> LoadError | None:
    """The first import of a ``forbidden`` module (the reference solution) or of mlgrade itself."""
    for label, source in chunks:
        for node in ast.walk(ast.parse(source, filename=label)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                where = f"{label}, line {node.lineno}"
                if name.split(".")[0] in forbidden:
                    return LoadError("imports_reference", MSG_IMPORTS_REFERENCE.format(where=where, name=name))
                if name.split(".")[0] == "mlgrade":
                    return LoadError("imports_mlgrade", MSG_IMPORTS_MLGRADE.format(where=where, name=name))
    return None


def load_file(submission_dir: Path, names: list[str], reference_modules: set[str] = frozenset()) -> ModuleSource:
    """Read the contract file ``names[0]`` (or an accepted alternative) from a submission."""
    module = ModuleSource(name=Path(names[0]).stem, file=names[0])
    path, module.chosen = choose_file(Path(submission_dir), names)
    if path is None:
        module.error = LoadError("not_submitted", MSG_NOT_SUBMITTED.format(file=names[0]))
        return module
    module.file = path.name
    data = read_regular(path, MAX_SOURCE_BYTES.get(path.suffix, MAX_SOURCE_BYTES[".py"]))
    if isinstance(data, LoadError):
        module.error = data
        return module
    if path.suffix == ".ipynb":
        module.chunks, module.error, module.unavailable = _notebook_chunks(data, path.name, set(reference_modules))
    else:
        source = data.decode("utf-8", "replace")
        del data
        tree = LoadError("unreadable", MSG_TOO_LONG.format(file=path.name, n=MAX_TOKENS)) \
            if _too_many_tokens(source) else _parse(source, path.name)
        if isinstance(tree, LoadError):
            module.error = tree
            return module
        module.chunks = [(path.name, source)]
    if module.error is None:  # a notebook's uses of the reference were named per definition
        module.error = _check_imports(module.chunks, set() if module.unavailable else set(reference_modules))
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
