"""`make bench`: how fast the fabric moves data, on this machine, with the real clock.

One in-process fabric (production + DR, the WAN made wide and near so it is never the
bottleneck) runs each operation once: full backups, aux copy on one stream and on two,
a restore at DR, and verification. For each it prints bytes, seconds and MiB/s, and the
event loop's worst lag meanwhile (a probe sleeps 10 ms at a time and measures how late
it wakes): the loop must never stall, however busy the threads are. ``--json FILE``
writes the figures for comparing runs.

    .venv/bin/python -m tests.bench [--size 64MiB] [--json bench.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import structlog
import trio

from tests.helpers import fabric_toml, open_fabric, site_toml
from vtlfabric.catalog import queries
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.restore import RestoreRequest, run_restore
from vtlfabric.jobs.verify import run_verify
from vtlfabric.units import format_bytes, parse_size

PROBE_INTERVAL = 0.01
OBJECTS = 16  # per client; two clients

LINK = """
[[link]]
name = "wan"
sites = ["prod", "dr"]
bandwidth = "20GB"
latency = "0.2ms"
window = "32MiB"
"""


@attrs.frozen
class Figure:
    name: str
    nbytes: int
    seconds: float
    lag_max: float
    lag_p99: float

    @property
    def rate(self) -> float:
        return self.nbytes / self.seconds / 2**20 if self.seconds else 0.0


def clients_toml(size: int) -> str:
    """Two clients whose fulls together are about ``size`` bytes."""
    mean = size // (2 * OBJECTS)
    blocks = []
    for name, seed in (("IBMA", 11), ("IBMB", 22)):
        blocks.append(
            textwrap.dedent(f"""
            [[client]]
            name = "{name}"
            seed = {seed}
            change_every = "1h"
            change_rate = 0.3

              [[client.subclient]]
              name = "ALLUSR"
              content = ["LIB:BENCH"]
              objects = {OBJECTS}
              min_size = {mean // 2}
              max_size = {mean * 3 // 2}
            """)
        )
    return "".join(blocks)


def write_bench_fabric(root: Path, size: int) -> Path:
    capacity = f"{max(64, 4 * size // 2**20)}MiB"
    site = {"drives": 2, "capacity": capacity, "block_size": "60KiB", "robot_time": "0s", "cartridges": 4}
    (root / "prod.toml").write_text(site_toml("prod", "prodma", "PVTL", "PR", clients=clients_toml(size), **site))
    (root / "dr.toml").write_text(site_toml("dr", "drma", "DVTL", "DR", **site))
    path = root / "fabric.toml"
    path.write_text(fabric_toml(streams=1, link=LINK, chunk="1MiB"))
    return path


@attrs.define
class LagProbe:
    """How late the event loop wakes a task that asked to sleep PROBE_INTERVAL."""

    lags: list[float] = attrs.Factory(list)

    async def run(self) -> None:
        while True:
            asked = trio.current_time()
            await trio.sleep(PROBE_INTERVAL)
            self.lags.append(max(0.0, trio.current_time() - asked - PROBE_INTERVAL))


async def measure(name: str, op: Callable[[], Awaitable[int]]) -> Figure:
    probe = LagProbe()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe.run)
        started = trio.current_time()
        nbytes = await op()
        seconds = trio.current_time() - started
        nursery.cancel_scope.cancel()
    lags = sorted(probe.lags) or [0.0]
    p99 = statistics.quantiles(lags, n=100, method="inclusive")[98] if len(lags) >= 2 else lags[0]
    return Figure(name, nbytes, seconds, lags[-1], p99)


async def _backups(fabric: Fabric) -> int:
    done = [await run_backup(fabric, client, "ALLUSR", "full") for client in ("IBMA", "IBMB")]
    return sum(d.bytes for d in done)


async def _auxcopy(fabric: Fabric, streams: int) -> int:
    result = await run_auxcopy(fabric, "P/dr", streams=streams)
    return result.bytes


async def _recopy_all(fabric: Fabric) -> None:
    for job in await fabric.catalog.call(queries.list_jobs):
        await fabric.catalog.call(queries.manual_selection, job.id, "P/dr", "recopy", "bench", fabric.now())


async def _restore(fabric: Fabric, dest: Path) -> int:
    done = [await run_restore(fabric, RestoreRequest(c, dest / c, copy_id="P/dr", site="dr")) for c in ("IBMA", "IBMB")]
    return sum(d.bytes for d in done)


async def _verify(fabric: Fabric) -> int:
    result = await run_verify(fabric)
    return sum(c.bytes for c in result.copies)


async def bench(root: Path, size: int) -> list[Figure]:
    path = write_bench_fabric(root, size)
    async with open_fabric(path) as fabric:
        figures = [await measure("backup (2 fulls)", lambda: _backups(fabric))]
        figures.append(await measure("auxcopy, 1 stream", lambda: _auxcopy(fabric, 1)))
        await _recopy_all(fabric)
        figures.append(await measure("auxcopy, 2 streams", lambda: _auxcopy(fabric, 2)))
        figures.append(await measure("restore at DR", lambda: _restore(fabric, root / "restore")))
        figures.append(await measure("verify, both copies", lambda: _verify(fabric)))
    return figures


def table(figures: list[Figure]) -> str:
    lines = [f"{'operation':<22} {'bytes':>10} {'seconds':>8} {'MiB/s':>8} {'loop lag max':>13} {'p99':>8}"]
    for f in figures:
        lines.append(
            f"{f.name:<22} {format_bytes(f.nbytes):>10} {f.seconds:>8.2f} {f.rate:>8.1f} "
            f"{f.lag_max * 1000:>10.1f} ms {f.lag_p99 * 1000:>5.1f} ms"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64MiB", help="bytes of the two full backups together (default 64MiB)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        size = parse_size(args.size)
    except ValueError as e:
        parser.error(f"--size: {e}")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only: the bench prints a table
    with tempfile.TemporaryDirectory(prefix="vtlfabric-bench-") as tmp:
        figures = trio.run(bench, Path(tmp), size)
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps([{**attrs.asdict(f), "mib_per_s": f.rate} for f in figures], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
