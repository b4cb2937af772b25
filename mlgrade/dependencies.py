"""What an assignment's graders and reference need installed, declared with the assignment.

A grader that imports a package the grading machine lacks fails on every submission, and
in an autograder zip it fails on Gradescope only. So an assignment declares the
distributions its graders, reference and public checks import beyond the engine's own
(``requires`` in ``assignment.toml``); ``mlgrade build`` pins them, and everything they and the
engine pull in, into the zip (:func:`pinned_closure`), and :func:`undeclared_imports` (run by
``mlgrade validate``) names any import that is neither the standard library, the engine's, a
declared one, nor a file of the assignment or its course.
"""
from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys

__all__ = ["distribution_name", "engine_requirements", "imported_modules", "pinned", "pinned_closure",
           "undeclared_imports"]

EXTRA = re.compile(r"extra\s*==")
MSG_UNDECLARED = ("{file} imports `{module}` ({distribution}), which {assignment} does not declare: "
                  "add it to `requires` in assignment.toml")


def distribution_name(requirement: str) -> str:
    """``scikit-learn>=1.3`` -> ``scikit-learn`` (normalised: lower case, runs of -_. as -)."""
    name = re.match(r"[A-Za-z0-9_.\-]+", requirement.strip()).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def engine_requirements() -> list[str]:
    """mlgrade's runtime requirements (no extras), as the installed metadata states them."""
    return [r for r in importlib.metadata.requires("mlgrade") or [] if not EXTRA.search(r)]


def pinned(requirements: list[str]) -> list[str]:
    """``name==version`` of each requirement as installed here (a local tag such as +cpu dropped)."""
    pins = {}
    for req in requirements:
        name = distribution_name(req)
        pins[name] = f"{name}=={importlib.metadata.version(name).split('+')[0]}"
    return sorted(pins.values())


def pinned_closure(requirements: list[str]) -> list[str]:
    """:func:`pinned` of ``requirements`` and of everything they require in turn, as installed here
    (environment markers evaluated for this machine): every distribution an install of them brings."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = distribution_name(req.name)
        if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        for extra in req.extras:  # e.g. a requirement on dask[distributed]
            todo += [r for r in map(Requirement, importlib.metadata.requires(name) or [])
                     if r.marker and r.marker.evaluate({"extra": extra})]
        todo += [Requirement(r) for r in importlib.metadata.requires(name) or []]
    return pinned(sorted(seen))


def imported_modules(source: str) -> set[str]:
    """Top-level names of the modules a Python source imports (absolute imports only)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


@functools.lru_cache(maxsize=1)
def _owners() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions_of(module: str) -> set[str]:
    return {distribution_name(d) for d in _owners().get(module, [])}


def undeclared_imports(assignment) -> list[str]:
    """One message per import of the graders and reference that nothing declares."""
    declared = {distribution_name(r) for r in [*engine_requirements(), *assignment.requires]} | {"mlgrade"}
    folders = [f for f in (assignment.public_dir, assignment.graders_dir, assignment.reference_dir) if f.is_dir()]
    local = {p.stem for folder in [*folders, *assignment.code_folders()] for p in folder.rglob("*.py")}
    local.add(assignment.package)
    problems = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            for module in sorted(imported_modules(path.read_text())):
                if module in sys.stdlib_module_names or module in local or module == "mlgrade":
                    continue
                owners = _distributions_of(module)
                if owners & declared:
                    continue
                problems.append(MSG_UNDECLARED.format(
                    file=path.relative_to(folder.parent.parent).as_posix(), module=module,
                    distribution=", ".join(sorted(owners)) or "not installed here", assignment=assignment.id))
    return problems
