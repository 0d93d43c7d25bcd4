"""A copy's throttle: at most so many (nominal) bytes per hour, shared by all its streams."""

from __future__ import annotations

import attrs
import trio


@attrs.define
class Throttle:
    """Each chunk books the next free slot of the copy's byte budget, and its sender
    waits for it; so the rate holds over any hour, across every stream."""

    bytes_per_hour: float  # 0: no limit
    scale: int = 1  # nominal bytes per real byte taken
    _next_free: float = float("-inf")

    async def take(self, nbytes: int) -> None:
        if self.bytes_per_hour <= 0:
            return
        start = max(trio.current_time(), self._next_free)
        self._next_free = start + nbytes * self.scale * 3600.0 / self.bytes_per_hour
        await trio.sleep_until(start)
