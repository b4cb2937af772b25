"""Which modules the submission imported while it ran: the run-time half of ``refuse``.

In the worker, :func:`install` sets an audit hook (``sys.addaudithook``) before the first
line of student code runs; from then on every first import of a module is recorded with
the context it happened in (``LOAD`` while the submission's files execute, else the
function a probe is calling). The hook sees ``import`` statements and ``__import__``;
``importlib.import_module`` raises no audit event, so at the end of each context the new
entries of ``sys.modules`` are recorded too. Probes only report those records, as plain
data, for the names a grader asks about; :func:`mlgrade.grading.refuse` makes the verdict
in the grading process.

A refusal is a teaching rule, not a security boundary. The hook and its records live in
the same process as the student's code, which can empty the records, replace the probes
that read them, or reach a module without importing it anew (through an object another
library already holds). What it catches is the honest shortcut written with a computed
name (``importlib.import_module("skl" + "earn.svm")``, ``getattr(__import__(...), ...)``),
which the source check cannot see. Modules the worker imported before any student code
(numpy, torch and what they import) are not recorded, nor is a module executed without
entering ``sys.modules``: only the source check sees those.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

LOAD = "(load)"  # the context of imports made while the submitted files execute
OUTSIDE = "(outside a call)"  # between probes: a thread or finalizer of the submission, never refused

_first: dict[str, str] = {}  # module name -> the context of its first import
_context = [OUTSIDE]  # the context imports are recorded in now
_installed = [False]
_before: set[str] = set()  # sys.modules when recording began: the worker's own imports


def _hook(event: str, args: tuple) -> None:
    # kept trivial: an exception here would fail the import itself
    if event == "import" and args and type(args[0]) is str:
        _first.setdefault(args[0], _context[0])


def install() -> None:
    """Record imports from now on (once per process; audit hooks cannot be removed)."""
    if not _installed[0]:
        _before.update(sys.modules)
        sys.addaudithook(_hook)
        _installed[0] = True


def _sweep(context: str) -> None:
    """Record the modules that entered ``sys.modules`` without an audit event (importlib)."""
    for name in list(sys.modules):
        if name not in _first and name not in _before and type(name) is str:
            _first[name] = context


@contextmanager
def during(context: str):
    """Attribute the imports made inside the block to ``context``."""
    outer = _context[0]
    if _installed[0]:
        _sweep(outer)  # what came before the block is not the block's
    _context[0] = context
    try:
        yield
    finally:
        _context[0] = outer
        if _installed[0]:
            _sweep(context)


def matches(name: str, module: str) -> bool:
    """Whether importing ``module`` is importing the refused ``name`` (itself or a submodule)."""
    return module == name or module.startswith(name + ".")


def report(names) -> list[list[str]]:
    """[name, context] per refused ``name`` (itself or a submodule) and context it was imported in."""
    seen = {}
    for module, context in _first.items():
        for name in names:
            if type(name) is str and matches(name, module):
                seen[(name, context)] = None
    return [[name, context] for name, context in seen]


# -- in the grading process ----------------------------------------------------------------


def refused_imports(records, names, function: str) -> list[tuple[str, str]]:
    """(name, context) of the worker's ``records`` that break a refusal of ``names`` to ``function``.

    An import counts when it happened while the submission loaded or during a call of
    ``function`` (or of its methods); ``records`` is what :func:`report` sent, checked
    field by field since the worker may send anything.
    """
    hits = []
    for record in records if isinstance(records, list) else ():
        if not (isinstance(record, list) and len(record) == 2 and all(type(f) is str for f in record)):
            continue
        name, context = record
        if name in names and (context == LOAD or context == function or context.startswith(function + ".")):
            hits.append((name, context))
    return hits
