"""DR drills. A *check* drill proves the DR site can restore every client alone: for
each client, at the DR site only, from DR media and the DR MediaAgent's disk-library
index, it restores the latest point in time the DR copy holds into a scratch area and
verifies every object. It writes nothing but its own report and catalog row.

A *failover* drill proves the DR site can take over and hand back: a planned
promotion of the DR copy (backups held off while it catches up, so nothing is lost and
no full is forced), one backup of every client to it, a restore and verify of that
backup at DR, then the fail-back (repair, a planned promotion of the old primary, which
copies the drill's backups home first, and a repair of the DR copy). It refuses to start
while the primary is inoperative: that is a disaster, not a drill.

RPO per client: the age, at drill start, of its newest valid backup the DR copy does
not hold yet (0 when it holds them all). RTO per client: the time to restore and
verify, on the fabric's clock.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import structlog

from vtlfabric import blocking, errors
from vtlfabric.catalog import queries
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import promotion
from vtlfabric.jobs.backup import BackupFailed, run_backup
from vtlfabric.jobs.drillreport import ClientResult, DrillReport, Step, write_report
from vtlfabric.jobs.restore import RESTORE_FAILURES, RestoreRequest, run_restore
from vtlfabric.sim.clock import iso

log = structlog.get_logger()
STEP_FAILURES = (promotion.PromotionRefused, promotion.NotPromotable)


class DrillRunning(errors.Refused):
    pass


@attrs.define
class Steps:
    """Runs a failover drill's steps and records each one; a failed step is recorded, not raised."""

    fabric: Fabric
    done: list[Step]
    copy: str
    who: str

    async def run(self, name: str, fn: Callable[[], Awaitable[Any]], describe: Callable[[Any], str] = str) -> Any:
        begin = self.fabric.now()
        try:
            result = await fn()
        except STEP_FAILURES as e:
            self.record(name, False, begin, str(e) or type(e).__name__)
            return None
        self.record(name, True, begin, describe(result))
        return result if result is not None else True

    def record(self, name: str, ok: bool, begin: float, detail: str) -> None:
        self.done.append(Step(self.copy, name, ok, round(self.fabric.now() - begin, 3), detail))
        log.info("drill.step", copy=self.copy, step=name, ok=ok, detail=detail)


async def run_drill(fabric: Fabric, mode: str, trigger: str) -> DrillReport:
    """Run one drill; a second one while it runs is refused (DrillRunning)."""
    if fabric.drill_lock.locked():
        raise DrillRunning("a drill is already running")
    async with fabric.drill_lock:
        started = fabric.now()
        drill_id = await fabric.catalog.call(queries.start_drill, mode, trigger, started)
        root = fabric.config.daemon.state_dir / "drills"
        log.info("drill.started", drill=drill_id, mode=mode, trigger=trigger)
        results: list[ClientResult] = []
        steps: list[Step] = []
        scratch = root / f"{drill_id}.restore"
        for spec in fabric.config.drill_copies():
            copy = fabric.copy(spec.id)
            if mode == "failover":
                results += await _failover(fabric, copy, started, scratch, Steps(fabric, steps, copy.id, f"drill {drill_id}"))
            else:
                results += [
                    await _check_client(fabric, copy, client, await rpo(fabric, client, copy.id, started), scratch)
                    for client in fabric.config.policy(copy.policy).clients
                ]
        report = DrillReport.of(
            drill_id, mode, trigger, iso(started), iso(fabric.now()), results, steps, clock_skew=dict(fabric.skews)
        )
        await blocking.run_sync(lambda: shutil.rmtree(scratch, ignore_errors=True))
        path = await blocking.run_sync(write_report, root, report)
        status = "passed" if report.passed else "failed"
        await fabric.catalog.call(queries.finish_drill, drill_id, status, report.summary, str(path), fabric.now())
        log.info(
            f"drill.{status}",
            drill=drill_id,
            mode=mode,
            clients=len(results),
            failed=[r.client for r in results if not r.passed],
            summary=report.summary,
            report=str(path),
        )
        return report


async def rpo(fabric: Fabric, client: str, copy_id: str, at: float) -> float:
    """How far back the copy's point in time for the client lies: since the newest of its
    valid jobs the copy does not hold (0: it holds every one). Measured by the clock of
    the copy's site, as a drill there measures it: a skewed clock misjudges it."""
    at += fabric.skews.get(fabric.copy(copy_id).site, 0.0)
    missing = await fabric.catalog.call(queries.newest_missing, client, copy_id, at)
    return round(at - missing, 3) if missing is not None else 0.0


async def _check_client(
    fabric: Fabric, copy: CopySpec, client: str, point: float, scratch: Path, job_id: int | None = None
) -> ClientResult:
    """Restore the latest point in time (or one job) from the copy at its site, and verify it."""
    dest = scratch / client
    begin = fabric.now()
    try:
        done = await run_restore(fabric, RestoreRequest(client, dest, job_id, copy_id=copy.id, site=copy.site))
    except RESTORE_FAILURES as e:
        log.warning("drill.client_failed", client=client, copy=copy.id, site=copy.site, error=str(e))
        result = ClientResult(
            client, copy.id, copy.site, False, point, round(fabric.now() - begin, 3), failure=str(e) or type(e).__name__
        )
    else:
        result = ClientResult(
            client, copy.id, copy.site, True, point, round(fabric.now() - begin, 3), done.jobs, done.objects, done.bytes
        )
    await blocking.run_sync(lambda: shutil.rmtree(dest, ignore_errors=True))  # verified: the copy is not kept
    return result


async def _failover(fabric: Fabric, copy: CopySpec, started: float, scratch: Path, steps: Steps) -> list[ClientResult]:
    clients = fabric.config.policy(copy.policy).clients
    points = {c: await rpo(fabric, c, copy.id, started) for c in clients}
    old = fabric.primary_of(copy.policy)
    refusal = _refusal(fabric, copy, old)
    if refusal:
        steps.record("start", False, fabric.now(), refusal)
        return [ClientResult(c, copy.id, copy.site, False, points[c], 0.0, failure=refusal) for c in clients]
    promoted = await steps.run(
        "promote", lambda: promotion.promote(fabric, copy, steps.who, accept_loss=True, planned=True), promotion.loss_text
    )
    if not promoted:
        return [ClientResult(c, copy.id, copy.site, False, points[c], 0.0, failure="the promotion failed") for c in clients]
    try:
        results = [await _backup_and_restore(fabric, copy, client, points[client], scratch) for client in clients]
    except Exception as e:  # whatever went wrong at DR, hand production its role back
        log.exception("drill.failover_error", copy=copy.id)
        steps.record("at DR", False, fabric.now(), f"{type(e).__name__}: {e}")
        results = [ClientResult(c, copy.id, copy.site, False, points[c], 0.0, failure=str(e)) for c in clients]
    await _fail_back(fabric, copy, fabric.copy(old.id), steps)
    return results


def _refusal(fabric: Fabric, copy: CopySpec, old: CopySpec) -> str:
    if copy.id == old.id:
        return f"{copy.id} is the primary copy already: fail back before drilling it"
    if copy.rules.kind != "synchronous":
        return f"{copy.id} is {copy.rules.kind}: only a synchronous copy can take over"
    down = fabric.inoperative(old)
    if down:
        return f"the primary {old.id} is inoperative ({down}): that is a disaster, not a drill; promote with ctl promote"
    down = fabric.inoperative(copy)
    return f"{copy.id} is inoperative: {down}" if down else ""


async def _backup_and_restore(fabric: Fabric, copy: CopySpec, client: str, point: float, scratch: Path) -> ClientResult:
    """One backup of the client to the promoted copy, then restore and verify it at that site."""
    try:
        backup = await run_backup(fabric, client)
    except BackupFailed as e:
        log.warning("drill.client_failed", client=client, copy=copy.id, site=copy.site, error=str(e))
        return ClientResult(client, copy.id, copy.site, False, point, 0.0, failure=f"backup at {copy.site}: {e}")
    return await _check_client(fabric, copy, client, point, scratch, backup.job_id)


async def _fail_back(fabric: Fabric, copy: CopySpec, old: CopySpec, steps: Steps) -> None:
    """Hand the primary role back, losing nothing: the drill's backups are copied home first."""
    if not await steps.run("repair", lambda: promotion.repair(fabric, old, steps.who), lambda was: f"{old.id} usable again"):
        return
    back = await steps.run(
        "fail back", lambda: promotion.promote(fabric, old, steps.who, accept_loss=True, planned=True), promotion.loss_text
    )
    if back:
        await steps.run(
            "repair", lambda: promotion.repair(fabric, fabric.copy(copy.id), steps.who), lambda was: f"{copy.id} usable again"
        )
    else:
        log.error("drill.left_failed_over", copy=copy.id, old_primary=old.id, hint="fail back with ctl promote --planned")
