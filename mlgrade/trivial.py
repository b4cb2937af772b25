"""Submissions generated from the reference, to grade the graders (``mlgrade validate``).

Every contract function (and every public method of a contract class) of the reference is
replaced by a stub with the same signature that answers in one way:

- ``zeros``: zeros of the reference's answer on the same arguments (same type, shape and
  dtype; a tensor that requires grad becomes ``answer * 0``, still differentiable);
- ``constant``: a constant of the reference's answer's type, shape and dtype (0.123 where it is
  floating, 1 where it is an integer; a tensor that requires grad stays differentiable): what
  passes a test of shapes or of a property such as "never decreases" without a value;
- ``first_argument``: its first argument (after ``self``);
  (for these trivial kinds a contract class is a class of the reference's base class without
  its layers: its ``__init__`` builds a hidden reference instance that ``zeros`` asks;)
- ``none``: None;
- ``raises``: raises NotImplementedError;
- ``float32``: the reference's answer with floating numpy arrays and numbers cast to float32
  (a correct algorithm in single precision; tensors are left alone);
- ``unchanged``: the reference's answer itself (checks this machinery: it must score 100%).

The reference's own definitions are kept under ``_mlgrade_original_<name>`` and call each
other under those names, so a stub never feeds another stub. Notebooks are rewritten cell by
cell (magics replaced by ``pass`` as loading does) and the stubs added in a last cell.
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat

from mlgrade.loading import _strip_ipython
from mlgrade.staging import contract_files, stage

__all__ = ["TRIVIAL_KINDS", "KINDS", "write_patched", "patch_source"]

TRIVIAL_KINDS = ("zeros", "constant", "first_argument", "none", "raises")  # what must earn nothing
KINDS = (*TRIVIAL_KINDS, "float32", "unchanged")
PREFIX = "_mlgrade_original_"

HELPERS = '''
def _mlgrade_answer(kind, original, arguments):
    import inspect
    signature = inspect.signature(original)
    values = {name: arguments[name] for name in signature.parameters if name in arguments}
    if kind == "raises":
        raise NotImplementedError
    if kind == "none":
        return None
    if kind == "first_argument":
        return next(iter(values.values()), None)
    bound = inspect.BoundArguments(signature, values)
    return _mlgrade_convert(kind, original(*bound.args, **bound.kwargs))


def _mlgrade_convert(kind, value):
    import sys
    import numpy as np
    torch = sys.modules.get("torch")
    if kind == "unchanged":
        return value
    if isinstance(value, (list, tuple)):
        items = [_mlgrade_convert(kind, v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, dict):
        return {k: _mlgrade_convert(kind, v) for k, v in value.items()}
    if torch is not None and isinstance(value, torch.Tensor):
        if kind == "float32":  # torch contracts are float32 already; float64 runs are the grader's choice
            return value
        fill = (0.123 if value.is_floating_point() else 1) if kind == "constant" else 0
        return value * 0 + fill if value.requires_grad else torch.full_like(value, fill)
    if isinstance(value, np.ndarray):
        if kind == "float32":
            return value.astype(np.float32) if value.dtype.kind == "f" else value
        if kind == "constant" and value.dtype.kind in "fciu":
            return np.full_like(value, 0.123 if value.dtype.kind in "fc" else 1)
        return np.zeros_like(value)
    if isinstance(value, (bool, np.bool_)):
        return value if kind == "float32" else type(value)(False)
    if isinstance(value, (int, float, complex, np.number)):
        if kind == "float32":
            return np.float32(value) if isinstance(value, (float, np.floating)) else value
        if kind == "constant":
            return type(value)(0.123 if isinstance(value, (float, complex, np.floating, np.complexfloating)) else 1)
        return type(value)(0)
    return value if kind == "float32" else None
'''


class _Rename(ast.NodeTransformer):
    """Rename the module's own definitions of ``names`` and every reference to them, except
    inside a function where a parameter of that name shadows them."""

    def __init__(self, names: set[str]):
        self.names = names
        self.shadowed: list[set[str]] = [set()]

    def _new(self, name: str) -> str:
        return PREFIX + name if name in self.names and name not in self.shadowed[-1] else name

    def visit_Name(self, node):
        node.id = self._new(node.id)
        return node

    def visit_Global(self, node):
        node.names = [self._new(n) for n in node.names]
        return node

    def _function(self, node):
        for decorator in getattr(node, "decorator_list", []):
            self.visit(decorator)
        self.visit(node.args)  # defaults are evaluated outside the function
        a = node.args
        params = {p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if p is not None}
        self.shadowed.append(self.shadowed[-1] | params)
        body = node.body if isinstance(node.body, list) else [node.body]
        for stmt in body:
            self.visit(stmt)
        self.shadowed.pop()
        return node

    def visit_FunctionDef(self, node):
        return self._function(node)

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = _function


def _defined(tree: ast.Module, names: set[str]) -> dict[str, ast.stmt]:
    return {node.name: node for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names}


def _call_stub(kind: str, name: str, args: ast.arguments, original: str) -> ast.FunctionDef:
    stub = ast.parse(f"def {name}():\n    return _mlgrade_answer({kind!r}, {original}, locals())\n").body[0]
    stub.args = args
    return stub


def _stubs(kind: str, defs: dict[str, ast.stmt]) -> list[ast.stmt]:
    out = []
    for name, node in defs.items():
        if isinstance(node, ast.ClassDef):
            methods = [m for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                       and not m.name.startswith("_")]
            if kind in TRIVIAL_KINDS:  # a class of the same base without the reference's layers, holding
                base = ast.unparse(node.bases[0]) if node.bases else "object"  # one out of sight for zeros, constants
                cls = ast.parse(f"class {name}({base}):\n"
                                f"    def __init__(self, *args, **kwargs):\n"
                                f"        super().__init__()\n"
                                f"        self._mlgrade_hidden = ({node.name}(*args, **kwargs),)\n").body[0]
                owner = "self._mlgrade_hidden[0]"
            else:
                cls, owner = ast.parse(f"class {name}({node.name}):\n    pass\n").body[0], "super()"
            cls.body += [_call_stub(kind, m.name, m.args, f"{owner}.{m.name}") for m in methods]
            out.append(cls)
        else:
            out.append(_call_stub(kind, name, node.args, node.name))
    return out


def _rename_source(source: str, names: set[str]) -> tuple[str, dict[str, ast.stmt]]:
    tree = ast.parse(source)
    defs = _defined(tree, names)
    tree = _Rename(set(names)).visit(tree)
    for node in defs.values():
        node.name = PREFIX + node.name
    return ast.unparse(tree), defs


def patch_source(source: str, names: set[str], kind: str) -> str:
    """A .py file's text with each top-level definition among ``names`` answered by ``kind``."""
    renamed, defs = _rename_source(source, names)
    stubs = ast.unparse(ast.fix_missing_locations(ast.Module(_stubs(kind, defs), [])))
    return f"{renamed}\n\n{HELPERS}\n\n{stubs}\n"


def _patch_notebook(path: Path, names: set[str], kind: str, target: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    defs: dict[str, ast.stmt] = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        source = _strip_ipython(cell.source)
        if source is None:
            continue
        cell.source, found = _rename_source(source, names)
        defs.update(found)  # a later definition of a name wins, as in the notebook
    stubs = ast.unparse(ast.fix_missing_locations(ast.Module(_stubs(kind, defs), [])))
    nb.cells.append(nbformat.v4.new_code_cell(f"{HELPERS}\n\n{stubs}\n"))
    nbformat.write(nb, str(target))


def write_patched(assignment, kind: str, target: Path) -> None:
    """The reference's files in ``target``, each contract file's definitions answered by ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    names = {name for functions in assignment.exercises.values() for name in functions}
    reference = Path(assignment.reference_dir)
    files = contract_files(assignment, reference)
    problems = stage(assignment, files, target, root=reference)
    if problems:
        raise ValueError(f"{reference}: " + "; ".join(problems))
    for path in files.values():
        if path.suffix == ".ipynb":
            _patch_notebook(path, names, kind, target / path.name)
        else:
            (target / path.name).write_text(patch_source(path.read_text(), names, kind))
