"""What each control command does. Requests are checked here, at the edge:
a bad one gets one error naming the field, and nothing is started."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from vtlfabric import errors
from vtlfabric.catalog import queries
from vtlfabric.config import DRILL_MODES
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import faults, promotion, running
from vtlfabric.jobs.aging import run_data_aging
from vtlfabric.jobs.auxcopy import SUSPENDED, check_streams, copy_order, run_auxcopy
from vtlfabric.jobs.backup import BadRequest as BackupBadRequest
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.copystatus import copy_statuses
from vtlfabric.jobs.drill import run_drill
from vtlfabric.jobs.mediaview import media_view
from vtlfabric.jobs.restore import RestoreRequest, run_restore
from vtlfabric.jobs.running import Work
from vtlfabric.jobs.verify import run_verify
from vtlfabric.service.events import EventBus, EventFeed
from vtlfabric.service.operations import Operations, work_json
from vtlfabric.sim.clock import iso
from vtlfabric.tojson import jsonable
from vtlfabric.vocab import CopyState, JobStatus

log = structlog.get_logger()
KILL_AFTER = 0.2  # seconds from the reply to ctl fault daemon:self kill-9 to the kill
SELECT_ACTIONS = ("pick", "do-not-copy", "recopy", "mark-bad")
# A page of ctl jobs: enough for a screen or a script's batch, never the whole catalog
# of a site with years of jobs in one reply.
DEFAULT_PAGE, MAX_PAGE = 1000, 10_000


BadRequest = errors.BadRequest
Failed = errors.Failed


_MISSING: Any = object()


def arg(request: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    if name not in request or request[name] is None:
        if default is _MISSING:
            raise BadRequest(f"{name}: is required")
        return default
    value = request[name]
    if (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))) or not isinstance(value, kind):
        raise BadRequest(f"{name}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


@attrs.define
class Commands:
    fabric: Fabric
    ops: Operations
    started_at: float
    bus: EventBus = attrs.field(factory=EventBus)
    endpoints: dict[str, str] = attrs.field(factory=dict)  # what else the daemon serves, e.g. metrics: "127.0.0.1:9464"
    pid: int = attrs.field(factory=os.getpid)

    async def dispatch(self, request: dict[str, Any]) -> Any:
        command = arg(request, "cmd", str)
        handler = getattr(self, f"cmd_{command}", None)
        if handler is None:
            raise BadRequest(f"cmd: unknown command {command!r} (known: {', '.join(sorted(self.names()))})")
        return await handler(request)

    @classmethod
    def names(cls) -> list[str]:
        return [n[4:] for n in dir(cls) if n.startswith("cmd_")]

    # ------------------------------------------------------------ reading

    async def cmd_status(self, request: dict[str, Any]) -> dict[str, Any]:
        fabric = self.fabric
        counts = await fabric.catalog.call(queries.status_counts)
        carts = await fabric.catalog.call(queries.cartridges)
        return {
            "pid": self.pid,
            "config": str(fabric.config.file),
            "state_dir": str(fabric.config.daemon.state_dir),
            "fabric_time": iso(fabric.now()),
            "uptime": round(trio.current_time() - self.started_at, 1),
            "endpoints": self.endpoints,
            "running": [work_json(w) for w in self.ops.running()],
            "jobs": counts,
            "libraries": [_library_status(fabric, lib_id, carts) for lib_id in fabric.libraries],
            "copies": jsonable(await copy_statuses(fabric)),
            "links": [_link_status(link) for link in fabric.links.values()],
            "faults": faults.in_force(fabric),
        }

    async def cmd_copies(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        return jsonable(await copy_statuses(self.fabric))

    async def cmd_jobs(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """A page of jobs in id order: ``after`` the last id of the page before, at most
        ``limit``, filtered by client, status, and the jobs' state on a copy."""
        limit = arg(request, "limit", int, DEFAULT_PAGE)
        after = arg(request, "after", int, 0)
        if not 1 <= limit <= MAX_PAGE or after < 0:
            raise BadRequest(f"limit: 1 to {MAX_PAGE}, and after: 0 or more (got limit {limit}, after {after})")
        status = arg(request, "status", str, None)
        if status is not None and status not in set(JobStatus):
            raise BadRequest(f"status: {status!r} is not one of {', '.join(JobStatus)}")
        copy_id, state = arg(request, "copy", str, None), arg(request, "state", str, None)
        if state is not None and (copy_id is None or state not in set(CopyState)):
            raise BadRequest(f"state: give it with copy, as one of {', '.join(CopyState)}")
        if copy_id is not None:
            self.fabric.config.copy(copy_id)  # NotFound names the known copies
        jobs = await self.fabric.catalog.call(
            partial(
                queries.page_jobs,
                client=arg(request, "client", str, None),
                status=status,
                copy_id=copy_id,
                state=state,
                after=after,
                limit=limit,
            )
        )
        return [_job_json(j, self.fabric.scale) for j in jobs]

    async def cmd_drives(self, request: dict[str, Any]) -> dict[str, Any]:
        """Each library's drives (free or held, by whom, the cartridge loaded) and who waits
        for them, in the order the broker will serve them. Times are fabric time."""
        fabric = self.fabric
        return {
            "fabric_time": iso(fabric.now()),
            "libraries": jsonable([lib.drive_states() for lib in fabric.libraries.values()]),
        }

    async def cmd_operation(self, request: dict[str, Any]) -> dict[str, Any]:
        op_id = arg(request, "id", str)
        op = self.ops.get(op_id)
        if op is None:
            raise BadRequest(f"id: no operation {op_id!r}")
        return await self._maybe_wait(op, request)

    # ------------------------------------------------------------ acting

    async def cmd_backup(self, request: dict[str, Any]) -> dict[str, Any]:
        client, job_type = arg(request, "client", str), arg(request, "type", str, "incremental")
        subclient = arg(request, "subclient", str, None)
        try:
            op = await self.ops.start("backup", run_backup, self.fabric, client, subclient, job_type, reports_id=True)
        except BackupBadRequest as e:
            raise BadRequest(str(e)) from None
        return await self._maybe_wait(op, request)

    async def cmd_kill(self, request: dict[str, Any]) -> dict[str, Any]:
        job_id = arg(request, "job_id", int)
        job = await self.fabric.catalog.call(queries.get_job, job_id)
        if job is None:
            raise BadRequest(f"job_id: no job {job_id}")
        work = self.ops.registry.find("backup", job_id)
        if work is None:
            raise Failed(f"job {job_id} is not running (status: {job.status})")
        work.stop(running.KILLED)
        op = self.ops.get(f"backup:{job_id}")
        if op is not None:
            await op.done.wait()
        return {"job_id": job_id, "status": "killed"}

    async def cmd_auxcopy(self, request: dict[str, Any]) -> dict[str, Any]:
        copy_id, streams = arg(request, "copy", str, None), arg(request, "streams", int, None)
        try:
            copy_order(self.fabric, copy_id)
            check_streams(streams)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        suspended = await self.fabric.catalog.call(queries.suspended_copies)
        if copy_id in suspended:
            raise Failed(f"aux copy of {copy_id} is suspended: vtlfabric ctl resume --copy {copy_id}")
        op = await self.ops.start("auxcopy", run_auxcopy, self.fabric, copy_id, streams)
        return await self._maybe_wait(op, request)

    async def cmd_restore(self, request: dict[str, Any]) -> dict[str, Any]:
        job_id, latest = arg(request, "job_id", int, None), arg(request, "latest", bool, False)
        if (job_id is None) == (not latest):
            raise BadRequest("job_id: give either a job id or latest, not both or neither")
        dest = Path(arg(request, "to", str))
        if not dest.is_absolute():
            raise BadRequest("to: the restore directory must be an absolute path")
        client = arg(request, "client", str, None)
        if client is None:
            if job_id is None:
                raise BadRequest("client: is required with latest")
            job = await self.fabric.catalog.call(queries.get_job, job_id)
            if job is None:
                raise BadRequest(f"job_id: no job {job_id}")
            client = job.client
        restore = RestoreRequest(client, dest, job_id, arg(request, "copy", str, None), arg(request, "site", str, None))
        op = await self.ops.start("restore", run_restore, self.fabric, restore)
        return await self._maybe_wait(op, request)

    async def cmd_verify(self, request: dict[str, Any]) -> dict[str, Any]:
        """Data verification: read back every available job of a copy (or all) and check it."""
        copy_id = arg(request, "copy", str, None)
        if copy_id is not None:
            self._any_copy(copy_id)
        op = await self.ops.start("verify", run_verify, self.fabric, copy_id)
        return await self._maybe_wait(op, request)

    async def cmd_select(self, request: dict[str, Any]) -> dict[str, Any]:
        """An operator's choice for one job on one copy, recorded with who and when."""
        action = arg(request, "action", str)
        if action not in SELECT_ACTIONS:
            raise BadRequest(f"action: {action!r} is not one of {', '.join(SELECT_ACTIONS)}")
        job_id, copy_id = arg(request, "job_id", int), arg(request, "copy", str)
        job = await self.fabric.catalog.call(queries.get_job, job_id)
        if job is None:
            raise BadRequest(f"job_id: no job {job_id}")
        copies = {c.id: self.fabric.copy(c.id) for c in self.fabric.config.policy(job.policy).copies}
        if copy_id not in copies:
            raise BadRequest(f"copy: job {job_id} belongs to policy {job.policy}, whose copies are {', '.join(copies)}")
        if copies[copy_id].primary and action != "mark-bad":
            raise BadRequest(f"copy: {copy_id} is the primary copy; only mark-bad applies to it")
        who = arg(request, "who", str, "unknown")
        try:
            state = await self.fabric.catalog.call(queries.manual_selection, job_id, copy_id, action, who, self.fabric.now())
        except queries.Refused as e:
            raise Failed(str(e)) from None
        return {"job_id": job_id, "copy": copy_id, "action": action, "state": state, "who": who}

    async def cmd_drill(self, request: dict[str, Any]) -> dict[str, Any]:
        """A DR drill now, in the config's mode unless the request names one."""
        mode = arg(request, "mode", str, None) or self.fabric.config.drill.mode
        if mode not in DRILL_MODES:
            raise BadRequest(f"mode: {mode!r} is not one of {', '.join(DRILL_MODES)}")
        if self.fabric.drill_lock.locked():
            raise Failed("a drill is already running")
        op = await self.ops.start("drill", run_drill, self.fabric, mode, f"ctl by {arg(request, 'who', str, 'unknown')}")
        return await self._maybe_wait(op, request)

    async def start_drill_on_signal(self) -> None:
        """SIGUSR1: a drill in the config's mode, unless one is running (then it is only logged)."""
        if self.fabric.drill_lock.locked():
            log.info("drill.ignored", reason="a drill is already running", signal="SIGUSR1")
            return
        await self.ops.start("drill", run_drill, self.fabric, self.fabric.config.drill.mode, "signal SIGUSR1")

    async def cmd_events(self, request: dict[str, Any]) -> EventFeed:
        return EventFeed(self.bus, arg(request, "follow", bool, False))

    async def cmd_drills(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        rows = await self.fabric.catalog.call(queries.drills)
        return [{**r, "started": iso(r["started"]), "ended": iso(r["ended"])} for r in rows]

    async def cmd_age(self, request: dict[str, Any]) -> dict[str, Any]:
        """A data-aging run now: expired jobs become *aged*; empty cartridges go back to scratch."""
        policy = arg(request, "policy", str, None)
        known = [p.name for p in self.fabric.config.policies]
        if policy is not None and policy not in known:
            raise BadRequest(f"policy: no policy {policy!r} (known: {', '.join(known)})")
        op = await self.ops.start("aging", run_data_aging, self.fabric, (policy,) if policy else ())
        return await self._maybe_wait(op, request)

    async def cmd_promote(self, request: dict[str, Any]) -> dict[str, Any]:
        """Make a secondary copy the primary. Without ``yes`` it only reports what the
        promotion would lose, unless the old primary is inoperative."""
        copy = self.fabric.copy(self._any_copy(arg(request, "copy", str)))
        try:
            report = await promotion.promote(
                self.fabric,
                copy,
                arg(request, "who", str, "unknown"),
                accept_loss=arg(request, "yes", bool, False),
                planned=arg(request, "planned", bool, False),
            )
        except promotion.NotPromotable as e:
            raise BadRequest(str(e)) from None
        except promotion.PromotionRefused as e:
            raise Failed(str(e)) from None
        return jsonable(report)

    async def cmd_repair(self, request: dict[str, Any]) -> dict[str, Any]:
        """Declare a copy usable again (after a promotion, or a fault that was fixed)."""
        copy = self.fabric.copy(self._any_copy(arg(request, "copy", str)))
        try:
            was = await promotion.repair(self.fabric, copy, arg(request, "who", str, "unknown"))
        except promotion.PromotionRefused as e:
            raise Failed(str(e)) from None
        return {"copy": copy.id, "repaired": True, "was": was or "operational"}

    def _any_copy(self, copy_id: str) -> str:
        known = [c.id for c in self.fabric.config.copies()]
        if copy_id not in known:
            raise BadRequest(f"copy: no copy {copy_id!r} (known: {', '.join(known)})")
        return copy_id

    async def cmd_suspend(self, request: dict[str, Any]) -> dict[str, Any]:
        """Stop a copy's aux copy at its jobs' last committed chunk; no run starts until resumed."""
        copy = self._secondary(arg(request, "copy", str))
        await self.fabric.catalog.call(
            queries.set_suspended, copy.id, True, arg(request, "who", str, "unknown"), self.fabric.now()
        )
        stopped = self.ops.registry.stop("auxcopy", copy.id, SUSPENDED)
        return {"copy": copy.id, "suspended": True, "stopped_running": stopped}

    async def cmd_resume(self, request: dict[str, Any]) -> dict[str, Any]:
        """Allow the copy's aux copy again, and run it now: it resumes where it stopped."""
        copy = self._secondary(arg(request, "copy", str))
        await self.fabric.catalog.call(
            queries.set_suspended, copy.id, False, arg(request, "who", str, "unknown"), self.fabric.now()
        )
        op = await self.ops.start("auxcopy", run_auxcopy, self.fabric, copy.id, None)
        return await self._maybe_wait(op, request)

    def _secondary(self, copy_id: str) -> Any:
        try:
            copy_order(self.fabric, copy_id)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        return self.fabric.copy(copy_id)

    async def cmd_media(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """Each library as IBM i shows it: the TAPMLB device, its TAP resources, its volumes."""
        return jsonable(await media_view(self.fabric))

    async def cmd_export(self, request: dict[str, Any]) -> dict[str, Any]:
        """Vault cartridges out through the mail station; restores and copies that need them
        fail, naming the cartridge to import, until they are imported again."""
        return await self._vault(request, "export")

    async def cmd_import(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._vault(request, "import")

    async def _vault(self, request: dict[str, Any], action: str) -> dict[str, Any]:
        barcodes = arg(request, "barcodes", list)
        if not barcodes or not all(isinstance(b, str) for b in barcodes):
            raise BadRequest("barcodes: give one or more cartridge barcodes")
        by_library: dict[str, list[str]] = {}
        for barcode in barcodes:
            owner = next((lib for lib in self.fabric.libraries.values() if barcode in lib.spec.barcodes), None)
            if owner is None:
                raise errors.NotFound("cartridge", barcode)
            by_library.setdefault(owner.spec.id, []).append(barcode)
        for library_id, mine in by_library.items():
            library = self.fabric.libraries[library_id]
            await (library.export(mine) if action == "export" else library.import_(mine))
        return {action + "ed": barcodes, "libraries": sorted(by_library)}

    async def cmd_fault(self, request: dict[str, Any]) -> dict[str, Any]:
        target, action, where = arg(request, "target", str), arg(request, "action", str), arg(request, "where", str, None)
        if (target, action, where) == ("daemon:self", "kill-9", None):
            # The reply first, then the kill: the operator hears what is about to happen.
            self.ops.nursery.start_soon(faults.kill_9_after, KILL_AFTER)
            return {"fault": f"kill -9 of the daemon (pid {self.pid}) in {KILL_AFTER:g}s"}
        try:
            done = await faults.inject(self.fabric, target, action, where)
        except faults.FaultError as e:
            raise BadRequest(str(e)) from None
        return {"fault": done}

    async def _maybe_wait(self, op: Work, request: dict[str, Any]) -> dict[str, Any]:
        if arg(request, "wait", bool, False):
            await op.done.wait()
            if op.status != "completed":
                raise Failed(op.error or f"{op.id} {op.status}: {op.result}")
        return work_json(op)


def _count_by(items: Any, key: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[key(item)] = out.get(key(item), 0) + 1
    return out


def _job_json(job: Any, scale: int) -> dict[str, Any]:
    """``bytes`` are what the job wrote; ``nominal_bytes`` what they stand for (the same at scale 1)."""
    return {
        "id": job.id,
        "client": job.client,
        "subclient": job.subclient,
        "policy": job.policy,
        "type": job.type,
        "requested_type": job.requested_type,
        "status": job.status,
        "reason": job.reason,
        "generation": job.generation,
        "base_generation": job.base_generation,
        "started": iso(job.started),
        "ended": iso(job.ended),
        "objects": job.objects,
        "bytes": job.bytes,
        "nominal_bytes": job.bytes * scale,
        "copies": dict(job.copies),
        "reasons": {copy: why for copy, why in job.reasons.items() if why},  # why each copy's state is what it is
    }


def _library_status(fabric: Fabric, lib_id: str, carts: list[Any]) -> dict[str, Any]:
    lib = fabric.libraries[lib_id]
    mine = [c for c in carts if c.library == lib_id]
    return {
        "id": lib_id,
        "offline": lib.offline,
        "drives": lib.spec.drives,
        "drives_in_use": lib.drives_in_use,
        "cartridges": _count_by(mine, lambda c: c.state),
    }


def _link_status(link: Any) -> dict[str, Any]:
    stats = link.stats
    return {
        "name": link.spec.name,
        "sites": [link.spec.a, link.spec.b],
        "partitioned": link.partitioned,
        "streams": link.active_streams,
        **attrs.asdict(stats),
    }
