"""Notebook state for graders: globals a submitted function reads, objects the grader controls.

    nb = student("nb")
    set_globals(nb, W=W, B=B, V=V)        # as the notebook's random cell would have
    nb.backprop(X1, X2, T)                 # reads the W, B, V just set
    clf = linear_classifier(M)                  # a Ref: predict(X) = X flattened @ M, in the worker
    nb.accuracy(clf, X, T, n=100)

Both run trusted probes (:mod:`mlgrade.probes`) beside the submission; values go in as data,
and nothing the student defined is constructed or returned. ``reference_notebook`` imports a
reference notebook's functions into the grading process, as the worker sees a notebook
(imports, definitions and constants only), with the assignment's helpers importable.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

from mlgrade import wire
from mlgrade.grading import StudentModule, _run, current
from mlgrade.loading import load_file
from mlgrade.memo import MemoizedModule

__all__ = ["linear_classifier", "reference_notebook", "set_globals"]


def set_globals(module: StudentModule, **values) -> None:
    """Set module-level names of the submission in the worker (arrays, tensors, numbers)."""
    shown = ", ".join(f"{name}={wire.describe(value)}" for name, value in values.items())
    _run(module._name, "set_globals", f"setting the notebook globals {shown}", None,
         target=[module._name], values=values)


def linear_classifier(weights) -> wire.Ref:
    """A classifier kept in the worker whose ``predict(X)`` returns ``X.reshape(len(X), -1) @ weights``."""
    out = _run(None, "linear_scores", "building the grader's classifier", None, weights=weights)
    return wire.Ref(out["ref"])


_NOTEBOOKS: dict[str, object] = {}


def reference_notebook(file_name: str, memo: bool = True):
    """The reference notebook ``reference/<assignment>/<file_name>`` as a module (cached).

    Only what a submission keeps runs (see :mod:`mlgrade.loading`), so the reference is
    judged by the same rules; the assignment's ``helpers`` (``utils.py``) are importable
    while it loads. ``memo`` as for :func:`mlgrade.grading.reference`.
    """
    assignment = current().assignment
    path = Path(assignment.reference_dir or "") / file_name
    key = f"mlgrade_reference.{path.parent.name}.{path.stem}"
    if key not in _NOTEBOOKS:
        source = load_file(path.parent, [file_name])
        if source.error:
            raise FileNotFoundError(f"reference notebook {path}: {source.error.message}")
        module = types.ModuleType(key)
        module.__file__ = str(path)
        helpers = {Path(name).stem: assignment.helper_path(name) for name in getattr(assignment, "helpers", [])}
        saved = {name: sys.modules.get(name) for name in helpers}
        try:
            for name, helper in helpers.items():
                sys.modules[name] = _import_helper(name, helper)
            for label, chunk in source.chunks:
                exec(compile(chunk, label, "exec", dont_inherit=True), module.__dict__)
        finally:
            for name, previous in saved.items():
                if previous is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = previous
        _NOTEBOOKS[key] = module
    module = _NOTEBOOKS[key]
    return MemoizedModule(module) if memo else module


def _import_helper(name: str, path: Path) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # as an import does: a dataclass in it looks its module up there
    exec(compile(path.read_text(), str(path), "exec", dont_inherit=True), module.__dict__)
    return module
