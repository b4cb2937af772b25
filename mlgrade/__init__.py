"""mlgrade: a sandboxed autograder toolkit for machine-learning homework.

Grader files use this public API; everything else lives in modules named after their job:
``loading`` (reading submissions), ``sandbox`` and ``worker`` (running student code),
``wire`` (the data-only format between them), ``probes`` (trusted code run beside student
code), ``compare`` (assert_close), ``modules`` (torch modules against a reference),
``results`` (the Gradescope pytest plugin), ``runner``, ``validate`` and ``cli``.
"""
from mlgrade.compare import Mismatch, assert_close
from mlgrade.grading import SubmissionError, assert_unchanged, check, fetch, per_submission, reference, refuse, student
from mlgrade.modules import compare_module, module_state, randomized, run_module, transplanted
from mlgrade.sandbox import Limits
from mlgrade.wire import Ref

__all__ = [
    "Limits",
    "Mismatch",
    "Ref",
    "SubmissionError",
    "assert_close",
    "assert_unchanged",
    "check",
    "compare_module",
    "fetch",
    "module_state",
    "per_submission",
    "randomized",
    "reference",
    "refuse",
    "run_module",
    "student",
    "transplanted",
]
