"""Fabric time: seconds since the Unix epoch, read only through Trio's clock.

The daemon reads the wall clock once at start (or, under a virtual clock, the
last fabric time it saved) and from then on adds Trio's clock. So a virtual
clock moves fabric time exactly as it moves Trio time, and a run replays.
"""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import trio


@attrs.define
class FabricClock:
    epoch: float  # fabric time when Trio's clock read `origin`
    origin: float

    @classmethod
    def starting_at(cls, epoch: float) -> FabricClock:
        return cls(epoch, trio.current_time())

    def now(self) -> float:
        return self.epoch + (trio.current_time() - self.origin)


def iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
