"""Backups and promotions of one policy exclude each other.

A backup writes to the copy that was primary when it started, so a promotion waits
for the running ones to finish (on the old primary, where the promotion then counts
them), and backups asked for meanwhile start once it is done, on the new primary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio


@attrs.define(eq=False)
class RoleGate:
    running: int = 0
    closed: bool = False
    _changed: trio.Event = attrs.field(factory=trio.Event)
    _promotions: trio.Lock = attrs.field(factory=trio.Lock)

    @asynccontextmanager
    async def backup(self) -> AsyncIterator[None]:
        while self.closed:
            await self._changed.wait()
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._wake()

    @asynccontextmanager
    async def promotion(self) -> AsyncIterator[None]:
        async with self._promotions:
            self.closed = True
            try:
                while self.running:
                    await self._changed.wait()
                yield
            finally:
                self.closed = False
                self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
