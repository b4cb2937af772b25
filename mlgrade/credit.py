"""Partial credit that reads like the exercise: each part of a test is one line with its share.

    @check("ridge_fit: the sheet's two problems", weight=4)
    def test_ridge_fit(parts):
        with parts(0.5, "without regularisation"):
            assert_close(course.ridge_fit(X, y, 0.0), ref.ridge_fit(X, y, 0.0))
        with parts(0.5, "lambda = 1"):
            assert_close(course.ridge_fit(X, y, 1.0), ref.ridge_fit(X, y, 1.0))

A part that fails (an AssertionError: a wrong value, or a student function that raised, timed
out or is missing) costs its share; the other parts still run. The test then fails with the
failed parts' messages, first line first, and earns the shares of the parts that passed. The
shares of one test add up to 1. The lower-level form, ``credit.fraction = x`` before the test
may fail, stays for tests that compute their fraction.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

__all__ = ["Credit", "Parts", "PartsError"]

MSG_SHARES = "the shares of the parts of this test add up to {total:g}, not 1 ({parts})"
MSG_FAILED_ONE = "{name} ({share} of the points): {first}"
MSG_FAILED_MANY = "{failed} of {count} parts failed ({lost} of the points): {names}"


class PartsError(ValueError):
    """A grader's mistake in declaring parts (an error in the grader, never the student's)."""


@dataclass
class Credit:
    """Partial credit: a test sets ``credit.fraction`` (0..1) before it may fail."""

    fraction: float | None = None


def _share(value: float) -> str:
    return {0.5: "half", 0.25: "a quarter", 0.75: "three quarters"}.get(value, f"{value:.0%}")


@dataclass
class Parts:
    """The ``parts`` fixture: ``with parts(share, name):`` around each part of a test."""

    credit: Credit
    declared: list[tuple[str, float]] = field(default_factory=list)
    failures: list[tuple[str, float, str]] = field(default_factory=list)

    @contextlib.contextmanager
    def __call__(self, share: float, name: str):
        if not 0 < share <= 1:
            raise PartsError(f"part {name!r}: a share is a fraction of the test's points in (0, 1], not {share!r}")
        self.declared.append((name, share))
        try:
            yield
        except AssertionError as exc:
            self.failures.append((name, share, str(exc) or "check failed"))
        self.credit.fraction = sum(s for _, s in self.declared) - sum(s for _, s, _ in self.failures)

    def finish(self) -> None:
        """At the end of the test: the grader's shares add up to 1; failed parts fail the test."""
        total = sum(share for _, share in self.declared)
        if self.declared and not math.isclose(total, 1.0, abs_tol=1e-9):
            raise PartsError(MSG_SHARES.format(total=total, parts=", ".join(f"{n}: {s:g}" for n, s in self.declared)))
        if not self.failures:
            return
        if len(self.failures) == 1:
            name, share, message = self.failures[0]
            first, _, rest = message.partition("\n")
            raise AssertionError(MSG_FAILED_ONE.format(name=name, share=_share(share), first=first)
                                 + (f"\n{rest}" if rest else ""))
        lost = sum(share for _, share, _ in self.failures)
        head = MSG_FAILED_MANY.format(failed=len(self.failures), count=len(self.declared), lost=_share(lost),
                                      names="; ".join(name for name, _, _ in self.failures))
        details = "\n".join(f"- {name}: {message}" for name, _, message in self.failures)
        raise AssertionError(f"{head}\n{details}")
