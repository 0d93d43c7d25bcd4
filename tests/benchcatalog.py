"""`make bench`, the big-catalog rows: a site with years of jobs (by default 1,000,000:
three subclients' hourly jobs, on the policy's 3 copies), filled with SQL as
tests/test_big_catalog.py fills it (all copied but the newest few), once. In this
process: a copy's first registration (each run takes the last one back, so each is a
first), one copy's to-be-copied list, every copy's status, a page of ctl jobs, the job
counts. Then the real daemon on that state dir, driven through its CLI (each call a new
process, its start included) and its metrics endpoint: ctl status, ctl copies, ctl
jobs, one scrape, and the daemon's peak RSS (VmHWM). Each timed row but the fill is the
median of 5 runs, with min and max.

    .venv/bin/python -m tests.benchcatalog [--jobs 1000000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import structlog
import trio

from tests.daemon import CLI
from tests.helpers import EPOCH, VAULT_LIBRARY, open_fabric, write_fabric
from tests.test_big_catalog import DR, VAULT_COPY, fill
from vtlfabric.catalog import queries
from vtlfabric.config import CopySpec
from vtlfabric.jobs.auxcopy import candidates, register_selected, registration_key
from vtlfabric.jobs.copystatus import copy_statuses
from vtlfabric.jobs.damage import heals
from vtlfabric.jobs.selection import due_states
from vtlfabric.vocab import CopyState

RUNS = 5
BACKLOG = 60  # jobs not yet on the DR copy: a few hours of 20 clients


async def bench(root: Path, n: int) -> dict[str, dict[str, float]]:
    path = write_fabric(root / "f")
    (path.parent / "dr.toml").write_text((path.parent / "dr.toml").read_text() + VAULT_LIBRARY)
    path.write_text(path.read_text() + VAULT_COPY)
    async with open_fabric(path) as fabric:
        began = time.perf_counter()  # clock-ok: a benchmark measures wall time
        await fabric.catalog.call(fill, n, 1, EPOCH, BACKLOG)
        rows = {"fill the catalog (once)": {"median": time.perf_counter() - began}}  # clock-ok
        dr = fabric.copy(DR)

        async def first_registration() -> None:
            await fabric.catalog.call(unregister, dr)  # brand-new again: each run is a first
            await register_selected(fabric, dr)

        async def to_copy() -> None:
            await candidates(fabric, dr)
            await fabric.catalog.call(queries.due_jobs, dr.id, due_states(heals(dr)), fabric.source_of(dr).id)

        for name, op in (
            ("a copy's first registration", first_registration),
            ("one copy's to-be-copied list", to_copy),
            ("ctl status / copies (every copy)", lambda: copy_statuses(fabric)),
            ("  of which: jobs by state, per copy", lambda: fabric.catalog.call(queries.state_counts)),
            ("ctl jobs, one page of 1000", lambda: fabric.catalog.call(queries.page_jobs)),
            ("job counts (status, metrics)", lambda: fabric.catalog.call(queries.job_counts)),
        ):
            times = []
            for _ in range(RUNS):
                began = time.perf_counter()  # clock-ok
                await op()
                times.append(time.perf_counter() - began)  # clock-ok
            rows[name] = {"median": statistics.median(times), "min": min(times), "max": max(times)}
    return rows


def unregister(conn: sqlite3.Connection, copy: CopySpec) -> None:
    """Take back what registering the copy added (its rows *to be copied*, which the fill
    never makes, and its mark), so the next registration is a first one again."""
    conn.execute("DELETE FROM job_copies WHERE copy_id = ? AND state = ?", (copy.id, CopyState.TO_BE_COPIED))
    conn.execute("DELETE FROM meta WHERE key = ?", (registration_key(copy),))


def timed(fn: Callable[[], object]) -> dict[str, float]:
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()  # clock-ok: a benchmark measures wall time
        fn()
        times.append(time.perf_counter() - began)  # clock-ok
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def daemon_rows(config: Path) -> dict[str, dict[str, float]]:
    """The real daemon on the filled state dir, asked as a user asks it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config.write_text(config.read_text().replace("[encryption]", f'[metrics]\nlisten = "127.0.0.1:{port}"\n\n[encryption]'))
    proc = subprocess.Popen([*CLI, "run", "--config", str(config), "--log-level", "error"])

    def ctl(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*CLI, "ctl", *args, "--config", str(config)], capture_output=True, timeout=600)

    try:
        while ctl("status").returncode != 0:
            if proc.poll() is not None:
                raise RuntimeError("the daemon did not start")
            time.sleep(0.5)  # clock-ok
        rows = {
            "daemon: ctl status --json": timed(lambda: ctl("status", "--json")),
            "daemon: ctl copies --json": timed(lambda: ctl("copies", "--json")),
            "daemon: ctl jobs --json (1000)": timed(lambda: ctl("jobs", "--json")),
            "daemon: one /metrics scrape": timed(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read()),
        }
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        rows["daemon: peak RSS, MiB (not seconds)"] = {"median": peak / 1024}
        return rows
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchcatalog", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    with tempfile.TemporaryDirectory(prefix="vtlfabric-benchcatalog-") as tmp:
        rows = trio.run(bench, Path(tmp), args.jobs)
        rows.update(daemon_rows(Path(tmp) / "f" / "fabric.toml"))
    print(f"{'at ' + format(args.jobs, ',') + ' jobs':<36} {'median s':>9} {'min':>7} {'max':>7}")
    for name, r in rows.items():
        print(f"{name:<36} {r['median']:>9.3f} {r.get('min', r['median']):>7.3f} {r.get('max', r['median']):>7.3f}")
    if args.json:
        args.json.write_text(json.dumps({"jobs": args.jobs, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
