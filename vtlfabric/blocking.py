"""The one seam for blocking work: SQLite, file I/O on large blocks, bulk crypto.

Under the real clock the work runs in a Trio worker thread, so the event loop never
stalls. Under a virtual clock (``trio.testing.MockClock``: the scenario simulator,
``run --virtual-clock``, tests' ``autojump_clock``) it runs inline, as FoundationDB's
simulator and madsim run their I/O: no event order then depends on how fast a thread
was, and the clock cannot jump while work is under way, so a seed replays bit for bit.
Either way it is a checkpoint, as ``trio.to_thread.run_sync`` is.

Worker threads run at the event loop's priority. They ran below it (nice +10) for a
round, so the loop would not wait behind them on an idle machine; but a worker holding
the GIL then waited behind any other busy process, and the loop waited for the GIL:
beside two busy processes, aux copy fell from 250-267 to 53-58 MiB/s and the loop's
own lag rose from 5-9 to 29-42 ms (docs/PERFORMANCE.md, "The latest round").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import trio
import trio.testing

T = TypeVar("T")


def inline() -> bool:
    """True when blocking work runs on the loop: Trio's clock is virtual."""
    return isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)


async def run_sync(fn: Callable[..., T], *args: Any, limiter: trio.CapacityLimiter | None = None) -> T:
    """``fn(*args)``, off the loop under the real clock and inline under a virtual one.
    Without a ``limiter`` of its own, it waits for one of the run's worker slots."""
    if not inline():
        # Named as Trio names it. Never by repr(fn): a partial's holds its arguments, and
        # formatting one holding a 4 MiB chunk cost aux copy four fifths of its speed.
        what = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        name = f"{what} from {trio.lowlevel.current_task().name}"
        return await trio.to_thread.run_sync(fn, *args, thread_name=name, limiter=limiter or workers())
    await trio.lowlevel.checkpoint_if_cancelled()
    result = fn(*args)
    await trio.lowlevel.cancel_shielded_checkpoint()
    return result


_WORKERS: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("vtlfabric_workers")


def workers() -> trio.CapacityLimiter:
    """As many worker threads at once as the machine has cores. Trio's default (40) let a
    dozen threads of two copy streams (reading, hashing, sealing, opening, writing,
    reading back) take turns with the event loop's thread for the GIL: the loop woke
    20-30 ms late. Capped at the cores, it wakes within 4-6 ms, and the copy is faster."""
    try:
        return _WORKERS.get()
    except LookupError:
        limiter = trio.CapacityLimiter(_cores())
        _WORKERS.set(limiter)
        return limiter


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
