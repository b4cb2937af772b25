"""Framed messages over a pair of pipes: the one transport between the grading process and a worker.

A frame is an 8-byte little-endian length, then that many bytes (an :mod:`mlgrade.wire`
payload). The grading process sends and receives with a wall-clock deadline and a bound on
the frame size, since the worker may be anything; the worker blocks (no deadline).
"""
from __future__ import annotations

import os
import select
import struct
import time

__all__ = ["Channel", "ChannelClosed", "ChannelTimeout", "FrameTooLarge"]

HEADER = struct.Struct("<Q")
CHUNK = 1 << 20


class ChannelClosed(Exception):
    """The other end closed its pipe (it exited or was killed)."""


class ChannelTimeout(Exception):
    """The deadline passed before the frame was sent or received whole."""


class FrameTooLarge(Exception):
    """The other end announced a frame above the bound."""


class Channel:
    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd, self.write_fd = read_fd, write_fd

    def send(self, payload: bytes, deadline: float | None = None) -> None:
        view = memoryview(HEADER.pack(len(payload)) + payload)
        while view:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([], [self.write_fd], [], remaining)[1]:
                    raise ChannelTimeout
            try:
                view = view[os.write(self.write_fd, view[:CHUNK]):]
            except BrokenPipeError:
                raise ChannelClosed from None

    def receive(self, deadline: float | None = None, max_bytes: int | None = None) -> bytes:
        (n,) = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        if max_bytes is not None and n > max_bytes:
            raise FrameTooLarge(n)
        return self._read_exact(n, deadline)

    def _read_exact(self, n: int, deadline: float | None) -> bytes:
        """Read ``n`` bytes into one buffer (a frame is never held twice while it arrives)."""
        buffer = bytearray(n)
        view, done = memoryview(buffer), 0
        while done < n:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self.read_fd], [], [], remaining)[0]:
                    raise ChannelTimeout
            got = os.readv(self.read_fd, [view[done:done + CHUNK]])
            if not got:
                raise ChannelClosed
            done += got
        return bytes(buffer) if n < CHUNK else buffer

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
