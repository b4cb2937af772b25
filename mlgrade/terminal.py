"""Text that is safe to print to an instructor's terminal.

Student-supplied strings (names, messages, printed output) can hold escape sequences that a
terminal obeys: clear the screen, retitle the window, write the clipboard (OSC 52), hide text,
or reorder it with bidi overrides. :func:`printable` removes all of them and keeps the text.
It is the one filter; it is applied where text meets the terminal, whatever printed it:
:class:`PrintableConsole` (every ``rich`` print of the command line, tables and progress bars
included: the text of each segment, never rich's own styling) and :class:`PrintableStream`
(what pytest writes itself under ``mlgrade run -v``).
"""
from __future__ import annotations

import io
import re

from rich.console import Console
from rich.segment import Segment

__all__ = ["PrintableConsole", "PrintableStream", "printable"]

_CONTROL = re.compile(
    r"""
      \x1b\[ [0-?]* [ -/]* [@-~]?              # CSI: cursor moves, colours, clear screen
    | \x9b   [0-?]* [ -/]* [@-~]?              # the same, as one 8-bit C1 byte
    | (?:\x1b[]PX^_]|[\x90\x98\x9d-\x9f])      # OSC, DCS, SOS, PM, APC (clipboard writes, titles)
      .*? (?:\x07|\x1b\\|\x9c|\Z)              # ... up to their terminator, or the end if none
    | \x1b [ -/]* [0-~]?                       # any other escape sequence
    | [\x00-\x08\x0b-\x1f\x7f-\x9f]            # C0 controls but \t and \n, DEL, C1 controls
    | [\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]  # bidi marks, embeddings, overrides, isolates
    """,
    re.VERBOSE | re.DOTALL,
)


def printable(text: str) -> str:
    """``text`` without control characters, escape sequences or bidi controls; \\n and \\t kept."""
    return _CONTROL.sub("", str(text))


class PrintableConsole(Console):
    """A rich Console whose every printed text passes through :func:`printable`: what a caller
    forgot to filter is filtered here; rich's own styles and control segments (cursor moves of
    a live progress bar) are its own and kept."""

    def render_str(self, text: str, **kwargs):
        # before markup and highlighting split it: a whole sequence goes, its payload too
        return super().render_str(printable(text), **kwargs)

    def _render_buffer(self, buffer) -> str:  # what reached the screen by another way: no control byte
        return super()._render_buffer([s if s.control else Segment(printable(s.text), s.style) for s in buffer])


class PrintableStream(io.TextIOBase):
    """A text stream that writes :func:`printable` of what it is given to ``stream``. A
    sequence split across two writes loses its control bytes in each: none reaches ``stream``."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(printable(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def writable(self) -> bool:
        return True
