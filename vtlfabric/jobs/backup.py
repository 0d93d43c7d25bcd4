"""A backup job: an IBM i subclient through the production MediaAgent to the primary copy."""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Any

import attrs
import structlog
import trio

from vtlfabric import blocking, errors
from vtlfabric.catalog import queries
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import running
from vtlfabric.site.client import SourceObject, Workload
from vtlfabric.site.index import IndexEntry, JobIndex
from vtlfabric.tape.library import Drive, DriveFailed, Library
from vtlfabric.tape.stream import JobWriter
from vtlfabric.vocab import JOB_TYPES, JobStatus

log = structlog.get_logger()
RECORD_RETRY = 60.0  # seconds between tries to record a job's end the state directory had no room for


class BackupFailed(errors.Failed):
    pass


class BadRequest(errors.BadRequest):
    pass


@attrs.frozen
class BackupResult:
    job_id: int
    status: str
    type: str
    objects: int = 0
    bytes: int = 0
    digest: str = ""


@attrs.frozen
class Written:
    """What a backup put on tape: its objects' index entries and the stream's digest."""

    entries: tuple[IndexEntry, ...]
    digest: str

    @property
    def bytes(self) -> int:
        return sum(e.length for e in self.entries)


@attrs.frozen
class Plan:
    job_type: str
    base_generation: int | None
    note: str


async def plan(fabric: Fabric, client: str, subclient: str, requested: str) -> Plan:
    """Commvault's rule: with no valid full to build on, any backup runs as a full."""
    if requested == "full":
        return Plan("full", None, "")
    required = await fabric.catalog.call(queries.full_required, client, subclient)
    if required:
        return Plan("full", None, f"{requested} converted to full: {required}")
    full = await fabric.catalog.call(queries.last_valid_job, client, subclient, ("full",))
    if full is None:
        return Plan("full", None, f"{requested} converted to full: no valid full backup yet")
    if requested == "differential":
        return Plan("differential", full.generation, "")
    last = await fabric.catalog.call(queries.last_valid_job, client, subclient, JOB_TYPES)
    return Plan("incremental", last.generation, "")


def _check_request(fabric: Fabric, client: str, subclient: str | None, job_type: str) -> str:
    if client not in fabric.workloads:
        raise BadRequest(f"client: no client named {client!r}")
    if job_type not in JOB_TYPES:
        raise BadRequest(f"type: {job_type!r} is not one of {', '.join(JOB_TYPES)}")
    spec = fabric.workloads[client].client
    names = [s.name for s in spec.subclients]
    if subclient is None:
        return names[0]
    if subclient not in names:
        raise BadRequest(f"subclient: {client} has no subclient {subclient!r} (it has {', '.join(names)})")
    return subclient


async def run_backup(
    fabric: Fabric,
    client: str,
    subclient: str | None = None,
    job_type: str = "incremental",
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> BackupResult:
    subclient = _check_request(fabric, client, subclient, job_type)
    policy = fabric.config.policy_of(client)
    async with fabric.role_gate(policy.name).backup():
        return await _backup(fabric, client, subclient, job_type, fabric.primary_of(policy.name), task_status)


async def _backup(
    fabric: Fabric, client: str, subclient: str, job_type: str, primary: CopySpec, task_status: Any
) -> BackupResult:
    policy = fabric.config.policy_of(client)
    workload = fabric.workloads[client]
    the_plan = await plan(fabric, client, subclient, job_type)
    generation = workload.generation(fabric.now())
    job_id = await fabric.catalog.call(
        partial(
            queries.create_job,
            client=client,
            subclient=subclient,
            policy=policy.name,
            job_type=the_plan.job_type,
            requested_type=job_type,
            generation=generation,
            base_generation=the_plan.base_generation,
            now=fabric.site_now(primary.site),  # the MediaAgent that runs it stamps it
        )
    )
    bound = log.bind(job_id=job_id, client=client, subclient=subclient, copy=primary.id, site=primary.site)
    bound.info("backup.started", type=the_plan.job_type, generation=generation)
    if the_plan.note:
        bound.info("backup.converted", reason=the_plan.note)
    task_status.started(job_id)

    objects = workload.objects(subclient, generation, since=the_plan.base_generation)
    fail_at = _failure_point(fabric, job_id, client, len(objects))
    kill_at = fabric.rng.randrange(max(1, len(objects))) if fabric.faults.take_backup_kill(client) else None
    status, reason, written = JobStatus.FAILED, running.SHUTDOWN, None
    try:
        with running.registry().hold("backup", job_id, frozenset({primary.site})) as work:
            written = await _write_job(fabric, job_id, primary.id, workload, objects, fail_at, kill_at)
            status, reason = JobStatus.COMPLETED, the_plan.note
        if work.stopped:  # even if it wrote its last block first: what stopped it decides (a crash, a kill)
            status, reason = (JobStatus.KILLED if work.reason == running.KILLED else JobStatus.FAILED), work.reason
    except Exception as e:  # the job boundary: any fault ends this job, never the daemon
        reason = str(e) or type(e).__name__
    finally:
        await _record_end(fabric, job_id, status, reason, written, primary)
    bound.info(f"backup.{status}", reason=reason, objects=len(written.entries) if written else 0)
    if status != JobStatus.COMPLETED:
        raise BackupFailed(f"job {job_id} {status}: {reason}")
    return BackupResult(job_id, status, the_plan.job_type, len(written.entries), written.bytes, written.digest)


def _failure_point(fabric: Fabric, job_id: int, client: str, count: int) -> int | None:
    """Where (which object) this backup fails, if a fault or the client's failure rate says
    so. Either is logged, so a history shows the failure was meant (check/invariants.py)."""
    forced = fabric.faults.take_backup_failure(client)
    chance = fabric.rng.random() < fabric.workloads[client].client.failure_rate
    if not (forced or chance):
        return None
    if forced:
        log.warning("fault.fired", fault="fail-backup", job_id=job_id, client=client)
    else:
        log.info("backup.chance_failure", job_id=job_id, client=client)
    return fabric.rng.randrange(count) if count else 0


async def _write_job(
    fabric: Fabric,
    job_id: int,
    copy_id: str,
    workload: Workload,
    objects: list[SourceObject],
    fail_at: int | None,
    kill_at: int | None,
) -> Written:
    """Write the job's objects to the primary copy. A drive that fails under it stays out
    until repaired; the job goes on on another drive from its last checkpoint."""
    library = fabric.library_of(fabric.copy(copy_id))
    while True:
        committed = max((s.offset + s.length for s in await fabric.catalog.call(queries.segments, job_id, copy_id)), default=0)
        try:
            async with library.drive(f"backup job {job_id}") as drive:
                return await _write_from(
                    fabric, library, drive, job_id, copy_id, workload, objects, (fail_at, kill_at), committed
                )
        except DriveFailed as e:
            log.warning("backup.drive_replaced", job_id=job_id, copy=copy_id, error=str(e), resume_at=committed)


async def _write_from(
    fabric: Fabric,
    library: Library,
    drive: Drive,
    job_id: int,
    copy_id: str,
    workload: Workload,
    objects: list[SourceObject],
    faults: tuple[int | None, int | None],
    committed: int,
) -> Written:
    """Every object is read and hashed (the index and the job's digest cover them all);
    only the stream past ``committed``, what no checkpoint holds yet, is written. ``faults``:
    the objects where the client fails, and where the job is killed, if a fault says so."""
    fail_at, kill_at = faults
    chunk = fabric.config.encryption.chunk_size
    digest = hashlib.sha256()
    entries: list[IndexEntry] = []
    writer = JobWriter(library, drive, fabric.catalog, fabric.now, job_id, copy_id, offset=committed)
    since_commit = position = 0
    try:
        for n, obj in enumerate(objects):
            if n == fail_at:
                raise BackupFailed(f"client read error on {obj.path}")
            if n == kill_at or fabric.faults.take_backup_kill(workload.client.name):
                await _killed_by_fault(job_id, workload.client.name)
            pieces, sha = await blocking.run_sync(_read_object, workload, obj, digest)
            entries.append(IndexEntry(obj.path, obj.version, position, sum(len(p) for p in pieces), sha))
            for piece in pieces:
                new = piece if committed <= position else piece[committed - position :]  # checkpointed: not again
                position += len(piece)
                if new:
                    await writer.write(new)
                    since_commit += len(new)
                if since_commit >= chunk:
                    await writer.commit()
                    since_commit = 0
        if fail_at is not None and fail_at >= len(objects):
            raise BackupFailed("client connection lost at end of job")
    finally:
        # Whatever the outcome, the data written stays on tape, committed.
        with trio.CancelScope(shield=True):
            await writer.close()
    return Written(tuple(entries), digest.hexdigest())


async def _killed_by_fault(job_id: int, client: str) -> None:
    """As ``ctl kill`` kills a job: through its handle, so it ends killed, at a checkpoint."""
    work = running.current()
    assert work is not None and work.kind == "backup"
    log.warning("fault.fired", fault="kill-backup", job_id=job_id, client=client)
    work.stop(running.KILLED)
    await trio.lowlevel.checkpoint()


def _read_object(workload: Workload, obj: SourceObject, stream_digest: Any) -> tuple[list[bytes], str]:
    """In a worker thread: reading and hashing take time in proportion to the object."""
    pieces = workload.pieces(obj)
    sha = hashlib.sha256()
    for piece in pieces:
        stream_digest.update(piece)
        sha.update(piece)
    return pieces, sha.hexdigest()


async def _record_end(fabric: Fabric, job_id: int, status: str, reason: str, written: Written | None, primary: CopySpec) -> None:
    """Record how the job ended. A full state directory cannot take it: try again until it
    can, so the job never stays running in the catalog while the daemon runs (a stop
    meanwhile leaves it to the next start's recovery, which fails it)."""
    while True:
        try:
            with trio.CancelScope(shield=True):
                await _finish(fabric, job_id, status, reason, written, primary)
            return
        except OSError as e:
            log.warning("backup.end_not_recorded", job_id=job_id, status=status, error=str(e), retry_in=RECORD_RETRY)
            await trio.sleep(RECORD_RETRY)


async def _finish(fabric: Fabric, job_id: int, status: str, reason: str, written: Written | None, primary: CopySpec) -> None:
    job = await fabric.catalog.call(queries.get_job, job_id)
    written = written or Written((), "")
    if status == JobStatus.COMPLETED:
        # The index is saved before the job counts, so a completed job always has one.
        index = JobIndex(
            job_id, job.client, job.subclient, job.type, job.generation, written.bytes, written.digest, written.entries
        )
        await fabric.mediaagent_of(primary).index_cache.save(index)
    await fabric.catalog.call(
        partial(
            queries.finish_job,
            job_id=job_id,
            status=status,
            reason=reason,
            now=fabric.site_now(primary.site),
            objects=len(written.entries),
            nbytes=written.bytes,
            digest=written.digest,
            primary=primary.id,
        )
    )
