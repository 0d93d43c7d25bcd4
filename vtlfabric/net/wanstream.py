"""One end of a stream over a WAN link: a ``trio.abc.HalfCloseableStream``.

Every delay is a ``trio.sleep_until`` or a park inside the caller's own call
(see ``wan`` for the model); the state it waits on is the pair's (``flow``).
"""

from __future__ import annotations

import operator

import attrs
import trio

from vtlfabric.net.flow import INF, Flow, Pair
from vtlfabric.net.linkspec import LinkSpec

# Seconds of wire time a sender books ahead before it waits for the wire: a fast link
# then costs one trip through the scheduler per millisecond, not one per segment. Each
# segment's times are the same either way (the wire is booked segment by segment).
BOOK_AHEAD = 0.001


@attrs.define(eq=False)
class WanStream(trio.abc.HalfCloseableStream):
    """One end of a stream over a :class:`Link` (or of a :func:`local_stream_pair`)."""

    _pair: Pair
    _side: int
    _sending: bool = False
    _receiving: bool = False
    _eof_received: bool = False

    @property
    def _out(self) -> Flow:
        return self._pair.flows[self._side]

    @property
    def _in(self) -> Flow:
        return self._pair.flows[1 - self._side]

    @property
    def _spec(self) -> LinkSpec:
        return self._pair.link.spec

    # -- sending

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._busy("send"):
            await trio.lowlevel.checkpoint_if_cancelled()
            self._check_can_send()
            # Segments are views of the data, not copies: of bytes, which no one can change
            # under them; anything else is copied once, as the caller may reuse it.
            view = memoryview(data if isinstance(data, bytes) else bytes(data))
            size = self._pair.link.segment_size()
            on_wire = trio.current_time()
            for offset in range(0, len(view), size):
                piece = view[offset : offset + size]
                await self._wait_for_window(len(piece))
                on_wire = self._pair.link.transmit(self._out, piece)
                self._pair.notify()
                if on_wire > trio.current_time() + BOOK_AHEAD:
                    await trio.sleep_until(on_wire)
            if view:
                await trio.sleep_until(on_wire)
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        with self._busy("send"):
            await trio.lowlevel.checkpoint_if_cancelled()
            await self._wait_for_window(1)
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_eof(self) -> None:
        with self._busy("send"):
            await trio.lowlevel.checkpoint_if_cancelled()
            self._check_open()
            if not self._out.fin_sent:
                self._check_not_broken()
                self._pair.link.transmit_fin(self._out)
                self._pair.notify()
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _wait_for_window(self, size: int) -> None:
        """Block until ``size`` more bytes fit in the window (a nearly empty window always admits one segment)."""
        while True:
            self._check_can_send()
            now = trio.current_time()
            self._out.release_acked(now)
            used = self._out.occupancy()
            if used == 0 or (used + size) * self._pair.link.scale <= self._spec.window:
                return
            await self._wait(self._out.next_ack())

    # -- receiving

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        parts = await self.receive_parts(max_bytes)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        return data if isinstance(data, bytes) else bytes(data)

    async def receive_parts(self, max_bytes: int | None = None) -> list[bytes | memoryview]:
        """As ``receive_some``, the data left in the segments it came in (views, never
        copied here): for a reader that joins them itself, off the loop. [] at EOF."""
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)  # TypeError for 1.5, as trio's streams do
            if max_bytes < 1:
                raise ValueError("max_bytes must be at least 1")
        with self._busy("receive"):
            await trio.lowlevel.checkpoint_if_cancelled()
            while True:
                self._check_open()
                if self._eof_received:
                    break
                self._check_not_broken()
                inbox = self._in.inbox
                if not inbox:
                    await self._wait(INF)  # nothing sent yet: no deadline of our own
                    continue
                head = inbox[0]
                assert head.arrival is not None
                if head.arrival > trio.current_time():
                    await self._wait(head.arrival)
                    continue
                if head.fin:
                    inbox.popleft()
                    self._eof_received = True
                    break
                parts = self._take(max_bytes)
                await trio.lowlevel.cancel_shielded_checkpoint()
                return parts
            await trio.lowlevel.cancel_shielded_checkpoint()
            return []

    def _take(self, max_bytes: int | None) -> list[bytes | memoryview]:
        """Everything that has arrived, up to ``max_bytes``, stopping before an end-of-stream."""
        flow, now = self._in, trio.current_time()
        limit = INF if max_bytes is None else max_bytes
        parts: list[bytes | memoryview] = []
        got = 0
        while flow.inbox and got < limit:
            head = flow.inbox[0]
            assert head.arrival is not None
            if head.fin or head.arrival > now:
                break
            left = len(head.data) - head.taken
            want = int(min(limit - got, left))
            whole = head.taken == 0 and want == left
            parts.append(head.data if whole else memoryview(head.data)[head.taken : head.taken + want])
            head.taken += want
            if want == left:
                flow.inbox.popleft()
            got += want
        flow.read += got
        self._pair.notify()  # the window may have room for the sender now
        return parts

    # -- closing

    async def aclose(self) -> None:
        """Close this end: the peer reads what was sent, then EOF; sends to us break."""
        pair = self._pair
        if not pair.closed[self._side]:
            pair.settle(trio.current_time())
            if not pair.broken and not self._out.fin_sent:
                pair.link.transmit_fin(self._out)
            pair.closed[self._side] = True
            pair.notify()
        await trio.lowlevel.checkpoint()

    # -- helpers

    async def _wait(self, until: float) -> None:
        """Sleep until ``until``, the pair's stall deadline, or any change to the pair."""
        with trio.move_on_at(min(until, self._pair.break_at())):
            await self._pair.lot.park()

    def _check_open(self) -> None:
        if self._pair.closed[self._side]:
            raise trio.ClosedResourceError("this stream was closed")

    def _check_not_broken(self) -> None:
        self._pair.settle(trio.current_time())
        if self._pair.broken:
            raise trio.BrokenResourceError(f"link {self._spec.name}: stream stalled for {self._spec.stall_timeout:g}s")

    def _check_can_send(self) -> None:
        self._check_open()
        if self._out.fin_sent:
            raise trio.ClosedResourceError("cannot send after send_eof()")
        self._check_not_broken()
        if self._pair.closed[1 - self._side]:
            raise trio.BrokenResourceError("the peer closed the stream")

    def _busy(self, what: str) -> _Busy:
        return _Busy(self, "_sending" if what == "send" else "_receiving", what)


@attrs.define(eq=False)
class _Busy:
    """Trio's rule: two tasks may not send (or receive) on one stream at once."""

    stream: WanStream
    flag: str
    what: str

    def __enter__(self) -> None:
        if getattr(self.stream, self.flag):
            raise trio.BusyResourceError(f"another task is already using this stream to {self.what}")
        setattr(self.stream, self.flag, True)

    def __exit__(self, *exc: object) -> None:
        setattr(self.stream, self.flag, False)
