"""Runs the config's schedules: backups and auto-copies, each on its own period."""

from __future__ import annotations

from typing import Any

import structlog
import trio

from vtlfabric.config import ScheduleSpec
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.aging import run_data_aging
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.service.operations import Operation, Operations

log = structlog.get_logger()


async def run_scheduler(fabric: Fabric, ops: Operations, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    async with trio.open_nursery() as nursery:
        origin = trio.current_time()
        for schedule in fabric.config.schedules:
            nursery.start_soon(_run_schedule, fabric, ops, schedule, origin)
        task_status.started()


async def _run_schedule(fabric: Fabric, ops: Operations, schedule: ScheduleSpec, origin: float) -> None:
    """Fire at origin + start, then every period. A run still going when the next is due
    is not stacked: that firing is skipped and logged."""
    last: dict[str, Operation] = {}
    due = origin + schedule.start
    while True:
        await trio.sleep_until(due)
        for key, starter in _firings(fabric, schedule):
            previous = last.get(key)
            if previous is not None and not previous.done.is_set():
                log.info("schedule.skipped", schedule=schedule.name, target=key, running=previous.id)
                continue
            try:
                last[key] = await starter(ops)
                log.info("schedule.fired", schedule=schedule.name, target=key, operation=last[key].id)
            except Exception as e:
                log.warning("schedule.failed", schedule=schedule.name, target=key, error=str(e))
        due += schedule.every


def _firings(fabric: Fabric, schedule: ScheduleSpec) -> list[tuple[str, Any]]:
    if schedule.action == "age":
        return [("aging", lambda ops: ops.start("aging", run_data_aging, fabric, schedule.targets))]
    if schedule.action == "auxcopy":
        return [(copy_id, _auxcopy_starter(fabric, copy_id)) for copy_id in schedule.targets]
    out = []
    for client in schedule.targets:
        for sub in fabric.workloads[client].client.subclients:
            out.append((f"{client}/{sub.name}", _backup_starter(fabric, client, sub.name, schedule.job_type)))
    return out


def _backup_starter(fabric: Fabric, client: str, subclient: str, job_type: str) -> Any:
    return lambda ops: ops.start("backup", run_backup, fabric, client, subclient, job_type, reports_id=True)


def _auxcopy_starter(fabric: Fabric, copy_id: str) -> Any:
    return lambda ops: ops.start("auxcopy", run_auxcopy, fabric, copy_id, None)
