"""A simulated WAN link between two sites, as a pair of ``trio.abc.HalfCloseableStream``.

The model, per direction of a link:

* A segment (at most ``mss`` bytes) occupies the wire for ``len / bandwidth``
  seconds. The wire is shared by every stream of the link in that direction, so
  two busy streams each get half of it.
* It arrives ``latency + uniform(0, jitter)`` after it left, never before the
  segment sent ahead of it on the same stream (a stream never reorders).
* With probability ``loss`` it is lost and resent, which costs one more round
  trip plus its wire time again.
* Each stream may have at most ``window`` bytes unacknowledged; an ack returns
  ``latency`` after the arrival. One stream therefore gets at most about
  ``window / RTT``, and more streams fill a long fat link, as in real networks.
  The window also bounds the bytes the receiving application has not read yet,
  so a slow reader holds back its sender instead of growing a buffer.

Nothing runs in the background: every delay is a ``trio.sleep_until`` inside the
caller's own ``send_all`` or ``receive_some``, computed from ``trio.current_time()``.
That is what lets a virtual clock (``autojump_clock``, the daemon's clock) run a
week of WAN in seconds. A segment's fate (arrival and ack times, or lost to a
partition) is decided when it leaves, from the link's state at that moment.

Partitions are lazy too: a stream has a *stall deadline*, ``stall_timeout`` after
its last progress, once it holds bytes that cannot be delivered or acknowledged.
Whoever looks at the stream after that deadline (its sender, or the peer waiting
for data) finds the pair broken. ``heal()`` before the deadline resends what was
lost and clears it. A receiver merely waiting for data nobody has sent yet has no
deadline, since a sender may pause for minutes while a tape drive positions.

All chance (jitter, loss, which byte to corrupt) comes from the ``random.Random``
the link is given, so a seed and the same calls under the same clock reproduce
the same timings and the same corrupted bytes.
"""

from __future__ import annotations

import math
import operator
import random
from collections import deque
from collections.abc import Callable
from typing import Literal

import attrs
import trio

from vtlfabric.net.linkspec import LinkSpec, MiB

INF = math.inf

Direction = Literal["a->b", "b->a"]
_DIRECTIONS: tuple[Direction, Direction] = ("a->b", "b->a")
_PARTITIONS: dict[str, tuple[Direction, ...]] = {"both": _DIRECTIONS, "a->b": ("a->b",), "b->a": ("b->a",)}
_MAX_LOSS_ROUNDS = 64  # a bound on resends of one segment, so a silly loss rate cannot spin


@attrs.define
class LinkStats:
    """Counters for status reports (serialised with ``attrs.asdict``)."""

    bytes_a_to_b: int = 0  # payload bytes put on the wire, first transmissions only
    bytes_b_to_a: int = 0
    segments: int = 0
    retransmits: int = 0  # resends after random loss, a partition, or a lost ack
    corrupted: int = 0
    streams_opened: int = 0
    streams_broken: int = 0


# ---------------------------------------------------------------- internals


@attrs.define(eq=False)
class _Segment:
    data: bytes
    fin: bool = False
    taken: int = 0  # bytes of it the receiving application has read
    arrival: float | None = None  # None: lost in a partition, not delivered yet
    ack_at: float | None = None  # None: the ack cannot come back yet


@attrs.define(eq=False)
class _Wire:
    """One direction of a link: its shared wire and whether it is cut."""

    name: Direction
    free_at: float = -INF
    partitioned: bool = False


@attrs.define(eq=False)
class _Flow:
    """The bytes one endpoint of a pair sends to the other.

    Sender state (unacked, lost, stall) and receiver state (inbox, bytes read)
    live together, because the window covers both.
    """

    wire: _Wire
    back: _Wire  # the direction acks travel
    unacked: deque[_Segment] = attrs.Factory(deque)
    in_flight: int = 0  # bytes in ``unacked``
    lost: deque[_Segment] = attrs.Factory(deque)  # not delivered: waiting for heal()
    inbox: deque[_Segment] = attrs.Factory(deque)  # delivered (possibly in the future), not yet read
    sent: int = 0
    read: int = 0
    last_arrival: float = -INF
    last_ack: float = -INF
    stalled_since: float | None = None
    fin_sent: bool = False

    def release_acked(self, now: float) -> None:
        """Acks that have come back free window space (acks are cumulative, so in order)."""
        while self.unacked and self.unacked[0].ack_at is not None and self.unacked[0].ack_at <= now:
            self.in_flight -= len(self.unacked.popleft().data)

    def occupancy(self) -> int:
        """Window in use: bytes not yet acked by the network, or not yet read by the peer.

        Both are suffixes of the bytes sent, so the larger one is their union.
        """
        return max(self.in_flight, self.sent - self.read)

    def next_ack(self) -> float:
        head = self.unacked[0] if self.unacked else None
        return head.ack_at if head is not None and head.ack_at is not None else INF

    def mark_stalled(self, now: float) -> None:
        """Start the stall clock at the last progress we know of, unless it already runs."""
        if self.stalled_since is None:
            self.stalled_since = max(now, self.last_ack)

    def clear_stall_if_flowing(self) -> None:
        if not self.lost and all(s.ack_at is not None for s in self.unacked):
            self.stalled_since = None


@attrs.define(eq=False)
class _Pair:
    """The shared state of two endpoints: their two flows and whether the pair broke."""

    link: Link
    flows: tuple[_Flow, _Flow]  # flows[i] carries what endpoint i sends
    lot: trio.lowlevel.ParkingLot = attrs.Factory(trio.lowlevel.ParkingLot)
    closed: list[bool] = attrs.Factory(lambda: [False, False])
    broken: bool = False

    def notify(self) -> None:
        """Something changed: blocked calls on either endpoint re-examine the state."""
        self.lot.unpark_all()

    def break_at(self) -> float:
        stalls = [f.stalled_since for f in self.flows if f.stalled_since is not None]
        return min(stalls) + self.link.spec.stall_timeout if stalls else INF

    def settle(self, now: float) -> None:
        """Apply a stall deadline that has passed: the pair breaks, both ways."""
        if not self.broken and now >= self.break_at():
            self.broken = True
            self.link.stats.streams_broken += 1
            for flow in self.flows:  # what never arrived never will: let it go
                flow.lost.clear()
                flow.inbox.clear()
            self.notify()

    def finished(self) -> bool:
        return self.broken or all(self.closed)


# ---------------------------------------------------------------- the link


@attrs.define(eq=False)
class Link:
    """A link between two sites. Streams opened on it share its wire in each direction."""

    spec: LinkSpec
    rng: random.Random
    stats: LinkStats = attrs.Factory(LinkStats)
    _wires: dict[Direction, _Wire] = attrs.Factory(lambda: {d: _Wire(d) for d in _DIRECTIONS})
    _taps: list[Callable[[str, bytes], None]] = attrs.Factory(list)
    _corrupt_pending: int = 0
    _pairs: dict[int, _Pair] = attrs.Factory(dict)  # insertion ordered, so heal() is deterministic
    _next_pair: int = 0

    @property
    def partitioned(self) -> str | None:
        """Which way the link is cut, for status reports: "both", "a->b", "b->a", or None."""
        cut = [d for d in _DIRECTIONS if self._wires[d].partitioned]
        return "both" if len(cut) == 2 else (cut[0] if cut else None)

    @property
    def active_streams(self) -> int:
        self._prune()
        return len(self._pairs)

    def open_stream(self, src_site: str) -> tuple[WanStream, WanStream]:
        """A new stream pair: (the endpoint at ``src_site``, the endpoint at the other site)."""
        if src_site not in (self.spec.a, self.spec.b):
            raise ValueError(f"link {self.spec.name} joins {self.spec.a} and {self.spec.b}, not {src_site}")
        self._prune()
        forward, backward = (("a->b", "b->a") if src_site == self.spec.a else ("b->a", "a->b"))
        near_flow = _Flow(self._wires[forward], self._wires[backward])
        far_flow = _Flow(self._wires[backward], self._wires[forward])
        pair = _Pair(self, (near_flow, far_flow))
        self._pairs[self._next_pair] = pair
        self._next_pair += 1
        self.stats.streams_opened += 1
        return WanStream(pair, 0), WanStream(pair, 1)

    def partition(self, direction: str = "both") -> None:
        """Cut the link one way ("a->b", "b->a") or both. Cuts add up until heal()."""
        if direction not in _PARTITIONS:
            raise ValueError(f"partition direction must be one of {sorted(_PARTITIONS)}, not {direction!r}")
        self._settle_all()
        for d in _PARTITIONS[direction]:
            self._wires[d].partitioned = True

    def heal(self) -> None:
        """Reconnect both ways and resend what the partition swallowed, unless a stream already broke."""
        self._settle_all()
        for wire in self._wires.values():
            wire.partitioned = False
        now = trio.current_time()
        for pair in self._pairs.values():
            if not pair.broken:
                for flow in pair.flows:
                    self._resend(flow, now)
                pair.notify()

    def corrupt_next(self, n: int = 1) -> None:
        """Flip one byte in each of the next ``n`` data segments carried, either way."""
        if n < 0:
            raise ValueError("cannot corrupt a negative number of segments")
        self._corrupt_pending += n

    def add_tap(self, fn: Callable[[str, bytes], None]) -> Callable[[], None]:
        """Call ``fn(direction, bytes)`` for each segment as first carried; returns the remover."""
        self._taps.append(fn)

        def remove() -> None:
            if fn in self._taps:
                self._taps.remove(fn)

        return remove

    # -- carrying segments (called by the endpoints)

    def _transmit(self, flow: _Flow, piece: bytes) -> float:
        """Put a data segment on the shared wire; returns when it is fully on the wire."""
        now = trio.current_time()
        end = self._occupy(flow.wire, len(piece), now)
        piece = self._maybe_corrupt(piece)
        for tap in list(self._taps):
            tap(flow.wire.name, piece)
        self.stats.segments += 1
        if flow.wire.name == "a->b":
            self.stats.bytes_a_to_b += len(piece)
        else:
            self.stats.bytes_b_to_a += len(piece)
        segment = _Segment(piece)
        flow.sent += len(piece)
        flow.unacked.append(segment)
        flow.in_flight += len(piece)
        self._launch(flow, segment, end, now)
        return end

    def _transmit_fin(self, flow: _Flow) -> None:
        """The end of a flow travels like a (free, loss-less) segment behind the data."""
        now = trio.current_time()
        flow.fin_sent = True
        segment = _Segment(b"", fin=True)
        flow.unacked.append(segment)
        self._launch(flow, segment, max(now, flow.wire.free_at), now)

    def _occupy(self, wire: _Wire, size: int, now: float) -> float:
        """Reserve the shared wire for one segment, after whatever is already on it; returns its end."""
        wire.free_at = max(now, wire.free_at) + size / self.spec.bandwidth
        return wire.free_at

    def _launch(self, flow: _Flow, segment: _Segment, departure: float, now: float) -> None:
        """Decide the segment's fate from the link's state as it leaves."""
        if flow.wire.partitioned or flow.lost:
            flow.lost.append(segment)
            flow.mark_stalled(now)
            return
        arrival = self._arrive(flow, segment, departure + self._delay(len(segment.data), segment.fin))
        self._schedule_ack(flow, segment, arrival, now)

    def _arrive(self, flow: _Flow, segment: _Segment, arrival: float) -> float:
        segment.arrival = flow.last_arrival = max(arrival, flow.last_arrival)  # in order, whatever the jitter says
        flow.inbox.append(segment)
        return segment.arrival

    def _schedule_ack(self, flow: _Flow, segment: _Segment, earliest: float, now: float) -> None:
        if flow.back.partitioned:
            flow.mark_stalled(now)
            return
        segment.ack_at = max(earliest + self.spec.latency, flow.last_ack)
        flow.last_ack = segment.ack_at

    def _delay(self, size: int, fin: bool) -> float:
        """Propagation, jitter and the cost of random loss for one segment (draws from rng)."""
        spec = self.spec
        delay = spec.latency
        if fin:
            return delay
        if spec.jitter > 0:
            delay += self.rng.uniform(0.0, spec.jitter)
        if spec.loss > 0:
            for _ in range(_MAX_LOSS_ROUNDS):
                if self.rng.random() >= spec.loss:
                    break
                delay += spec.rtt + size / spec.bandwidth
                self.stats.retransmits += 1
        return delay

    def _maybe_corrupt(self, piece: bytes) -> bytes:
        if not self._corrupt_pending or not piece:
            return piece
        self._corrupt_pending -= 1
        self.stats.corrupted += 1
        damaged = bytearray(piece)
        damaged[self.rng.randrange(len(damaged))] ^= self.rng.randrange(1, 256)
        return bytes(damaged)

    def _resend(self, flow: _Flow, now: float) -> None:
        """After heal(): lost acks come back after a resend, then lost segments go out again.

        Segments that arrived but whose ack was lost precede the lost ones in the
        flow, so handling them first keeps acks in order.
        """
        for segment in flow.unacked:
            if segment.ack_at is None and segment.arrival is not None:
                self.stats.retransmits += not segment.fin  # the sender resends, the peer acks the duplicate
                self._schedule_ack(flow, segment, max(segment.arrival, now + self.spec.latency), now)
        while flow.lost:
            segment = flow.lost.popleft()
            end = self._occupy(flow.wire, len(segment.data), now)
            self.stats.retransmits += not segment.fin
            arrival = self._arrive(flow, segment, end + self._delay(len(segment.data), segment.fin))
            self._schedule_ack(flow, segment, arrival, now)
        flow.clear_stall_if_flowing()

    def _settle_all(self) -> None:
        now = trio.current_time()
        for pair in self._pairs.values():
            pair.settle(now)
        self._prune()

    def _prune(self) -> None:
        for key in [k for k, p in self._pairs.items() if p.finished()]:
            del self._pairs[key]


# ---------------------------------------------------------------- endpoints


@attrs.define(eq=False)
class WanStream(trio.abc.HalfCloseableStream):
    """One end of a stream over a :class:`Link` (or of a :func:`local_stream_pair`)."""

    _pair: _Pair
    _side: int
    _sending: bool = False
    _receiving: bool = False
    _eof_received: bool = False

    @property
    def _out(self) -> _Flow:
        return self._pair.flows[self._side]

    @property
    def _in(self) -> _Flow:
        return self._pair.flows[1 - self._side]

    @property
    def _spec(self) -> LinkSpec:
        return self._pair.link.spec

    # -- sending

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._busy("send"):
            await trio.lowlevel.checkpoint_if_cancelled()
            self._check_can_send()
            view = memoryview(data).cast("B")
            size = max(1, min(self._spec.mss, self._spec.window))
            for offset in range(0, len(view), size):
                piece = bytes(view[offset:offset + size])
                await self._wait_for_window(len(piece))
                on_wire = self._pair.link._transmit(self._out, piece)
                self._pair.notify()
                await trio.sleep_until(on_wire)
            if not view:
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
                self._pair.link._transmit_fin(self._out)
                self._pair.notify()
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _wait_for_window(self, size: int) -> None:
        """Block until ``size`` more bytes fit in the window (a nearly empty window always admits one segment)."""
        while True:
            self._check_can_send()
            now = trio.current_time()
            self._out.release_acked(now)
            used = self._out.occupancy()
            if used == 0 or used + size <= self._spec.window:
                return
            await self._wait(self._out.next_ack())

    # -- receiving

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
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
                data = self._take(max_bytes)
                await trio.lowlevel.cancel_shielded_checkpoint()
                return data
            await trio.lowlevel.cancel_shielded_checkpoint()
            return b""

    def _take(self, max_bytes: int | None) -> bytes:
        """Everything that has arrived, up to ``max_bytes``, stopping before an end-of-stream."""
        flow, now = self._in, trio.current_time()
        limit = INF if max_bytes is None else max_bytes
        parts: list[bytes] = []
        got = 0
        while flow.inbox and got < limit:
            head = flow.inbox[0]
            assert head.arrival is not None
            if head.fin or head.arrival > now:
                break
            left = len(head.data) - head.taken
            want = int(min(limit - got, left))
            whole = head.taken == 0 and want == left
            parts.append(head.data if whole else head.data[head.taken:head.taken + want])  # no copy when whole
            head.taken += want
            if want == left:
                flow.inbox.popleft()
            got += want
        flow.read += got
        self._pair.notify()  # the window may have room for the sender now
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # -- closing

    async def aclose(self) -> None:
        """Close this end: the peer reads what was sent, then EOF; sends to us break."""
        pair = self._pair
        if not pair.closed[self._side]:
            pair.settle(trio.current_time())
            if not pair.broken and not self._out.fin_sent:
                pair.link._transmit_fin(self._out)
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


_LOCAL = LinkSpec(
    name="local", a="near", b="far", bandwidth=INF, latency=0.0, window=8 * MiB, mss=1 * MiB, stall_timeout=INF
)


def local_stream_pair() -> tuple[WanStream, WanStream]:
    """Two connected endpoints with no delay, for copies between libraries of one site.

    The same endpoint class over an unlimited, never-partitioned link: it keeps the
    same close/EOF semantics as a WAN stream, and its window still bounds the
    bytes a fast sender can queue for a slow reader. It draws no randomness.
    """
    return Link(_LOCAL, random.Random(0)).open_stream("near")
