"""mlgrade: a sandboxed autograder toolkit for machine-learning homework.

Grader files use this public API; everything else lives in modules named after their job:
``loading`` (reading submissions), ``sandbox`` and ``worker`` (running student code),
``wire`` (the data-only format between them), ``probes`` (trusted code run beside student
code), ``compare`` (assert_close), ``modules`` (torch modules against a reference),
``results`` (the Gradescope pytest plugin), ``runner``, ``validate`` and ``cli``.
"""
import importlib

# Public names and the modules they live in, imported on first use: the sandboxed worker
# imports this package too and must not pay for pytest, nbformat or torch at start-up.
_EXPORTS = {
    "Limits": "mlgrade.sandbox",
    "Mismatch": "mlgrade.compare",
    "Ref": "mlgrade.wire",
    "SubmissionError": "mlgrade.grading",
    "assert_close": "mlgrade.compare",
    "assert_unchanged": "mlgrade.grading",
    "check": "mlgrade.grading",
    "compare_module": "mlgrade.modules",
    "fetch": "mlgrade.grading",
    "module_state": "mlgrade.modules",
    "per_submission": "mlgrade.grading",
    "randomized": "mlgrade.modules",
    "reference": "mlgrade.grading",
    "refuse": "mlgrade.grading",
    "run_module": "mlgrade.modules",
    "student": "mlgrade.grading",
    "transplanted": "mlgrade.modules",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mlgrade' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
