"""The state a stream pair keeps on a link: its two flows, their segments, and the wires.

Only state and the bookkeeping on it; the timing model that fills it in is
``wan.Link``'s, and the endpoints that read it are ``wanstream``'s.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Literal

import attrs
import trio

if TYPE_CHECKING:
    from vtlfabric.net.wan import Link

INF = math.inf

Direction = Literal["a->b", "b->a"]
DIRECTIONS: tuple[Direction, Direction] = ("a->b", "b->a")


@attrs.define(eq=False)
class Segment:
    data: bytes | memoryview  # a view of the bytes the sender passed: never copied on the way
    fin: bool = False
    taken: int = 0  # bytes of it the receiving application has read
    arrival: float | None = None  # None: lost in a partition, not delivered yet
    ack_at: float | None = None  # None: the ack cannot come back yet


@attrs.define(eq=False)
class Wire:
    """One direction of a link: its shared wire and whether it is cut."""

    name: Direction
    free_at: float = -INF
    partitioned: bool = False


@attrs.define(eq=False)
class Flow:
    """The bytes one endpoint of a pair sends to the other.

    Sender state (unacked, lost, stall) and receiver state (inbox, bytes read)
    live together, because the window covers both.
    """

    wire: Wire
    back: Wire  # the direction acks travel
    unacked: deque[Segment] = attrs.Factory(deque)
    in_flight: int = 0  # bytes in ``unacked``
    lost: deque[Segment] = attrs.Factory(deque)  # not delivered: waiting for heal()
    inbox: deque[Segment] = attrs.Factory(deque)  # delivered (possibly in the future), not yet read
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
class Pair:
    """The shared state of two endpoints: their two flows and whether the pair broke."""

    link: Link
    flows: tuple[Flow, Flow]  # flows[i] carries what endpoint i sends
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
