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

import random
from collections.abc import Callable

import attrs
import trio

from vtlfabric.net.flow import DIRECTIONS, INF, Direction, Flow, Pair, Segment, Wire
from vtlfabric.net.linkspec import LinkSpec, MiB
from vtlfabric.net.wanstream import WanStream

__all__ = ["Link", "LinkStats", "WanStream", "local_stream_pair"]

_PARTITIONS: dict[str, tuple[Direction, ...]] = {"both": DIRECTIONS, "a->b": ("a->b",), "b->a": ("b->a",)}
MIN_SEGMENT = 16 * 1024  # real bytes: smaller segments cost more time than they model
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


@attrs.define(eq=False)
class Link:
    """A link between two sites. Streams opened on it share its wire in each direction."""

    spec: LinkSpec
    rng: random.Random
    # Nominal bytes per real byte: the wire's time, the window and the stats count nominal
    # bytes, while segments carry real ones (see segment_size).
    scale: int = 1
    stats: LinkStats = attrs.Factory(LinkStats)
    _wires: dict[Direction, Wire] = attrs.Factory(lambda: {d: Wire(d) for d in DIRECTIONS})
    _taps: list[Callable[[str, bytes], None]] = attrs.Factory(list)
    _corrupt_pending: int = 0
    # What a degrade fault changed (bandwidth, latency, loss), until restore(): laid over
    # the spec, so a reload's new spec keeps it.
    degraded: dict[str, float] = attrs.Factory(dict)
    _pairs: dict[int, Pair] = attrs.Factory(dict)  # insertion ordered, so heal() is deterministic
    _next_pair: int = 0

    @property
    def partitioned(self) -> str | None:
        """Which way the link is cut, for status reports: "both", "a->b", "b->a", or None."""
        cut = [d for d in DIRECTIONS if self._wires[d].partitioned]
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
        forward, backward = ("a->b", "b->a") if src_site == self.spec.a else ("b->a", "a->b")
        near_flow = Flow(self._wires[forward], self._wires[backward])
        far_flow = Flow(self._wires[backward], self._wires[forward])
        pair = Pair(self, (near_flow, far_flow))
        self._pairs[self._next_pair] = pair
        self._next_pair += 1
        self.stats.streams_opened += 1
        return WanStream(pair, 0), WanStream(pair, 1)

    def segment_size(self) -> int:
        """Real bytes per segment: a window's worth at most, and at scale 1:N a window of
        N times fewer real bytes, but never below MIN_SEGMENT: there, one segment stands
        for more nominal bytes than the window holds, and the link carries one at a time
        (bandwidth, latency and loss stay exact; the window's limit coarsens)."""
        size = max(1, min(self.spec.mss, self.spec.window))
        return size if self.scale == 1 else max(min(size, MIN_SEGMENT), size // self.scale)

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

    @property
    def live(self) -> LinkSpec:
        """The link as it carries now: its spec, with any degradation laid over it."""
        return attrs.evolve(self.spec, **self.degraded) if self.degraded else self.spec

    def degrade(self, **changes: float) -> LinkSpec:
        """Carry new segments at another bandwidth, latency or loss until restore();
        returns the link as it now is. Segments already on their way keep their fate."""
        attrs.evolve(self.spec, **changes)  # the spec's own validators judge the values
        self.degraded = {**self.degraded, **changes}
        return self.live

    def restore(self) -> None:
        self.degraded = {}

    def corrupt_next(self, n: int = 1) -> None:
        """Flip one byte in each of the next ``n`` data segments carried, either way."""
        if n < 0:
            raise ValueError("cannot corrupt a negative number of segments")
        self._corrupt_pending += n

    def cancel_corruption(self) -> int:
        """Corrupt no more segments; returns how many were still to be corrupted."""
        pending, self._corrupt_pending = self._corrupt_pending, 0
        return pending

    @property
    def corrupt_pending(self) -> int:
        """Data segments still to be corrupted (one byte each), for status reports."""
        return self._corrupt_pending

    def add_tap(self, fn: Callable[[str, bytes], None]) -> Callable[[], None]:
        """Call ``fn(direction, bytes)`` for each segment as first carried; returns the remover."""
        self._taps.append(fn)

        def remove() -> None:
            if fn in self._taps:
                self._taps.remove(fn)

        return remove

    # -- carrying segments (called by the endpoints)

    def transmit(self, flow: Flow, piece: bytes | memoryview) -> float:
        """Put a data segment on the shared wire; returns when it is fully on the wire."""
        now = trio.current_time()
        end = self._occupy(flow.wire, len(piece), now)
        piece = self._maybe_corrupt(piece)
        for tap in list(self._taps):
            tap(flow.wire.name, bytes(piece))
        self.stats.segments += 1
        if flow.wire.name == "a->b":
            self.stats.bytes_a_to_b += len(piece) * self.scale
        else:
            self.stats.bytes_b_to_a += len(piece) * self.scale
        segment = Segment(piece)
        flow.sent += len(piece)
        flow.unacked.append(segment)
        flow.in_flight += len(piece)
        self._launch(flow, segment, end, now)
        return end

    def transmit_fin(self, flow: Flow) -> None:
        """The end of a flow travels like a (free, loss-less) segment behind the data."""
        now = trio.current_time()
        flow.fin_sent = True
        segment = Segment(b"", fin=True)
        flow.unacked.append(segment)
        self._launch(flow, segment, max(now, flow.wire.free_at), now)

    def _occupy(self, wire: Wire, size: int, now: float) -> float:
        """Reserve the shared wire for one segment, after whatever is already on it; returns its end."""
        wire.free_at = max(now, wire.free_at) + size * self.scale / self.live.bandwidth
        return wire.free_at

    def _launch(self, flow: Flow, segment: Segment, departure: float, now: float) -> None:
        """Decide the segment's fate from the link's state as it leaves."""
        if flow.wire.partitioned or flow.lost:
            flow.lost.append(segment)
            flow.mark_stalled(now)
            return
        arrival = self._arrive(flow, segment, departure + self._delay(len(segment.data), segment.fin))
        self._schedule_ack(flow, segment, arrival, now)

    def _arrive(self, flow: Flow, segment: Segment, arrival: float) -> float:
        segment.arrival = flow.last_arrival = max(arrival, flow.last_arrival)  # in order, whatever the jitter says
        flow.inbox.append(segment)
        return segment.arrival

    def _schedule_ack(self, flow: Flow, segment: Segment, earliest: float, now: float) -> None:
        if flow.back.partitioned:
            flow.mark_stalled(now)
            return
        segment.ack_at = max(earliest + self.live.latency, flow.last_ack)
        flow.last_ack = segment.ack_at

    def _delay(self, size: int, fin: bool) -> float:
        """Propagation, jitter and the cost of random loss for one segment (draws from rng)."""
        spec = self.live
        delay = spec.latency
        if fin:
            return delay
        if spec.jitter > 0:
            delay += self.rng.uniform(0.0, spec.jitter)
        if spec.loss > 0:
            for _ in range(_MAX_LOSS_ROUNDS):
                if self.rng.random() >= spec.loss:
                    break
                delay += spec.rtt + size * self.scale / spec.bandwidth
                self.stats.retransmits += 1
        return delay

    def _maybe_corrupt(self, piece: bytes | memoryview) -> bytes | memoryview:
        if not self._corrupt_pending or not piece:
            return piece
        self._corrupt_pending -= 1
        self.stats.corrupted += 1
        damaged = bytearray(piece)
        damaged[self.rng.randrange(len(damaged))] ^= self.rng.randrange(1, 256)
        return bytes(damaged)

    def _resend(self, flow: Flow, now: float) -> None:
        """After heal(): lost acks come back after a resend, then lost segments go out again.

        Segments that arrived but whose ack was lost precede the lost ones in the
        flow, so handling them first keeps acks in order.
        """
        for segment in flow.unacked:
            if segment.ack_at is None and segment.arrival is not None:
                self.stats.retransmits += not segment.fin  # the sender resends, the peer acks the duplicate
                self._schedule_ack(flow, segment, max(segment.arrival, now + self.live.latency), now)
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


_LOCAL = LinkSpec(name="local", a="near", b="far", bandwidth=INF, latency=0.0, window=8 * MiB, mss=1 * MiB, stall_timeout=INF)


def local_stream_pair() -> tuple[WanStream, WanStream]:
    """Two connected endpoints with no delay, for copies between libraries of one site.

    The same endpoint class over an unlimited, never-partitioned link: it keeps the
    same close/EOF semantics as a WAN stream, and its window still bounds the
    bytes a fast sender can queue for a slow reader. It draws no randomness.
    """
    return Link(_LOCAL, random.Random(0)).open_stream("near")
