"""Work one stage ahead: a producer task fills a short queue while its consumer drains it
(``read_ahead``); or any task that runs beside a body until it is done (``beside``).

A copy is a chain of stages (read the source, digest it, seal it, send it; receive,
open, write, commit). Run one after the other, each waits on the last: the disk idles
while the data is sealed, the cipher while the disk syncs. ``read_ahead`` runs the
producer in a task of its own, at most ``depth`` items ahead, so the stages overlap
and the queue bounds the memory they hold.

The producer's exception reaches the consumer in its place in the order: everything
produced before it is consumed first, then it is raised, unwrapped. A consumer that
stops early cancels the producer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

import attrs
import trio

T = TypeVar("T")
Emit = Callable[[T], Awaitable[None]]


@attrs.frozen
class _Failed:
    error: Exception


@attrs.define(eq=False)
class Ahead(Generic[T]):
    """What the producer made, in order; its failure is raised after the last of it."""

    _receive: trio.MemoryReceiveChannel

    def __aiter__(self) -> Ahead[T]:
        return self

    async def __anext__(self) -> T:
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        if isinstance(item, _Failed):
            raise item.error
        return item


@asynccontextmanager
async def read_ahead(produce: Callable[[Emit[T]], Awaitable[None]], depth: int) -> AsyncIterator[Ahead[T]]:
    """Run ``produce(emit)`` beside the body, which iterates what it emits."""
    send, receive = trio.open_memory_channel[object](depth)

    async def producer() -> None:
        async with send:
            try:
                await produce(send.send)
            except Exception as e:  # delivered in order, not thrown at the consumer mid-item
                await send.send(_Failed(e))

    async with beside(producer):
        yield Ahead(receive)


@asynccontextmanager
async def beside(task: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Run ``task()`` beside the body; when the body is done, cancel it. The task reports
    its own failures (it must not raise); the body's exception comes out as the body
    raised it, not wrapped in a group, so callers catch what they always caught."""
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(task)
        try:
            yield
        except BaseException as e:  # raised below, outside the nursery
            failure = e
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
