"""`make bench`, the big-catalog rows: a site with years of jobs (by default 1,000,000:
20 clients hourly for about 6 years, on the policy's 3 copies), filled with SQL as
tests/test_big_catalog.py fills it (all copied but the newest few), then each question the daemon asks of it, timed:
a copy's first registration, then one copy's to-be-copied list, every copy's status, a page of ctl jobs, the metrics'
counts. Each row is the median of 5 runs, with min and max.

    .venv/bin/python -m tests.benchcatalog [--jobs 1000000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import structlog
import trio

from tests.helpers import EPOCH, VAULT_LIBRARY, open_fabric, write_fabric
from tests.test_big_catalog import DR, VAULT_COPY, fill
from vtlfabric.catalog import queries
from vtlfabric.jobs.auxcopy import candidates, register_selected
from vtlfabric.jobs.copystatus import copy_statuses
from vtlfabric.jobs.damage import heals
from vtlfabric.jobs.selection import due_states

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
        began = time.perf_counter()  # clock-ok
        await register_selected(fabric, dr)
        rows["a copy's first registration (once)"] = {"median": time.perf_counter() - began}  # clock-ok

        async def to_copy() -> None:
            await candidates(fabric, dr)
            await fabric.catalog.call(queries.due_jobs, dr.id, due_states(heals(dr)), fabric.source_of(dr).id)

        for name, op in (
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchcatalog", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    with tempfile.TemporaryDirectory(prefix="vtlfabric-benchcatalog-") as tmp:
        rows = trio.run(bench, Path(tmp), args.jobs)
    print(f"{'at ' + format(args.jobs, ',') + ' jobs':<36} {'median s':>9} {'min':>7} {'max':>7}")
    for name, r in rows.items():
        print(f"{name:<36} {r['median']:>9.3f} {r.get('min', r['median']):>7.3f} {r.get('max', r['median']):>7.3f}")
    if args.json:
        args.json.write_text(json.dumps({"jobs": args.jobs, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
