"""DR drills. A *check* drill proves the DR site can restore every client alone: for
each client, at the DR site only, from DR media and the DR MediaAgent's disk-library
index, it restores the latest point in time the DR copy holds into a scratch area and
verifies every object. It writes nothing but its own report and catalog row.

RPO per client: the age, at drill start, of its newest valid backup the DR copy does
not hold yet (0 when it holds them all). RTO per client: the time to restore and
verify, on the fabric's clock.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from vtlfabric.catalog import queries
from vtlfabric.catalog.records import JobRecord
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.restore import RestoreError, RestoreRequest, run_restore
from vtlfabric.sim.clock import iso
from vtlfabric.site.index import IndexFormatError
from vtlfabric.tape.image import TapeFormatError
from vtlfabric.tape.library import LibraryOffline

log = structlog.get_logger()
# What a restore at DR can fail with; each is a failed client in the report, never a crash.
RESTORE_FAILURES = (RestoreError, IndexFormatError, TapeFormatError, LibraryOffline, OSError)


@attrs.frozen
class ClientResult:
    client: str
    copy: str
    site: str
    passed: bool
    rpo: float  # seconds
    rto: float  # seconds
    jobs: tuple[int, ...] = ()
    objects: int = 0
    bytes: int = 0
    failure: str = ""


class DrillRunning(Exception):
    pass


async def run_drill(fabric: Fabric, mode: str, trigger: str) -> dict[str, Any]:
    """Run one drill; a second one while it runs is refused (DrillRunning)."""
    if fabric.drill_lock.locked():
        raise DrillRunning("a drill is already running")
    async with fabric.drill_lock:
        started = fabric.now()
        drill_id = await fabric.catalog.call(queries.start_drill, mode, trigger, started)
        root = fabric.config.daemon.state_dir / "drills"
        log.info("drill.started", drill=drill_id, mode=mode, trigger=trigger)
        jobs = await fabric.catalog.call(queries.list_jobs)
        results = []
        for copy in fabric.config.drill_copies():
            policy = next(p for p in fabric.config.policies if p.name == copy.policy)
            for client in policy.clients:
                results.append(await _check_client(fabric, copy, client, jobs, started, root / f"{drill_id}.restore"))
        report = _report(drill_id, mode, trigger, started, fabric.now(), results)
        path = await trio.to_thread.run_sync(_write_report, root, drill_id, report)
        status = "passed" if report["passed"] else "failed"
        await fabric.catalog.call(queries.finish_drill, drill_id, status, report["summary"], str(path), fabric.now())
        log.info(f"drill.{status}", drill=drill_id, mode=mode, clients=len(results),
                 failed=[r.client for r in results if not r.passed], summary=report["summary"], report=str(path))
        return report


def rpo(jobs: list[JobRecord], client: str, copy_id: str, at: float) -> float:
    missing = [j for j in jobs if j.client == client and j.valid and j.started <= at and j.copies.get(copy_id) != queries.AVAILABLE]
    return round(at - max(j.started for j in missing), 3) if missing else 0.0


async def _check_client(fabric: Fabric, copy: CopySpec, client: str, jobs: list[JobRecord], started: float, scratch: Path) -> ClientResult:
    point = rpo(jobs, client, copy.id, started)
    dest = scratch / client
    begin = fabric.now()
    try:
        done = await run_restore(fabric, RestoreRequest(client, dest, copy_id=copy.id, site=copy.site))
    except RESTORE_FAILURES as e:
        log.warning("drill.client_failed", client=client, copy=copy.id, site=copy.site, error=str(e))
        result = ClientResult(client, copy.id, copy.site, False, point, round(fabric.now() - begin, 3), failure=str(e) or type(e).__name__)
    else:
        result = ClientResult(client, copy.id, copy.site, True, point, round(fabric.now() - begin, 3),
                              tuple(done["jobs"]), done["objects"], done["bytes"])
    await trio.to_thread.run_sync(lambda: shutil.rmtree(dest, ignore_errors=True))  # verified: the copy is not kept
    return result


def _report(drill_id: int, mode: str, trigger: str, started: float, ended: float, results: list[ClientResult]) -> dict[str, Any]:
    passed = bool(results) and all(r.passed for r in results)
    failed = [r.client for r in results if not r.passed]
    summary = (f"drill {drill_id} ({mode}) {'passed' if passed else 'FAILED'}: {len(results) - len(failed)}/{len(results)} clients "
               f"restored and verified; worst RPO {max((r.rpo for r in results), default=0):.0f}s, "
               f"worst RTO {max((r.rto for r in results), default=0):.1f}s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if not results:
        summary = f"drill {drill_id} ({mode}) FAILED: no DR copy to drill"
    return {
        "id": drill_id, "mode": mode, "trigger": trigger, "started": iso(started), "ended": iso(ended), "passed": passed,
        "summary": summary, "objects_verified": sum(r.objects for r in results), "bytes_verified": sum(r.bytes for r in results),
        "clients": [attrs.asdict(r) for r in results],
    }


def _write_report(root: Path, drill_id: int, report: dict[str, Any]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(root / f"{drill_id}.restore", ignore_errors=True)
    path = root / f"{drill_id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)
    (root / f"{drill_id}.txt").write_text(render_text(report))
    return path


def render_text(report: dict[str, Any]) -> str:
    lines = [report["summary"], f"started {report['started']}, ended {report['ended']}, trigger {report['trigger']}", ""]
    lines.append(f"{'CLIENT':<12} {'COPY':<14} {'SITE':<8} {'RESULT':<7} {'RPO':>9} {'RTO':>8} {'OBJECTS':>8}  DETAIL")
    for c in report["clients"]:
        lines.append(f"{c['client']:<12} {c['copy']:<14} {c['site']:<8} {'pass' if c['passed'] else 'FAIL':<7} "
                     f"{c['rpo']:>8.0f}s {c['rto']:>7.1f}s {c['objects']:>8}  {c['failure'] or 'jobs ' + ','.join(map(str, c['jobs']))}")
    return "\n".join(lines) + "\n"
