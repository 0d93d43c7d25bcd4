"""How late the event loop wakes during a bench operation, and how much of that the
machine itself caused.

``LagProbe`` is a task that sleeps PROBE_INTERVAL at a time and notes each wake's
window (when it was due, when it woke) and the CPUs its thread was on. ``bystanders()``
runs tests/benchbystander.py on each CPU beside the operation: processes that do nothing
but sleep, and do not count the time they wait behind other tasks (ours too) for their
CPU. So when the one on the loop's CPU (or every one) wakes late too, the host or the
kernel stopped that CPU, not our loop. ``stolen()`` reads how much CPU time the host
took from this machine meanwhile (its steal time). ``Lag`` (in benchfigures) sums them
up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

import attrs
import trio

from tests.benchfigures import Wake, Window

PROBE_INTERVAL = 0.01
BYSTANDER = Path(__file__).with_name("benchbystander.py")
STAT = Path("/proc/stat")


@attrs.define
class LagProbe:
    wakes: list[Wake] = attrs.Factory(list)

    async def run(self) -> None:
        while True:
            before = current_cpu()  # first: the probe's own calls are not its lateness
            due = time.perf_counter() + PROBE_INTERVAL  # clock-ok: matched with the bystanders'
            await trio.sleep(PROBE_INTERVAL)
            woke, after = max(due, time.perf_counter()), current_cpu()  # clock-ok
            self.wakes.append(Wake(due, woke, tuple({before, after} - {None})))


def current_cpu() -> int | None:
    """The CPU this thread runs on (glibc's sched_getcpu), or None where that is unknown."""
    return _SCHED_GETCPU() if _SCHED_GETCPU else None


def _sched_getcpu() -> Callable[[], int] | None:
    """Through PyDLL, which keeps the GIL: a CDLL call lets it go, and the loop could then
    wait up to a switch interval for a worker to give it back."""
    with contextlib.suppress(OSError, AttributeError, TypeError):  # no such call; Windows: no CDLL(None)
        return ctypes.PyDLL(None).sched_getcpu
    return None


_SCHED_GETCPU = _sched_getcpu()


@contextmanager
def bystanders() -> Iterator[dict[int, list[Window]]]:
    """Run a bystander on each CPU we may use; once the block ends, each CPU's late
    windows."""
    with ExitStack() as stack:
        if not hasattr(os, "sched_getaffinity"):  # macOS: one, on whichever CPU
            yield {0: stack.enter_context(bystander(None))}
            return
        yield {cpu: stack.enter_context(bystander(cpu)) for cpu in sorted(os.sched_getaffinity(0))}


@contextmanager
def bystander(cpu: int | None) -> Iterator[list[Window]]:
    """Run a bystander on ``cpu`` meanwhile; the list holds its late windows once the
    block ends. It writes to a file, not a pipe nobody reads meanwhile, which could fill
    and stop it."""
    found: list[Window] = []
    command = [sys.executable, str(BYSTANDER), *([] if cpu is None else [str(cpu)])]
    with tempfile.TemporaryFile("w+") as out, subprocess.Popen(command, stdout=out) as proc:
        _await_ready(out, proc)
        try:
            yield found
        finally:
            proc.terminate()
            proc.wait()
            out.seek(0)
            lines = [line.split() for line in out.read().splitlines()[1:]]
            found += [(float(a), float(b)) for a, b in (f for f in lines if len(f) == 2)]  # a line cut by the kill: skipped


def _await_ready(out: IO[str], proc: subprocess.Popen) -> None:
    for _ in range(500):
        out.seek(0)
        if out.readline() == "ready\n":
            return
        if proc.poll() is not None:
            break
        time.sleep(0.01)  # clock-ok: before the operation's clock starts
    raise RuntimeError("the lag bystander did not start")


def stolen() -> float:
    """The CPU time the host has taken from this machine's CPUs while they had work to
    run (the kernel's steal time, in /proc/stat), in seconds; 0.0 where none is kept."""
    try:
        total = STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    return int(total[8]) / os.sysconf("SC_CLK_TCK") if total[0] == "cpu" and len(total) > 8 else 0.0
