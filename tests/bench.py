"""`make bench`: how fast the fabric moves data, on this machine, with the real clock.

One in-process fabric (production + DR, the WAN made wide and near so it is never the
bottleneck) runs each operation ``--runs`` times (5): full backups, aux copy on one
stream and on two, a restore at DR, and verification. For each it prints the median
MiB/s with the min and max, and the event loop's lag meanwhile (tests/benchlag.py: a
probe sleeps 10 ms at a time and measures how late it wakes): the worst, the 99th
percentile, the most of one wake's lateness the machine explains (``machine``: a
bystander process that only sleeps runs on each CPU, and the one on the loop's CPU, or
every one, woke late meanwhile: the host or the kernel stopped that CPU), the worst of
the loop's own (``own``: the rest), and the CPU time the host took from the machine's
CPUs, summed (``stolen``: the kernel's steal time). The loop must never stall, however busy the threads are.
The reference, measured in the same run on the same filesystem:
``dd bs=4M`` copying a cartridge image to a new file (and syncing it), against which
the aux copy rows give their ratio; and the safe copy floor (tests/benchfloor.py): aux
copy's bytes moved with only the work its safety properties need (seal, open, write and
sync each chunk and its checkpoint, read it back and hash it), on one stream and on
two, pipelined (three threads a stream) and serial (one). The pipelined floor is the
most any copy with our encryption, checkpoints and read-back could reach here: aux copy
gives its ratio to it (``vs floor``), and a line under the table says how two streams
scale against one, for each.

Then the peer, Bacula 9.6 (tests/benchbacula.py; `.ci/bacula-deps` installs it): a
private director, storage and file daemon under the same temporary directory back up
one file of the size of our two fulls, copy it with a Copy job (PoolUncopiedJobs, to file
volumes in another directory) and restore the copy, ``--runs`` times each. Its rows come
twice: by wall clock from queueing the job to its end, and ``, running`` (without the
director's queue pause of up to 2 s per job). Our backup, aux copy and restore rows give
their ratio to each: ``vs Bacula`` and ``vs running``. Without Bacula (or with
``--no-bacula``) a line under the table says it skipped them. ``--json FILE`` writes the
figures.

    .venv/bin/python -m tests.bench [--size 64MiB] [--runs 5] [--json bench.json] [--no-bacula]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import attrs
import structlog
import trio

from tests.benchbacula import BACKUP, COPY, RESTORE, RUNNING, BaculaFailed, BaculaMissing, bacula_figures
from tests.benchfigures import Figure, Lag, Row
from tests.benchfloor import Source, floor_name, safe_copy_floor
from tests.benchlag import LagProbe, bystanders, stolen
from tests.helpers import collect, fabric_toml, open_fabric, site_toml
from vtlfabric.catalog import queries
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.restore import RestoreRequest, run_restore
from vtlfabric.jobs.verify import run_verify
from vtlfabric.service import allocator
from vtlfabric.units import format_bytes, parse_size

OBJECTS = 16  # per client; two clients
OUR_BACKUP = "backup (2 fulls)"
AUX = {1: "auxcopy, 1 stream", 2: "auxcopy, 2 streams"}
FLOOR = {n: floor_name(n) for n in AUX}
SERIAL_FLOOR = {n: floor_name(n, serial=True) for n in AUX}
# Our rows that have a peer among Bacula's, and which (the floor's too: what any copy
# with our safety properties could reach here, against theirs).
VS_BACULA = {
    OUR_BACKUP: BACKUP,
    **{name: COPY for name in [*AUX.values(), *FLOOR.values(), *SERIAL_FLOOR.values()]},
    "restore at DR": RESTORE,
}
VS_FLOOR = {AUX[n]: FLOOR[n] for n in AUX}

LINK = """
[[link]]
name = "wan"
sites = ["prod", "dr"]
bandwidth = "20GB"
latency = "0.2ms"
window = "32MiB"
"""


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
    path.write_text(fabric_toml(streams=1, link=LINK, chunk="4MiB"))
    return path


async def measure(name: str, op: Callable[[], Awaitable[int]]) -> Figure:
    probe = LagProbe()
    with bystanders() as machine:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe.run)
            started, stolen_before = trio.current_time(), stolen()
            nbytes = await op()
            seconds, host_took = trio.current_time() - started, stolen() - stolen_before
            nursery.cancel_scope.cancel()
    return Figure(name, nbytes, seconds, Lag.of(probe.wakes, machine, host_took))


async def _backups(fabric: Fabric) -> int:
    """Both at once, each on a drive and cartridge of its own: so two copy streams can then
    read them at once (a cartridge is in one drive at a time)."""
    done: list = []
    async with trio.open_nursery() as nursery:
        for client in ("IBMA", "IBMB"):
            nursery.start_soon(lambda c: collect(done, run_backup(fabric, c, "ALLUSR", "full")), client)
    return sum(d.bytes for d in done)


async def _auxcopy(fabric: Fabric, streams: int) -> int:
    result = await run_auxcopy(fabric, "P/dr", streams=streams)
    return result.bytes


async def _recopy_newest(fabric: Fabric, n: int) -> None:
    """The last run's jobs are to be copied again: the next aux copy moves the same bytes."""
    for job in (await fabric.catalog.call(queries.list_jobs))[-n:]:
        await fabric.catalog.call(queries.manual_selection, job.id, "P/dr", "recopy", "bench", fabric.now())


async def _restore(fabric: Fabric, dest: Path) -> int:
    done = [await run_restore(fabric, RestoreRequest(c, dest / c, copy_id="P/dr", site="dr")) for c in ("IBMA", "IBMB")]
    return sum(d.bytes for d in done)


async def _verify(fabric: Fabric) -> int:
    result = await run_verify(fabric)
    return sum(c.bytes for c in result.copies)


async def bench(root: Path, size: int, runs: int = 5) -> list[Row]:
    path = write_bench_fabric(root, size)
    figures: dict[str, list[Figure]] = {}

    def keep(figure: Figure) -> None:
        figures.setdefault(figure.name, []).append(figure)

    async with open_fabric(path) as fabric:
        gc.freeze()  # as the daemon does once it is ready
        for n in range(runs):
            keep(await measure(OUR_BACKUP, lambda: _backups(fabric)))
            keep(await measure(AUX[1], lambda: _auxcopy(fabric, 1)))
            await _recopy_newest(fabric, 2)
            keep(await measure(AUX[2], lambda: _auxcopy(fabric, 2)))
            copied = figures[AUX[2]][-1].nbytes
            dest = root / f"restore-{n}"
            keep(await measure("restore at DR", lambda: _restore(fabric, dest)))  # noqa: B023 (awaited at once)
            keep(await measure("verify, both copies", lambda: _verify(fabric)))
            keep(await trio.to_thread.run_sync(dd_copy, _largest_image(root), root / f"dd-{n}"))
            for streams in _floor_streams(root, copied):
                for serial in (False, True):
                    keep(await trio.to_thread.run_sync(partial(safe_copy_floor, streams, root, serial=serial)))
    return [Row(name, tuple(found)) for name, found in figures.items()]


def _largest_image(root: Path) -> Path:
    return max((root / "state").rglob("*.aws"), key=lambda p: p.stat().st_size)


def _floor_streams(root: Path, nbytes: int) -> list[list[list[Source]]]:
    """The floor moves aux copy's bytes: half from each of the two largest images, on
    one stream and then on two."""
    images = sorted((root / "state").rglob("*.aws"), key=lambda p: p.stat().st_size)[-2:]
    halves = [(image, min(nbytes // 2, image.stat().st_size)) for image in images]
    return [[halves], [[half] for half in halves]]


def dd_copy(image: Path, dest: Path) -> Figure:
    """The machine's own figure: dd copies a cartridge image to a new file and syncs it."""
    began = time.perf_counter()  # clock-ok: a benchmark measures wall time
    subprocess.run(["dd", f"if={image}", f"of={dest}", "bs=4M", "conv=fsync"], check=True, capture_output=True)
    seconds = time.perf_counter() - began  # clock-ok
    dest.unlink()
    return Figure(REFERENCE, image.stat().st_size, seconds)


REFERENCE = "dd bs=4M (reference)"


def bacula_rows(root: Path, nbytes: int, runs: int, path: str | None = None) -> tuple[list[Row], str | None]:
    """Bacula's rows for the same bytes on the same filesystem, or none and why (not installed)."""
    try:
        figures = bacula_figures(root / "bacula", nbytes, runs, path=path)
    except BaculaMissing as e:
        return [], f"Bacula: skipped ({e})"
    return [Row(name, tuple(found)) for name, found in figures.items()], None


def ratios(row: Row, medians: dict[str, float]) -> dict[str, float]:
    """Our median over dd's (copy rows), over the safe copy floor's (aux copy rows) and
    over Bacula's peer row, by wall clock and running."""
    out = {}
    if VS_BACULA.get(row.name) == COPY and medians.get(REFERENCE):
        out["vs_dd"] = row.median / medians[REFERENCE]
    if medians.get(VS_FLOOR.get(row.name, "")):
        out["vs_floor"] = row.median / medians[VS_FLOOR[row.name]]
    peer = VS_BACULA.get(row.name)
    if peer and medians.get(peer):
        out["vs_bacula"] = row.median / medians[peer]
    if peer and medians.get(RUNNING[peer]):
        out["vs_bacula_running"] = row.median / medians[RUNNING[peer]]
    return out


def on_our_loop(row: Row) -> bool:
    """dd, the floor and Bacula run outside our event loop: no lag of theirs to show."""
    return row.name != REFERENCE and not row.name.startswith(("safe copy floor", "bacula"))


def table(rows: list[Row], note: str | None = None) -> str:
    medians = {r.name: r.median for r in rows}
    lines = [
        f"{'operation':<34} {'bytes':>10} {'MiB/s':>8} {'min':>7} {'max':>7} {'vs dd':>6} {'vs floor':>8} {'vs Bacula':>9} "
        f"{'vs running':>10} {'loop lag max':>13}{'p99':>9}{'machine':>9}{'own':>9}{'stolen':>9}"
    ]
    for r in rows:
        found = ratios(r, medians)
        cells = [f"{found[k]:.2f}x" if k in found else "" for k in ("vs_dd", "vs_floor", "vs_bacula", "vs_bacula_running")]
        lag = lag_cells(r.lag) if on_our_loop(r) else ""
        lines.append(
            f"{r.name:<34} {format_bytes(r.nbytes):>10} {r.median:>8.1f} {min(r.rates):>7.1f} {max(r.rates):>7.1f} "
            f"{cells[0]:>6} {cells[1]:>8} {cells[2]:>9} {cells[3]:>10} {lag}".rstrip()
        )
    return "\n".join([*lines, *scaling(medians), *([note] if note else [])])


def lag_cells(lag: Lag) -> str:
    worst, *rest = (ms * 1000 for ms in attrs.astuple(lag))
    return f"{worst:>10.1f} ms" + "".join(f"{ms:>6.1f} ms" for ms in rest)


def scaling(medians: dict[str, float]) -> list[str]:
    """Two streams against one: for aux copy, and for the floor (what the machine allows)."""
    named = (("aux copy", AUX), ("the floor", FLOOR), ("the serial floor", SERIAL_FLOOR))
    pairs = [(name, pair) for name, pair in named if all(map(medians.get, pair.values()))]
    cells = [f"{name} {medians[pair[2]] / medians[pair[1]]:.2f}x" for name, pair in pairs]
    return [f"two streams against one: {', '.join(cells)}"] if cells else []


def as_json(rows: list[Row], note: str | None) -> list[dict]:
    medians = {r.name: r.median for r in rows}
    out = [
        {"name": r.name, "median_mib_per_s": r.median, **ratios(r, medians), "runs": [attrs.asdict(f) for f in r.runs]}
        for r in rows
    ]
    return out + ([{"name": "bacula", "note": note}] if note else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64MiB", help="bytes of the two full backups together (default 64MiB)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each operation (default 5)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--dir", type=Path, help="the filesystem to run on (default: the system's temp dir; /dev/shm: tmpfs)")
    parser.add_argument("--no-bacula", action="store_true", help="skip the Bacula rows")
    parser.add_argument("--bacula-path", help="where to look for Bacula's programs (default: $PATH, /usr/sbin, /sbin)")
    args = parser.parse_args(argv)
    try:
        size = parse_size(args.size)
    except ValueError as e:
        parser.error(f"--size: {e}")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only: the bench prints a table
    allocator.tune()  # as `vtlfabric run` does
    failed = False
    with tempfile.TemporaryDirectory(prefix="vtlfabric-bench-", dir=args.dir) as tmp:
        rows = trio.run(bench, Path(tmp), size, args.runs)
        note: str | None = "Bacula: skipped (--no-bacula)"
        if not args.no_bacula:
            nbytes = next(r.nbytes for r in rows if r.name == OUR_BACKUP)
            try:
                peer, note = bacula_rows(Path(tmp), nbytes, args.runs, args.bacula_path)
                rows += peer
            except BaculaFailed as e:
                note, failed = f"Bacula: failed ({e})", True
    print(table(rows, note))
    if args.json:
        args.json.write_text(json.dumps(as_json(rows, note), indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
