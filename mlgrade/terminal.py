"""Text that is safe to print to an instructor's terminal.

Student-supplied strings (names, messages, printed output) can hold escape sequences that a
terminal obeys: clear the screen, retitle the window, write the clipboard (OSC 52), hide text,
or reorder it with bidi overrides. :func:`printable` removes all of them and keeps the text.
"""
from __future__ import annotations

import re

__all__ = ["printable"]

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
