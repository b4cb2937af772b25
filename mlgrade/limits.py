"""The resource limits of one worker; an assignment may override any of them (``[limits]``)."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass
class Limits:
    """Resource limits of one worker; an assignment may override any of them."""

    memory_mb: int = 1024
    cpu_seconds: int = 600
    processes: int = 64
    file_size_mb: int = 64
    call_timeout: float = 20.0
    load_timeout: float = 60.0
    # per submission (mlgrade.budget): time that calls which time out or stop the worker may
    # lose, and time of all calls together; well inside Gradescope's 10 minutes on half a CPU
    lost_seconds: float = 60.0
    budget_seconds: float = 360.0
    output_chars: int = 2000
    # torch hangs at import under RLIMIT_AS below about 1 GB: this floor only stops runaways
    address_space_mb: int | None = None

    def rlimit_as(self, have_cgroup: bool) -> int:
        if self.address_space_mb:
            return self.address_space_mb
        return max(4096 if have_cgroup else 2 * self.memory_mb, 1536)
