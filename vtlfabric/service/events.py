"""The event stream behind ``ctl events``: the fabric's job, copy, media, fault and
drill log events, as they happen, for tools to consume.

The bus is a structlog processor, so an event is logged and streamed from one call
and there is one vocabulary for both. It sees events of every level: the media events
(``cartridge.claimed``, ``drive.loaded``, ``drive.unloaded``, each with ``site``,
``library`` and ``barcode``) are logged at debug, one per claim, mount and unmount, so
they stream here while the daemon's log at info leaves them out (logs.configure).
Events logged from worker threads cross into the Trio loop through its token. A
follower that cannot keep up loses events (and is told how many) rather than slowing
the fabric.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

# Event names start with what they are about ("backup.completed", "cartridge.scratch").
JOB_KINDS = ("backup", "job", "auxcopy", "restore", "copy", "aging")
MEDIA_KINDS = ("cartridge", "drive")
KINDS = frozenset({*JOB_KINDS, *MEDIA_KINDS, "fault", "drill", "config", "daemon"})
RECENT = 1000
FOLLOWER_BUFFER = 1000


@attrs.define(eq=False)
class Follower:
    send: trio.MemorySendChannel[dict[str, Any]]
    receive: trio.MemoryReceiveChannel[dict[str, Any]]
    dropped: int = 0

    async def next(self) -> dict[str, Any]:
        """The next event; first, if events were lost, one saying how many."""
        if self.dropped:
            count, self.dropped = self.dropped, 0
            return {"event": "events.dropped", "count": count}
        return await self.receive.receive()


@attrs.define(eq=False)
class EventBus:
    recent: deque[dict[str, Any]] = attrs.field(factory=lambda: deque(maxlen=RECENT))
    _followers: set[Follower] = attrs.field(factory=set)
    _token: trio.lowlevel.TrioToken | None = None

    def attach(self) -> None:
        """Start publishing: called from the daemon's Trio run."""
        self._token = trio.lowlevel.current_trio_token()

    def __call__(self, _logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        """The structlog processor: pass the event on untouched, publish a copy."""
        name = str(event.get("event", ""))
        if self._token is not None and name.split(".", 1)[0] in KINDS:
            record = {k: v for k, v in event.items() if k != "exc_info"}
            try:
                trio.lowlevel.current_task()
            except RuntimeError:  # a worker thread: hand it to the loop
                try:
                    self._token.run_sync_soon(self._publish, record)
                except trio.RunFinishedError:
                    pass
            else:
                self._publish(record)
        return event

    def _publish(self, record: dict[str, Any]) -> None:
        self.recent.append(record)
        for follower in self._followers:
            try:
                follower.send.send_nowait(record)
            except trio.WouldBlock:
                follower.dropped += 1

    @asynccontextmanager
    async def follow(self) -> AsyncIterator[Follower]:
        send, receive = trio.open_memory_channel[dict[str, Any]](FOLLOWER_BUFFER)
        follower = Follower(send, receive)
        self._followers.add(follower)
        try:
            yield follower
        finally:
            self._followers.discard(follower)
            send.close()
            receive.close()


@attrs.frozen
class EventFeed:
    """What ``ctl events`` asks for: the recent events, or (follow) those to come."""

    bus: EventBus
    follow: bool
