"""How late the event loop wakes during a bench operation, and how much of that the
machine itself caused.

``LagProbe`` is a task that sleeps PROBE_INTERVAL at a time and notes each wake's
window (when it was due, when it woke). ``bystander()`` runs tests/benchbystander.py
beside the operation: a process that does nothing but sleep, so when it wakes late
too, the host or the kernel stalled every process, not our loop. ``Lag`` (in
benchfigures) sums them up.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import attrs
import trio

from tests.benchfigures import Window

PROBE_INTERVAL = 0.01
BYSTANDER = Path(__file__).with_name("benchbystander.py")


@attrs.define
class LagProbe:
    windows: list[Window] = attrs.Factory(list)

    async def run(self) -> None:
        while True:
            due = time.perf_counter() + PROBE_INTERVAL  # clock-ok: matched with the bystander's
            await trio.sleep(PROBE_INTERVAL)
            self.windows.append((due, max(due, time.perf_counter())))  # clock-ok


@contextmanager
def bystander() -> Iterator[list[Window]]:
    """Run the bystander meanwhile; the list holds its late windows once the block ends.
    It writes to a file, not a pipe nobody reads meanwhile, which could fill and stop it."""
    found: list[Window] = []
    with tempfile.TemporaryFile("w+") as out, subprocess.Popen([sys.executable, str(BYSTANDER)], stdout=out) as proc:
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
