"""Runs the config's schedules: backups, auto-copies and data aging, each on its own period.

Schedules run on one grid, anchored at the fabric's first start (kept in the catalog):
a daemon restarted after a crash or a stop goes on at the same times of day, and
skips what fell due while it was down. A config reload restarts the schedules from
the new config: an unchanged one keeps its times, a new or changed one starts at the
reload. What each schedule last started is kept across a reload, so a run still
going is not stacked."""

from __future__ import annotations

import math
from typing import Any

import attrs
import structlog
import trio

from vtlfabric.config import ScheduleSpec
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.aging import run_data_aging
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.running import Work
from vtlfabric.service.operations import Operations

log = structlog.get_logger()


@attrs.define
class Scheduler:
    fabric: Fabric
    ops: Operations
    _last: dict[str, Work] = attrs.field(factory=dict)  # by schedule name and target
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _origins: dict[ScheduleSpec, float] = attrs.field(factory=dict)
    anchor: float | None = None  # Trio's time at the grid's origin; None: this start

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        while True:
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as nursery:
                    now = trio.current_time()
                    start = now if self.anchor is None else self.anchor
                    self.anchor = None  # the grid's origin counts once: a reload's new schedules start at it
                    for schedule in self.fabric.config.schedules:
                        # A schedule a reload left unchanged keeps its times; a new or changed one starts now.
                        origin = self._origins.setdefault(schedule, start)
                        nursery.start_soon(self._run_schedule, schedule, origin, now)
                    task_status.started()
                    task_status = trio.TASK_STATUS_IGNORED
                    await trio.sleep_forever()

    def restart(self) -> None:
        """Start over from the fabric's (new) config."""
        self._scope.cancel()

    async def _run_schedule(self, schedule: ScheduleSpec, origin: float, restarted: float) -> None:
        """Fire at origin + start, then every period. A run still going when the next is due
        is not stacked: that firing is skipped and logged."""
        due = origin + schedule.start
        if due < restarted:  # restarted (the daemon, or by a reload): the next time on the same grid
            due += math.ceil((restarted - due) / schedule.every) * schedule.every
        while True:
            await trio.sleep_until(due)
            try:
                firings = _firings(self.fabric, schedule)
            except Exception as e:  # a schedule that no longer fits the fabric is logged, never fatal
                log.warning("schedule.failed", schedule=schedule.name, error=str(e))
                firings = []
            for key, starter in firings:
                await self._fire(schedule, key, starter)
            due += schedule.every

    async def _fire(self, schedule: ScheduleSpec, key: str, starter: Any) -> None:
        previous = self._last.get(f"{schedule.name}:{key}")
        if previous is not None and not previous.done.is_set():
            log.info("schedule.skipped", schedule=schedule.name, target=key, running=previous.id)
            return
        try:
            op = self._last[f"{schedule.name}:{key}"] = await starter(self.ops)
            log.info("schedule.fired", schedule=schedule.name, target=key, operation=op.id)
        except Exception as e:
            log.warning("schedule.failed", schedule=schedule.name, target=key, error=str(e))


def _firings(fabric: Fabric, schedule: ScheduleSpec) -> list[tuple[str, Any]]:
    if schedule.action == "age":
        return [("aging", lambda ops: ops.start("aging", run_data_aging, fabric, schedule.targets))]
    if schedule.action == "auxcopy":
        return [(copy_id, _auxcopy_starter(fabric, copy_id)) for copy_id in auxcopy_targets(fabric, schedule.targets)]
    out = []
    for client in schedule.targets:
        for sub in fabric.workloads[client].client.subclients:
            out.append((f"{client}/{sub.name}", _backup_starter(fabric, client, sub.name, schedule.job_type)))
    return out


def auxcopy_targets(fabric: Fabric, named: tuple[str, ...]) -> list[str]:
    """The copies an aux copy schedule runs now. A named copy that was promoted is the
    primary, with nothing to copy into it: the secondary copies fed from it (the old
    primary among them) run in its place, so a promotion leaves no copy unscheduled."""
    out: list[str] = []
    for copy_id in named:
        copy = fabric.copy(copy_id)
        if not copy.primary:
            out.append(copy_id)
            continue
        out += [c.id for c in fabric.copies() if c.policy == copy.policy and not c.primary and c.source == copy.name]
    return list(dict.fromkeys(out))


def _backup_starter(fabric: Fabric, client: str, subclient: str, job_type: str) -> Any:
    return lambda ops: ops.start("backup", run_backup, fabric, client, subclient, job_type, reports_id=True)


def _auxcopy_starter(fabric: Fabric, copy_id: str) -> Any:
    return lambda ops: ops.start("auxcopy", run_auxcopy, fabric, copy_id, None)
