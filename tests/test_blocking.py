"""The one seam for blocking work: a worker thread under the real clock, inline under a
virtual one, and a checkpoint either way."""

from __future__ import annotations

import functools
import os
import sys
import threading

import pytest
import trio
import trio.testing

from vtlfabric import blocking


def _where() -> int:
    return threading.get_ident()


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_under_the_real_clock_the_work_runs_in_a_worker_thread():
    async def main() -> tuple[bool, int]:
        return blocking.inline(), await blocking.run_sync(_where)

    inline, ident = trio.run(main)
    assert not inline and ident != threading.get_ident()


async def test_under_a_virtual_clock_the_work_runs_inline_and_the_clock_stands_still(autojump_clock):
    before = trio.current_time()
    assert blocking.inline()
    assert await blocking.run_sync(_where) == threading.get_ident()
    assert trio.current_time() == before, "no jump while the work was under way"


async def test_it_is_a_checkpoint_a_cancelled_caller_never_starts_the_work(autojump_clock):
    ran = []
    with trio.CancelScope() as scope:
        scope.cancel()
        await blocking.run_sync(ran.append, 1)
    assert scope.cancelled_caught and ran == []


async def test_errors_come_back_to_the_caller(autojump_clock):
    with pytest.raises(ZeroDivisionError):
        await blocking.run_sync(lambda: 1 / 0)


def test_no_more_worker_threads_run_at_once_than_the_machine_has_cores():
    """More would take turns with the event loop's thread for the GIL (it woke 20-30 ms late)."""
    lock, running, peak = threading.Lock(), [0], [0]

    def work() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        threading.Event().wait(0.02)  # blocking work, as a worker thread's is
        with lock:
            running[0] -= 1

    async def main() -> int:
        async with trio.open_nursery() as nursery:
            for _ in range(12):
                nursery.start_soon(blocking.run_sync, work)
        return blocking.workers().total_tokens

    cap = trio.run(main)
    assert cap == len(os.sched_getaffinity(0)) and peak[0] == min(cap, 12)


@pytest.mark.skipif(sys.platform != "linux", reason="a thread has a niceness of its own on Linux only")
def test_worker_threads_run_at_the_event_loops_priority():
    """Below it, a worker holding the GIL waits behind any other busy process, and the
    loop waits for the GIL: aux copy beside two busy processes fell to a fifth."""

    async def niceness_in_a_worker(found: list[int]) -> None:
        found.append(await blocking.run_sync(_niceness))

    async def main() -> tuple[int, list[int]]:
        found: list[int] = []
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(niceness_in_a_worker, found)
        return _niceness(), found

    loop, workers = trio.run(main)
    assert workers and all(n == loop for n in workers)


def test_a_worker_thread_is_named_without_formatting_the_work():
    """A partial's repr holds its arguments: naming threads by it once formatted a 4 MiB
    chunk for every call, and aux copy lost four fifths of its speed."""

    class Unprintable:
        def __repr__(self) -> str:
            raise AssertionError("the work's arguments were formatted")

    assert trio.run(blocking.run_sync, functools.partial(lambda _: 1, Unprintable())) == 1
