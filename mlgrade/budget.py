"""How much time one submission's code may take, so that every submission is graded in time.

Gradescope stops a container after 10 minutes (on half a CPU by default) and the student
then gets no result at all. Two limits keep a grading well inside that, whatever the
submission does:

- a function that timed out, stopped its worker or ran out of memory is not run again in
  later tests (its tests fail at once, saying why), so one hanging function loses only its
  own tests (where no cgroup exists, as on Gradescope, exhausting memory is a MemoryError at
  the address-space limit, not a death, and costs as much time);
- the time lost to such calls, and the time of all calls together, each have a budget per
  submission (``Limits.lost_seconds``, ``Limits.budget_seconds``); once one is spent, every
  remaining call fails fast with a message.

Honest slow code keeps its per-call limit: a budget never shortens a call that is allowed
to start.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TimeBudget"]

MSG_STRUCK = "{name} {what} in an earlier test ({reason}); not run again"
MSG_SPENT = ("not run: this submission used up its time budget ({detail}); "
             "make every function return well within {call_limit:g} s")


@dataclass
class TimeBudget:
    lost_seconds: float
    total_seconds: float
    call_limit: float
    lost: float = 0.0
    spent: float = 0.0
    struck: dict = field(default_factory=dict)  # function name -> why it is not run again

    def refusal(self, name: str | None) -> str | None:
        """Why a call of ``name`` must not start, or None."""
        if name and name in self.struck:
            return self.struck[name]
        if self.lost >= self.lost_seconds:
            return MSG_SPENT.format(detail=f"{self.lost:.0f} s lost to calls that timed out or stopped the worker, "
                                           f"of {self.lost_seconds:g} s", call_limit=self.call_limit)
        if self.spent >= self.total_seconds:
            return MSG_SPENT.format(detail=f"{self.spent:.0f} s in its functions, of {self.total_seconds:g} s",
                                    call_limit=self.call_limit)
        return None

    def completed(self, seconds: float) -> None:
        self.spent += seconds

    def failed(self, name: str | None, seconds: float, what: str, reason: str) -> None:
        """A call that timed out, stopped its worker or exhausted its memory (``what`` it did):
        its time is lost, its function struck."""
        self.spent += seconds
        self.lost += seconds
        if name:
            self.struck[name] = MSG_STRUCK.format(name=name, what=what, reason=reason)
