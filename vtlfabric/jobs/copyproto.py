"""The copy protocol between two MediaAgents, over a secure channel.

    sender                                  receiver
    {"op": "job", job, digest, index}  ->
                                        <-  {"op": "resume", "offset": N}   (or "skip")
    chunk 0 .. chunk k (last one final) ->
                                        <-  {"op": "done"} | {"op": "failed", "reason", "mismatch"}
    ... next job ...  {"op": "bye"}     ->

    or, when the source cannot be read part way:
    chunk 0 .. chunk i (none final)     ->
    {"op": "unreadable", "reason"}      ->
                                        <-  {"op": "kept", "offset": N}

Control messages carry the context ``b"control"``; chunk n of job j carries
``b"job j chunk n"``, so a chunk replayed into another job or position fails
authentication. The final flag on the last chunk makes truncation visible.

A job the sender cannot read from its source copy ends the attempt with
``SourceReadError``, once the receiver has committed what was read before the
error. A damaged job the receiver's copy heals is started over: its damaged data
is forgotten first.

The job's digest is computed once, by the receiver, over what its media hold (read
back behind the writer). Only when that does not match the backup's digest
(``mismatch``) does the sender hash its source too, to tell a damaged source from a
bad copy: hashing every job at both ends cost a core's worth of SHA-256 per stream.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import attrs
import structlog
import trio

from vtlfabric.ahead import Ahead, Emit, beside, read_ahead
from vtlfabric.catalog import queries
from vtlfabric.catalog.records import JobRecord
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.fabric.throttle import Throttle
from vtlfabric.jobs import progress
from vtlfabric.jobs.damage import DAMAGE, heals
from vtlfabric.net.secure import SecureChannel
from vtlfabric.site.index import IndexFormatError, JobIndex
from vtlfabric.tape.library import Drive, MediaReadError
from vtlfabric.tape.stream import JobWriter, ReadBack, coverage_problem, read_digest, read_segments
from vtlfabric.vocab import PENDING_STATES, CopyState

log = structlog.get_logger()
CONTROL = b"control"
AHEAD = 2  # chunks read (or received) ahead of the one being sent (or written)


class CopyFailed(Exception):
    pass


class SourceReadError(CopyFailed):
    """The source copy's media could not give the job's data. ``damaged``: what was read
    shows the data there is damaged (cut short, garbled, not the backup's digest); if not,
    the drive could not read a block, and a later run may."""

    def __init__(self, source: str, problem: str, *, damaged: bool) -> None:
        super().__init__(f"cannot read it from {source}: {problem}")
        self.problem, self.damaged = problem, damaged


def _chunk_context(job_id: int, n: int) -> bytes:
    return f"job {job_id} chunk {n}".encode()


async def _send_control(channel: SecureChannel, **message: Any) -> None:
    await channel.send(json.dumps(message).encode(), context=CONTROL)


async def _receive_control(channel: SecureChannel) -> dict[str, Any]:
    message = await channel.receive()
    if message.context != CONTROL:
        raise CopyFailed(f"protocol: expected a control message, got {message.context!r}")
    return _control(message.payload)


def _control(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except ValueError:
        raise CopyFailed("protocol: control message is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("op"), str):
        raise CopyFailed("protocol: control message has no op")
    return data


# ---------------------------------------------------------------- sender


async def send_job(
    fabric: Fabric,
    channel: SecureChannel,
    job: JobRecord,
    source: CopySpec,
    index: JobIndex,
    drive: Drive,
    throttle: Throttle,
    destination: str,
) -> int | None:
    """Send one job from the source copy's media; return the bytes sent, or None if the
    destination already holds it (or should not)."""
    await _send_control(channel, op="job", job_id=job.id, bytes=job.bytes, digest=job.digest, index=index.to_json())
    reply = await _receive_control(channel)
    if reply["op"] == "skip":
        return None
    if reply["op"] != "resume" or not isinstance(reply.get("offset"), int) or not 0 <= reply["offset"] <= job.bytes:
        raise CopyFailed(f"protocol: bad reply to job offer: {reply}")
    offset = reply["offset"]
    read = partial(_read_source, fabric, job, source, drive, offset)
    async with read_ahead(read, depth=AHEAD) as chunks:
        sent = await _send_chunks(channel, chunks, job.id, offset, throttle, destination)
    reply = await _receive_control(channel)
    if reply["op"] != "done":
        if reply.get("mismatch"):
            await _check_source(fabric, job, source, drive)
        raise CopyFailed(f"job {job.id}: destination says {reply.get('reason', reply)}")
    return sent


async def _check_source(fabric: Fabric, job: JobRecord, source: CopySpec, drive: Drive) -> None:
    """The copy does not hash to the backup's digest: raise SourceReadError if the
    source's own media do not either (or cannot be read), so the source is blamed."""
    segments = await fabric.catalog.call(queries.segments, job.id, source.id)
    try:
        media = await read_digest(fabric.library_of(source), drive, segments)
    except DAMAGE as e:
        raise SourceReadError(source.id, str(e), damaged=not isinstance(e, MediaReadError)) from e
    if media != job.digest:
        raise SourceReadError(source.id, f"job {job.id}: the data does not match the backup's digest", damaged=True)


class _CutShort(Exception):
    """The source gave part of the job, then ``error``: what came is sent, and kept."""

    def __init__(self, error: SourceReadError) -> None:
        super().__init__(str(error))
        self.error = error


async def _read_source(
    fabric: Fabric, job: JobRecord, source: CopySpec, drive: Drive, offset: int, emit: Emit[tuple[bytes, bool]]
) -> None:
    """Read the job from ``offset`` on, in chunks of whole blocks up to the channel's
    chunk size, each with its final flag (the last, possibly empty, is final)."""
    segments = await fabric.catalog.call(queries.segments, job.id, source.id)
    library = fabric.library_of(source)
    held = offset
    try:
        async for data in read_segments(library, drive, segments, start=offset, batch=fabric.config.encryption.chunk_size):
            held += len(data)
            await emit((data, False))
    except DAMAGE as e:  # what was read before the error is good: the next run goes on after it
        raise _CutShort(SourceReadError(source.id, str(e), damaged=not isinstance(e, MediaReadError))) from e
    if held != job.bytes:
        raise SourceReadError(source.id, f"job {job.id}: it holds {held} of its {job.bytes} bytes", damaged=True)
    await emit((b"", True))


async def _send_chunks(
    channel: SecureChannel, chunks: Ahead[tuple[bytes, bool]], job_id: int, offset: int, throttle: Throttle, destination: str
) -> int:
    """Seal and send the chunks as they are read; the bytes sent."""
    n = sent = 0
    try:
        async for data, final in chunks:
            await throttle.take(len(data))
            await channel.send(data, context=_chunk_context(job_id, n), final=final)
            n, sent = n + 1, sent + len(data)
            progress.current().at((destination, job_id), offset + sent)
    except _CutShort as e:
        await _send_control(channel, op="unreadable", reason=str(e.error))
        reply = await _receive_control(channel)
        if reply["op"] != "kept":
            raise CopyFailed(f"protocol: bad reply to unreadable: {reply}") from e
        raise e.error from e.__cause__
    return sent


# ---------------------------------------------------------------- receiver


async def receive_jobs(fabric: Fabric, channel: SecureChannel, copy: CopySpec, drive: Drive) -> None:
    while True:
        offer = await _receive_control(channel)
        if offer["op"] == "bye":
            return
        if offer["op"] != "job":
            raise CopyFailed(f"protocol: unexpected {offer['op']!r}")
        await _receive_job(fabric, channel, copy, drive, offer)


async def _receive_job(fabric: Fabric, channel: SecureChannel, copy: CopySpec, drive: Drive, offer: dict[str, Any]) -> None:
    job_id, total, digest = offer.get("job_id"), offer.get("bytes"), offer.get("digest")
    if not (isinstance(job_id, int) and isinstance(total, int) and isinstance(digest, str)):
        raise CopyFailed("protocol: job offer lacks job_id, bytes or digest")
    try:
        index = JobIndex.from_json(offer.get("index"), f"job {job_id} offer")
    except IndexFormatError as e:
        raise CopyFailed(str(e)) from None
    row = await fabric.catalog.call(queries.job_copy, job_id, copy.id)
    if row is not None and row.state == CopyState.DAMAGED and heals(copy):
        await fabric.catalog.call(queries.start_heal, job_id, copy.id, fabric.now())
        log.info("copy.healing", job_id=job_id, copy=copy.id, reason=row.reason)
        row = await fabric.catalog.call(queries.job_copy, job_id, copy.id)
    if row is None or row.state not in PENDING_STATES:
        # Never copy a job twice, nor one this copy should not hold.
        await _send_control(channel, op="skip")
        return
    await _send_control(channel, op="resume", offset=row.bytes_done)
    library = fabric.library_of(copy)
    # Written from the start, the job is read back behind the writer; resumed, it is
    # read back whole once written (what came before was written by another session).
    readback = ReadBack(drive) if row.bytes_done == 0 else None
    writer = JobWriter(library, drive, fabric.catalog, fabric.now, job_id, copy.id, offset=row.bytes_done, readback=readback)
    try:
        async with beside(readback.run if readback else trio.sleep_forever):
            try:
                complete = await _receive_chunks(fabric, channel, writer, job_id, total)
                await writer.close()
            except BaseException:
                await writer.abort()
                raise
            if not complete:  # the source could not be read further: what came is committed
                await _send_control(channel, op="kept", offset=writer.offset)
                return
            reason, mismatch = await _verify(fabric, copy, drive, job_id, total, digest, readback)
    finally:
        drive.leave()  # read back and done with: another stream's read may need it before our next job
    if reason:
        await fabric.catalog.call(queries.reset_job_copy, job_id, copy.id, reason, fabric.now())
        await _send_control(channel, op="failed", reason=reason, mismatch=mismatch)
        raise CopyFailed(reason)
    segments = await fabric.catalog.call(queries.segments, job_id, copy.id)

    await fabric.mediaagent_of(copy).disk_library.save(attrs.evolve(index, copy_id=copy.id, segments=tuple(segments)))
    # Stamped by the receiving MediaAgent, by its site's clock.
    await fabric.catalog.call(
        queries.set_job_copy_state, job_id, copy.id, CopyState.AVAILABLE, "copied", fabric.site_now(copy.site)
    )
    log.info("auxcopy.job_available", job_id=job_id, copy=copy.id, site=copy.site, bytes=total)
    await _send_control(channel, op="done")


async def _receive_chunks(fabric: Fabric, channel: SecureChannel, writer: JobWriter, job_id: int, total: int) -> bool:
    """Write the job's chunks as they come (the next is received and opened meanwhile);
    True once it is whole, False if the sender could not read the rest of it."""
    take = partial(_take_chunks, channel, job_id, writer.offset, total)
    async with read_ahead(take, depth=AHEAD) as chunks:
        async for payload in chunks:
            if payload is None:
                return False
            await writer.write(payload)
            await writer.commit()
    if writer.offset != total:
        raise CopyFailed(f"job {job_id}: stream ended at {writer.offset} of {total} bytes")
    return True


async def _take_chunks(channel: SecureChannel, job_id: int, start: int, total: int, emit: Emit[bytes | None]) -> None:
    """Each chunk's payload in order, up to the final one; None if the sender says the
    source could not be read further."""
    n, got = 0, start
    while True:
        message = await channel.receive()
        if message.context == CONTROL and _control(message.payload)["op"] == "unreadable":
            await emit(None)
            return
        if message.context != _chunk_context(job_id, n):
            raise CopyFailed(f"protocol: expected chunk {n} of job {job_id}, got {message.context!r}")
        got += len(message.payload)
        if got > total:
            raise CopyFailed(f"job {job_id}: sender sent more than {total} bytes")
        await emit(message.payload)
        if message.final:
            return
        n += 1


async def _verify(
    fabric: Fabric, copy: CopySpec, drive: Drive, job_id: int, total: int, digest: str, readback: ReadBack | None
) -> tuple[str, bool]:
    """The job as the destination media hold it, read back (behind the writer, or now):
    the copy counts only if its segments hold the job exactly and it hashes to the
    backup's digest. ('', False) if it does; else why not, and whether it is the digest
    that differs (the one failure a damaged source also causes)."""
    segments = await fabric.catalog.call(queries.segments, job_id, copy.id)
    problem = coverage_problem(segments, total)
    if problem:
        return f"job {job_id} on {copy.id}: {problem}", False
    try:
        media = await readback.digest() if readback else await read_digest(fabric.library_of(copy), drive, segments)
    except DAMAGE as e:
        return f"job {job_id}: cannot read it back from {copy.id}: {e}", False
    if media != digest:
        return f"job {job_id}: digest on {copy.id} does not match the source", True
    return "", False
