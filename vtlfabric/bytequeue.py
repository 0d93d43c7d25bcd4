"""Bytes queued in the pieces they came in, read out without copying them again.

A stream arrives in pieces (WAN segments, tape spans) and is consumed in other units
(sealed records, restored objects). Appending each piece to one bytearray copies every
byte on arrival and again on the way out, and moves the rest down each time the front
is consumed; a big object held that way cost the event loop tens of milliseconds. Here
a piece is kept as a view, a read returns views of the pieces it spans, and whoever
needs the bytes contiguous joins them once, where it likes (off the loop).
"""

from __future__ import annotations

from collections import deque

import attrs


@attrs.define(eq=False)
class ByteQueue:
    _pieces: deque[memoryview] = attrs.Factory(deque)
    size: int = 0

    def append(self, data: bytes | memoryview) -> None:
        """Queue ``data``, which must not change while it is queued (bytes cannot)."""
        if data:
            self._pieces.append(memoryview(data))
            self.size += len(data)

    def parts(self, start: int, n: int) -> list[memoryview]:
        """Views of queued bytes ``start`` to ``start + n`` (all queued), left queued."""
        out, at = [], 0
        for piece in self._pieces:
            lo, hi = max(start - at, 0), min(start + n - at, len(piece))
            if lo < hi:
                out.append(piece[lo:hi])
            at += len(piece)
            if at >= start + n:
                break
        return out

    def peek(self, n: int) -> bytes:
        """The first ``n`` queued bytes, as one bytes object, left queued."""
        return b"".join(self.parts(0, n))

    def consume(self, n: int) -> None:
        """Drop the first ``n`` queued bytes."""
        self.size -= n
        while n:
            first = self._pieces[0]
            if len(first) > n:
                self._pieces[0] = first[n:]
                return
            self._pieces.popleft()
            n -= len(first)


def joined(parts: list[memoryview]) -> bytes | memoryview:
    """The parts as one contiguous buffer: a copy only if there is more than one."""
    return parts[0] if len(parts) == 1 else b"".join(parts)
