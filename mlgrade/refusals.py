"""Which modules the submission imported, and which refused routines it called, while it ran:
the run-time half of ``refuse``.

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

A refused name that is a routine rather than a module (``conv_transpose2d``, ``PixelShuffle``)
is recorded where it is called: while a call of a function with refusals runs,
:func:`watching` replaces the routine in its public entry points (:data:`ENTRY_POINTS`: the
functional form ``torch.nn.functional.x``, the module class ``torch.nn.X``, the top-level alias
``torch.x``) and in the submission's own globals by a recorder, and puts them back after. So
``getattr(torch.nn.functional, "d2esopsnart_vnoc"[::-1])`` is seen, as a computed import is;
the same caveats hold (a private path such as ``torch._C`` or a reference kept in a closure is
not).
"""
from __future__ import annotations

import functools
import sys
from contextlib import contextmanager

LOAD = "(load)"  # the context of imports made while the submitted files execute
OUTSIDE = "(outside a call)"  # between probes: a thread or finalizer of the submission, never refused

_first: dict[str, str] = {}  # module name -> the context of its first import
_context = [OUTSIDE]  # the context imports are recorded in now
_installed = [False]
_before: set[str] = set()  # sys.modules when recording began: the worker's own imports
_called: dict[tuple[str, str], None] = {}  # (refused routine, context) of each call seen, in order
# where a refused routine is reached by name (only those already imported are watched)
ENTRY_POINTS = ("torch.nn.functional", "torch.nn", "torch", "torch.linalg", "torch.fft", "torch.special",
                "numpy", "numpy.linalg", "numpy.fft", "scipy.linalg", "scipy.signal", "scipy.optimize")


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


def _recorder(name: str, routine):
    @functools.wraps(routine)
    def recorded(*args, **kwargs):
        _called.setdefault((name, _context[0]), None)
        return routine(*args, **kwargs)
    return recorded


def _watch_class(name: str, cls: type, patched: list) -> None:
    """A module class: its construction and its calls are recorded (isinstance still works)."""
    for attr in ("__init__", "forward", "__call__"):
        if attr in vars(cls):
            patched.append((cls, attr, vars(cls)[attr]))
            setattr(cls, attr, _recorder(name, vars(cls)[attr]))


@contextmanager
def watching(names, own_namespaces=()):
    """Record calls of the refused routines among ``names`` while the block runs: replaced in
    :data:`ENTRY_POINTS` and, where a submission's module (``own_namespaces``) holds the same
    object under any name, there too; all put back afterwards."""
    routines = {}  # id -> (refused name, routine)
    for entry in ENTRY_POINTS:
        namespace = sys.modules.get(entry)
        for name in names if namespace is not None else ():
            routine = vars(namespace).get(name) if type(name) is str else None
            if callable(routine):
                routines[id(routine)] = (name, routine)
    patched = []  # (owner, attribute, original)
    try:
        for _, routine in routines.values():
            if isinstance(routine, type):
                _watch_class(routines[id(routine)][0], routine, patched)
        for namespace in [*(sys.modules[e] for e in ENTRY_POINTS if e in sys.modules), *own_namespaces]:
            for attr, value in list(vars(namespace).items()):
                if id(value) in routines and value is routines[id(value)][1] and not isinstance(value, type):
                    patched.append((namespace, attr, value))
                    setattr(namespace, attr, _recorder(routines[id(value)][0], value))
        yield
    finally:
        for owner, attr, original in reversed(patched):
            setattr(owner, attr, original)


def report_calls(names) -> list[list[str]]:
    """[name, context] per refused routine among ``names`` and the context it was called in."""
    return [[name, context] for name, context in _called if name in names]


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
