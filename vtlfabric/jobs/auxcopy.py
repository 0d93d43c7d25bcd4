"""Auxiliary copy: valid jobs from a source copy to a secondary copy, N streams at once.

Each stream holds one source and one destination drive (granted together by the
fabric's drive broker; two of one library for a copy within it) and takes jobs
oldest first from a shared queue, so streams finish close together. Each job
attempt runs over a fresh encrypted session between the two MediaAgents: the
source MediaAgent reads the job from tape and sends it in sealed chunks; the
destination MediaAgent writes, checkpoints each chunk, reads the job back to check
its digest, saves the index in its disk library, and only then marks the job
*available* on the copy.

A job whose source cannot be read is not retried in the run: it is *partially
copied* on the copy, with why, and the next run tries it again. If what was read
shows the source's data damaged, the job is marked damaged on the source copy too.
The copy's ``on_read_error`` says what the stream does next: ``skip`` to the next
job, or ``stop``. A copy that heals copies its damaged jobs again.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import structlog
import trio

from vtlfabric.catalog import queries
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.groups import first_leaf
from vtlfabric.jobs import progress, running
from vtlfabric.jobs.copyproto import CopyFailed, SourceReadError, receive_jobs, send_job
from vtlfabric.jobs.damage import heals, mark_damaged
from vtlfabric.jobs.selection import SOURCE_STATES, due_states, jobs_to_copy, to_register
from vtlfabric.media import Incompatible
from vtlfabric.net import secure
from vtlfabric.net.wan import local_stream_pair
from vtlfabric.tape.image import TapeFormatError
from vtlfabric.tape.library import (
    CartridgeOutside,
    Drive,
    DriveFailed,
    LibraryOffline,
    MediaFailure,
    OutOfMedia,
    RobotFailed,
    WrongCartridge,
    reserve_drives,
)
from vtlfabric.vocab import DAY, MAX_STREAMS

log = structlog.get_logger()
ATTEMPTS = 3
SUSPENDED = "suspended"  # the reason ctl suspend stops a copy with
# What can fail one attempt at one job: the network, the peer, the media. Anything
# else is a bug, and fails the whole run loudly.
RETRYABLE = (
    CopyFailed,
    secure.SecureChannelError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.EndOfChannel,
    LibraryOffline,
    RobotFailed,
    WrongCartridge,
    CartridgeOutside,
    DriveFailed,
    Incompatible,
    MediaFailure,
    OutOfMedia,
    TapeFormatError,
    OSError,
)


@attrs.frozen
class CopyFailure:
    job_id: int
    reason: str


@attrs.frozen
class CopyRun:
    """One copy's part of an aux copy run."""

    copy: str
    status: str  # completed, failed, suspended, interrupted, inoperative
    run_id: int | None = None
    streams: int = 0
    jobs_copied: int = 0
    bytes: int = 0
    failed: tuple[CopyFailure, ...] = ()
    reason: str = ""


@attrs.frozen
class AuxCopyResult:
    copies: tuple[CopyRun, ...]
    jobs_copied: int
    bytes: int
    status: str

    @classmethod
    def of(cls, runs: list[CopyRun]) -> AuxCopyResult:
        statuses = {r.status for r in runs}
        status = "failed" if "failed" in statuses else "suspended" if "suspended" in statuses else "completed"
        return cls(tuple(runs), sum(r.jobs_copied for r in runs), sum(r.bytes for r in runs), status)


@attrs.define
class RunTotals:
    jobs: int = 0
    bytes: int = 0
    failures: list[CopyFailure] = attrs.field(factory=list)
    stopped: list[str] = attrs.field(factory=list)  # streams stopped by a read error (on_read_error = "stop")


def copy_order(fabric: Fabric, copy_id: str | None) -> list[CopySpec]:
    """The secondary copies to run, each after its source (cascades need that)."""
    chosen = [c for c in fabric.copies() if not c.primary and (copy_id is None or c.id == copy_id)]
    if copy_id is not None and not chosen:
        raise ValueError(
            f"copy: {copy_id!r} is not a secondary copy (known: {', '.join(c.id for c in fabric.copies() if not c.primary)})"
        )

    def depth(c: CopySpec) -> int:
        return 0 if c.source is None else 1 + depth(fabric.source_of(c))

    return sorted(chosen, key=lambda c: (depth(c), c.id))


def check_streams(streams: int | None) -> None:
    if streams is not None and not 1 <= streams <= MAX_STREAMS:
        raise ValueError(f"streams: must be between 1 and {MAX_STREAMS}")


async def run_auxcopy(fabric: Fabric, copy_id: str | None = None, streams: int | None = None) -> AuxCopyResult:
    check_streams(streams)
    return AuxCopyResult.of([await run_copy(fabric, copy, streams) for copy in copy_order(fabric, copy_id)])


# After a registration, a synchronous copy's next candidates are only the jobs whose
# source row changed since, or that started since (less its defer): a catalog change is
# committed within moments of reading the time, and this margin covers them with room.
REGISTRATION_MARGIN = DAY


async def register_selected(fabric: Fabric, copy: CopySpec) -> None:
    """Give the jobs the copy's rules select a row (*to be copied*). Only the rows the
    rules can select are read (catalog.queries.candidate_jobs), so a run costs what is
    new, not the years of jobs behind it."""
    at = fabric.now()
    new = to_register(await candidates(fabric, copy), copy.rules, copy.id, fabric.source_of(copy).id, at)
    mark = (registration_key(copy), json.dumps({"at": at, "rules": _fingerprint(fabric, copy)}))
    reason = f"selected by the {copy.rules.kind} copy's rules"
    await fabric.catalog.call(queries.register_jobs, copy.id, [j.id for j in new], reason, fabric.now(), mark)


async def candidates(fabric: Fabric, copy: CopySpec) -> list[Any]:
    """The jobs ``to_register`` needs to see for this copy's rules, and no others."""
    synchronous = copy.rules.kind == "synchronous"
    wanted = queries.Candidates(
        copy.id,
        fabric.source_of(copy).id,
        SOURCE_STATES,
        fulls_only=not synchronous,
        unregistered_only=synchronous,
        since=copy.rules.backups_from,
        recent=await recent_window(fabric, copy) if synchronous else None,
    )
    return await fabric.catalog.call(queries.candidate_jobs, wanted)


async def recent_window(fabric: Fabric, copy: CopySpec) -> tuple[float, float] | None:
    """(source rows updated since, jobs started since) that can hold new candidates, from
    the copy's last registration under the same rules and source; None: look at all."""
    saved = await fabric.catalog.call(queries.get_meta, registration_key(copy))
    mark = json.loads(saved) if saved else None
    if mark is None or mark["rules"] != _fingerprint(fabric, copy) or fabric.now() < mark["at"]:
        return None  # never registered, other rules or source, or the clock went back: look at all
    since = mark["at"] - REGISTRATION_MARGIN
    return since, since - copy.rules.defer


def registration_key(copy: CopySpec) -> str:
    """The meta key of a copy's last registration (see ``recent_window``)."""
    return f"registered:{copy.id}"


def _fingerprint(fabric: Fabric, copy: CopySpec) -> str:
    return repr((copy.rules, fabric.source_of(copy).id))


def plan_streams(fabric: Fabric, copy: CopySpec, override: int | None, jobs: int) -> int:
    """Streams for one run: the override, else the copy's setting, where "max" is as many
    as there are drives on both sides; capped by combine_streams and by the jobs to copy."""
    src, dst = fabric.library_of(fabric.source_of(copy)).spec, fabric.library_of(copy).spec
    drives = src.drives // 2 if src.id == dst.id else min(src.drives, dst.drives)
    wanted = override or copy.streams or drives
    if copy.combine_streams:
        wanted = min(wanted, copy.combine_streams)
    return max(1, min(wanted, jobs))


async def run_copy(fabric: Fabric, copy: CopySpec, streams: int | None) -> CopyRun:
    async with fabric.aux_lock(copy.id):
        if copy.id in await fabric.catalog.call(queries.suspended_copies):
            return _skipped(copy, "suspended", "suspended")
        down = fabric.inoperative(copy) or fabric.inoperative(fabric.source_of(copy))
        if down:
            return _skipped(copy, "inoperative", down)
        source = fabric.source_of(copy)
        await register_selected(fabric, copy)
        due = await fabric.catalog.call(queries.due_jobs, copy.id, due_states(heals(copy)), source.id)
        jobs = jobs_to_copy(due, copy.id, source.id, heals(copy))
        progress.current().plan({(copy.id, j.id): j.bytes for j in jobs})
        n_streams = plan_streams(fabric, copy, streams, len(jobs))
        run_id = await fabric.catalog.call(queries.start_aux_run, copy.id, n_streams, fabric.now())
        bound = log.bind(run=run_id, copy=copy.id, source=source.id)
        bound.info("auxcopy.started", jobs=len(jobs), streams=n_streams)
        totals = RunTotals()
        status, reason = "interrupted", "daemon stopped"
        try:
            with running.registry().hold("auxcopy", copy.id, frozenset({copy.site, source.site})) as work:
                await _run_streams(fabric, copy, source, jobs, n_streams, totals)
                failed = len(totals.failures)
                status = "completed" if not failed else "failed"
                reason = "; ".join([f"{failed} job(s) not copied"] * bool(failed) + totals.stopped)
            if work.scope.cancelled_caught:
                status, reason = ("suspended" if work.reason == SUSPENDED else "interrupted"), work.reason
        finally:
            with trio.CancelScope(shield=True):
                await fabric.catalog.call(queries.finish_aux_run, run_id, status, reason, totals.jobs, totals.bytes, fabric.now())
        bound.info(f"auxcopy.{status}", jobs_copied=totals.jobs, bytes=totals.bytes, failures=len(totals.failures))
        return CopyRun(copy.id, status, run_id, n_streams, totals.jobs, totals.bytes, tuple(totals.failures), reason)


def _skipped(copy: CopySpec, status: str, reason: str) -> CopyRun:
    log.info("auxcopy.skipped", copy=copy.id, reason=reason)
    return CopyRun(copy.id, status, reason=reason)


async def _run_streams(
    fabric: Fabric, copy: CopySpec, source: CopySpec, jobs: list[Any], n_streams: int, totals: RunTotals
) -> None:
    """One shared queue, oldest job first: a stream takes the next job as soon as it is
    free, so each stream's jobs run oldest first and the streams finish close together."""
    send, receive = trio.open_memory_channel[Any](len(jobs) or 1)
    for job in jobs:
        send.send_nowait(job)
    send.close()
    async with trio.open_nursery() as nursery:
        for n in range(1, n_streams + 1):
            nursery.start_soon(_stream, fabric, copy, source, n, receive.clone(), totals)


async def _stream(fabric: Fabric, copy: CopySpec, source: CopySpec, number: int, jobs: Any, totals: RunTotals) -> None:
    src_lib, dst_lib = fabric.library_of(source), fabric.library_of(copy)
    now: dict[str, int] = {}  # the job this stream copies, for ctl drives

    def holder() -> str:
        return f"auxcopy {copy.id} stream {number}" + (f" job {now['job']}" if now else "")

    async with jobs:
        carry: Any = None  # a job whose drive failed under it: it goes on on the next drives
        while True:
            async with reserve_drives(src_lib, dst_lib, holder=holder) as drives:
                carry = await _copy_jobs(fabric, copy, source, number, carry, jobs, drives, totals, now)
            if carry is None:
                return
            log.warning("auxcopy.drive_replaced", copy=copy.id, stream=number, job_id=carry.id)


async def _copy_jobs(
    fabric: Fabric,
    copy: CopySpec,
    source: CopySpec,
    number: int,
    first: Any,
    jobs: Any,
    drives: tuple[Drive, Drive],
    totals: RunTotals,
    now: dict[str, int],
) -> Any:
    """Copy ``first`` (if any), then jobs from the queue, on these drives, until there are
    none left or the copy's on_read_error stops the stream (None); or until a drive fails
    under a job: that job is returned, to go on from its last checkpoint on other drives
    (the failed one stays out until it is repaired)."""
    job = first
    while True:
        if job is None:
            try:
                job = await jobs.receive()
            except trio.EndOfChannel:
                return None
        now["job"] = job.id
        outcome = await _copy_job(fabric, copy, source, number, job, drives, totals)
        if outcome == "drive failed":
            return job
        if outcome == "stop":
            return None
        job = None


async def _copy_job(
    fabric: Fabric, copy: CopySpec, source: CopySpec, number: int, job: Any, drives: tuple[Drive, Drive], totals: RunTotals
) -> str:
    """One job, with its attempts: "done" (copied, or failed for this run), "stop", or "drive failed"."""
    bound = log.bind(job_id=job.id, copy=copy.id, stream=number)
    for attempt in range(1, ATTEMPTS + 1):
        copied, error = await _attempt(fabric, copy, source, job, *drives)
        if error is None:
            totals.jobs += copied is not None
            totals.bytes += copied or 0
            progress.current().at((copy.id, job.id), job.bytes)
            progress.current().job_done((copy.id, job.id))
            return "done"
        if isinstance(error, DriveFailed):  # not the job's fault: no attempt is spent
            return "drive failed"
        reason = str(error) or type(error).__name__
        if isinstance(error, SourceReadError):  # retrying now would read the same media
            totals.failures.append(CopyFailure(job.id, reason))
            await _source_unreadable(fabric, copy, source, job.id, error)
            if copy.on_read_error == "stop":
                totals.stopped.append(f"stream {number} stopped at job {job.id}: its source could not be read")
                bound.warning("auxcopy.stream_stopped", error=reason)
                return "stop"
            return "done"
        bound.warning("auxcopy.job_retry" if attempt < ATTEMPTS else "auxcopy.job_failed", attempt=attempt, error=reason)
        if attempt == ATTEMPTS:
            totals.failures.append(CopyFailure(job.id, reason))
        else:
            await trio.sleep(attempt * (1 + fabric.rng.random()))
    return "done"


async def _source_unreadable(fabric: Fabric, copy: CopySpec, source: CopySpec, job_id: int, error: SourceReadError) -> None:
    """The job stays to copy, *partially copied*, with why; the source holds damaged data
    of it only if what was read says so (a block the drive could not read may read later)."""
    await fabric.catalog.call(queries.copy_failed, job_id, copy.id, str(error), fabric.now())
    log.warning("auxcopy.read_error", job_id=job_id, copy=copy.id, source=source.id, error=str(error), then=copy.on_read_error)
    if error.damaged:
        await mark_damaged(fabric, source, job_id, f"aux copy to {copy.id}: {error.problem}")


async def _attempt(
    fabric: Fabric, copy: CopySpec, source: CopySpec, job: Any, src_drive: Drive, dst_drive: Drive
) -> tuple[int | None, Exception | None]:
    """One attempt; a retryable failure comes back as a value (nurseries wrap it in a group)."""
    error: Exception | None = None
    try:
        return await _copy_one(fabric, copy, source, job, src_drive, dst_drive), None
    except* RETRYABLE as group:
        error = first_leaf(group)  # type: ignore[assignment]
    return None, error


async def _copy_one(fabric: Fabric, copy: CopySpec, source: CopySpec, job: Any, src_drive: Drive, dst_drive: Drive) -> int | None:
    """One attempt at one job, over a fresh session. Returns the bytes sent (None: skipped)."""
    src_ma, dst_ma = fabric.mediaagent_of(source), fabric.mediaagent_of(copy)
    link = fabric.link_between(source.site, copy.site)
    if link is None and source.site != copy.site:
        raise CopyFailed(f"no WAN link joins site {source.site} to site {copy.site}")
    near, far = link.open_stream(source.site) if link else local_stream_pair()
    aead = fabric.config.encryption.aead
    outcome: dict[str, Exception] = {}
    try:
        async with near, far, trio.open_nursery() as nursery:  # both ends closed, whatever happens
            nursery.start_soon(_receiver, fabric, copy, far, dst_drive, outcome)
            try:
                channel = await secure.connect(near, src_ma.identity, dst_ma.name, fabric.keystore, aead=aead)
                index = await src_ma.index_for(job.id, source.id, source.primary)
                sent = await send_job(fabric, channel, job, source, index, src_drive, fabric.throttle(copy), copy.id)
                await channel.send(json.dumps({"op": "bye"}).encode(), context=b"control")
                await channel.aclose()
            except BaseException:
                nursery.cancel_scope.cancel()
                raise
    except Exception as e:
        # The receiver's failure is the cause ("the peer closed the stream" only its echo),
        # unless the sender then found its own source at fault.
        if "error" in outcome and not isinstance(first_leaf(e), SourceReadError):
            raise outcome["error"] from None
        raise
    if "error" in outcome:
        raise outcome["error"]
    return sent


async def _receiver(fabric: Fabric, copy: CopySpec, stream: trio.abc.Stream, drive: Drive, outcome: dict[str, Exception]) -> None:
    """The destination MediaAgent's side. Its failures close the session, which the
    sender sees; they never escape to tear down the stream's nursery."""
    ma = fabric.mediaagent_of(copy)
    try:
        channel = await secure.accept(stream, ma.identity, fabric.keystore, aead=fabric.config.encryption.aead)
        await receive_jobs(fabric, channel, copy, drive)
    except RETRYABLE as e:
        outcome["error"] = e
        log.warning("auxcopy.receiver_failed", copy=copy.id, site=copy.site, error=str(e) or type(e).__name__)
        with trio.CancelScope(shield=True):
            await stream.aclose()
