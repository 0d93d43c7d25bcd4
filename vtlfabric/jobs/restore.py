"""Restore a job, or a client's latest point in time, from a chosen copy at a chosen site.

A restore uses only the media and the index at the copy's site: for a secondary
copy that is the site's disk library, which also carries the copy's segment map,
so a DR restore works with the production site gone.

A large object (``SYNC_FROM`` and up) counts as restored once it is on disk: it is
synced as it is written and its pages go back to the kernel (``files``), since the
client reads it, not us; the directories naming such objects, and those made for them,
are synced before the job counts as done. Smaller objects are left to the kernel's
writeback, as restore tools leave them: there a sync per object (a journal commit each)
would cost more than the pages it frees, and a tree of small IFS objects would pay one
for each. Each object is written under a temporary name and renamed into place once
whole, so a failed write never leaves part of an object under its name (a crash of the
machine itself can still lose a small object's bytes that were not yet written back).
A restore killed mid-object leaves its temporary file; the next restore into that
directory removes it (partials.py).

A job whose data on the copy turns out damaged (unreadable, cut short, or objects that
do not verify) fails the restore and is marked *damaged* on that copy (see damage.py),
so the next restore of the latest point picks an older one, and a copy that heals
copies it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

import attrs
import structlog

from vtlfabric import blocking, errors
from vtlfabric.ahead import Emit, read_ahead
from vtlfabric.bytequeue import ByteQueue
from vtlfabric.catalog import queries
from vtlfabric.catalog.records import JobRecord
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.files import release_pages, sync_data, sync_directory
from vtlfabric.jobs import partials, progress
from vtlfabric.jobs.damage import DAMAGE, mark_damaged
from vtlfabric.media import Incompatible
from vtlfabric.site.index import IndexEntry, IndexFormatError, JobIndex
from vtlfabric.tape.image import TapeFormatError
from vtlfabric.tape.library import CartridgeOutside, DriveFailed, LibraryOffline, MediaFailure, WrongCartridge
from vtlfabric.tape.stream import READ_BATCH, read_segments
from vtlfabric.vocab import CopyState

log = structlog.get_logger()

SYNC_FROM = 1 << 20  # bytes: an object this large is synced as written, and its pages given back


class RestoreError(errors.Failed):
    pass


# What reading a job back can fail with: each is a failed restore (or drill client, or
# verified job) with its reason, never a crash.
RESTORE_FAILURES = (
    RestoreError,
    IndexFormatError,
    TapeFormatError,
    LibraryOffline,
    MediaFailure,
    WrongCartridge,
    CartridgeOutside,
    DriveFailed,
    Incompatible,
    OSError,
)


@attrs.frozen
class RestoreRequest:
    client: str
    dest: Path
    job_id: int | None = None
    copy_id: str | None = None
    site: str | None = None


@attrs.frozen
class RestoreResult:
    client: str
    copy: str
    site: str
    jobs: tuple[int, ...]
    dest: Path
    objects: int
    bytes: int
    failures: tuple[str, ...] = ()
    subclients_missing: tuple[str, ...] = ()
    # Valid jobs newer than the point restored that the copy does not hold (the latest
    # point there is older than the client's), each with its state on the copy.
    newer_jobs_missing: tuple[str, ...] = ()


@attrs.define
class _Totals:
    objects: int = 0
    bytes: int = 0
    failures: list[str] = attrs.field(factory=list)
    swept: set[Path] = attrs.field(factory=set)  # directories cleared of killed restores' partial files


def point_in_time(jobs: list[JobRecord], copy_id: str | None = None) -> list[JobRecord]:
    """The chain that rebuilds a subclient's latest state held on ``copy_id`` (any copy if
    None): its latest full there, then the latest differential after it, then the
    incrementals after that. The chain stops at the first valid job the copy lacks,
    since every later job builds on it."""

    def usable(job: JobRecord) -> bool:
        return copy_id is None or job.copies.get(copy_id) == CopyState.AVAILABLE

    valid = sorted((j for j in jobs if j.valid), key=lambda j: j.id)
    fulls = [j for j in valid if j.type == "full" and usable(j)]
    if not fulls:
        return []
    chain = [fulls[-1]]
    for job in (j for j in valid if j.id > fulls[-1].id):
        if not usable(job):
            break
        if job.type == "differential":
            chain = [chain[0], job]  # it holds every change since the full: what came between is superseded
        elif job.type == "incremental":
            chain.append(job)
    return chain


async def _resolve_copy(fabric: Fabric, request: RestoreRequest) -> CopySpec:
    """The copy to restore from: the one named, or with only a site, the best copy of the
    client's policy at that site, or else the primary."""
    try:
        policy = fabric.config.policy_of(request.client)
    except errors.NotFound:
        raise RestoreError(f"client: no client named {request.client!r} in any policy") from None
    copies = [fabric.copy(c.id) for c in policy.copies]
    if request.site and not request.copy_id:
        return await _copy_at_site(fabric, request, copies)
    copy_id = request.copy_id or fabric.primary_of(policy.name).id
    copy = next((c for c in copies if c.id == copy_id), None)
    if copy is None:
        raise RestoreError(f"copy: {copy_id!r} is not a copy of policy {policy.name} ({', '.join(c.id for c in copies)})")
    if request.site and request.site != copy.site:
        raise RestoreError(f"site: copy {copy.id} keeps its media at site {copy.site}, not {request.site}")
    return copy


async def _copy_at_site(fabric: Fabric, request: RestoreRequest, copies: list[CopySpec]) -> CopySpec:
    """The policy's copy at the site to restore from. For a job: one that holds it. For the
    latest point in time: one that can rebuild it at all, then one whose library can be used
    now, then the one whose point in time is newest. Then a synchronous copy, then the
    config's order."""
    here = [c for c in copies if c.site == request.site]
    if not here:
        where = ", ".join(f"{c.id} at {c.site}" for c in copies)
        raise RestoreError(f"site: policy {copies[0].policy} has no copy at site {request.site} (its copies: {where})")
    jobs = await fabric.catalog.call(queries.list_jobs, request.client)

    def reach(copy: CopySpec) -> tuple[int, int]:
        """For a job, (1 if the copy holds it, 0); for the latest point in time, (the subclients
        it can rebuild, the newest job of those chains)."""
        if request.job_id is not None:
            return int(_state_of(jobs, request.job_id, copy.id) == CopyState.AVAILABLE), 0
        chains = [point_in_time([j for j in jobs if j.subclient == sub], copy.id) for sub in {j.subclient for j in jobs}]
        return sum(1 for c in chains if c), max((c[-1].id for c in chains if c), default=0)

    def rank(copy: CopySpec) -> tuple[bool, bool, tuple[int, int], bool]:
        got = reach(copy)
        return got[0] > 0, not fabric.library_of(copy).unavailable(), got, copy.kind == "synchronous"

    best = max(here, key=rank)  # max keeps the first of equals: the config's order
    if not reach(best)[0]:
        if request.job_id is not None:
            states = "; ".join(f"{c.id}: {_state_of(jobs, request.job_id, c.id)}" for c in here)
            raise RestoreError(f"job {request.job_id} is not available on any copy at site {request.site} ({states})")
        raise RestoreError(
            f"client {request.client} has no valid full backup available on any copy at site {request.site} "
            f"({', '.join(c.id for c in here)})"
        )
    return best


def _state_of(jobs: list[JobRecord], job_id: int, copy_id: str) -> str:
    return next((j.copies.get(copy_id) or "none" for j in jobs if j.id == job_id), "no such job of this client")


async def _chain(fabric: Fabric, request: RestoreRequest, copy: CopySpec) -> tuple[list[JobRecord], list[str], list[str]]:
    """The jobs to restore, the subclients the copy holds nothing restorable of, and the
    valid jobs newer than the chain the copy does not hold (with their state there)."""
    jobs = await fabric.catalog.call(queries.list_jobs, request.client)
    if request.job_id is not None:
        chosen = [j for j in jobs if j.id == request.job_id]
        if not chosen:
            raise RestoreError(f"job: client {request.client} has no job {request.job_id}")
        state = chosen[0].copies.get(copy.id)
        if state != CopyState.AVAILABLE:
            why = chosen[0].reasons.get(copy.id)
            raise RestoreError(
                f"job {chosen[0].id} is not available on copy {copy.id} (state: {state or 'none'}" + (f": {why})" if why else ")")
            )
        return chosen, [], []
    chosen, missing, newer = [], [], []
    for sub in sorted({j.subclient for j in jobs}):
        of_sub = [j for j in jobs if j.subclient == sub]
        chain = point_in_time(of_sub, copy.id)
        chosen += chain
        if not chain:
            missing.append(sub)
        after = chain[-1].id if chain else 0
        newer += [
            f"job {j.id} ({sub} {j.type}): {j.copies.get(copy.id) or 'not on the copy'}"
            for j in of_sub
            if j.valid and j.id > after and j.copies.get(copy.id) != CopyState.AVAILABLE
        ]
    if not chosen:
        raise RestoreError(
            f"client {request.client} has no valid full backup available on copy {copy.id}"
            + (f" ({'; '.join(newer)})" if newer else "")
        )
    return chosen, missing, newer


async def run_restore(fabric: Fabric, request: RestoreRequest) -> RestoreResult:
    copy = await _resolve_copy(fabric, request)
    chain, missing, newer = await _chain(fabric, request, copy)
    bound = log.bind(client=request.client, copy=copy.id, site=copy.site)
    bound.info("restore.started", jobs=[j.id for j in chain], dest=str(request.dest))
    if missing:
        bound.warning("restore.subclients_missing", subclients=missing)
    if newer:
        bound.warning("restore.older_point", newer_jobs_missing=newer)
    totals = _Totals()
    progress.current().plan({j.id: j.bytes for j in chain})
    for job in chain:
        index = await _index(fabric, copy, job.id)
        before = len(totals.failures)
        try:
            await _restore_job(fabric, copy, job, index, request.dest, totals)
        except DAMAGE as e:
            await mark_damaged(fabric, copy, job.id, f"restore: {e}")
            raise
        if len(totals.failures) > before:
            found = totals.failures[before:]
            await mark_damaged(fabric, copy, job.id, f"restore: {len(found)} object(s) failed verification: {found[0]}")
    failures = totals.failures
    if failures:
        bound.error("restore.failed", failures=failures[:10])
        raise RestoreError(f"{len(failures)} object(s) failed verification: " + "; ".join(failures[:5]))
    bound.info("restore.completed", objects=totals.objects, bytes=totals.bytes)
    return RestoreResult(
        request.client,
        copy.id,
        copy.site,
        tuple(j.id for j in chain),
        request.dest,
        totals.objects,
        totals.bytes,
        subclients_missing=tuple(missing),
        newer_jobs_missing=tuple(newer),
    )


async def _index(fabric: Fabric, copy: CopySpec, job_id: int) -> JobIndex:
    ma = fabric.mediaagent_of(copy)
    index = await ma.index_for(job_id, copy.id, copy.primary)
    if not index.segments:  # the primary's index cache has no segment map: take it from the catalog
        segments = await fabric.catalog.call(queries.segments, job_id, copy.id)
        index = attrs.evolve(index, copy_id=copy.id, segments=tuple(segments))
    return index


async def _restore_job(fabric: Fabric, copy: CopySpec, job: JobRecord, index: JobIndex, dest: Path, totals: _Totals) -> None:
    library = fabric.library_of(copy)
    entries = sorted(index.entries, key=lambda e: e.offset)
    # Objects that lie back to back over the whole stream, each checked against its own
    # digest, check the stream too: hashing it as well was a second SHA-256 pass.
    tiled = _tiles(entries, index.bytes)
    unpacker = _Unpacker(dest / job.subclient, entries, hash_stream=not tiled, swept=totals.swept)
    async with library.drive(f"restore {job.client} job {job.id} from {copy.id}") as drive:

        async def read(emit: Emit[bytes]) -> None:
            async for data in read_segments(library, drive, list(index.segments), batch=READ_BATCH):
                await emit(data)

        async with read_ahead(read, depth=2) as batches:  # the next batch is read while this one is unpacked
            async for data in batches:
                for entry, failure in await blocking.run_sync(unpacker.feed, data):
                    if failure:
                        totals.failures.append(f"job {job.id} {job.subclient}:{entry.path}: {failure}")
                    else:
                        totals.objects += 1
                        totals.bytes += entry.length
                    progress.current().at(job.id, entry.offset + entry.length)
    await blocking.run_sync(unpacker.sync_directories)
    progress.current().job_done(job.id)
    if unpacker.left:
        totals.failures += [f"job {job.id} {job.subclient}:{e.path}: missing from media" for e in unpacker.left]
    elif unpacker.size != index.bytes:
        totals.failures.append(f"job {job.id}: the media hold {unpacker.size} bytes of its stream, not {index.bytes}")
    elif not tiled and unpacker.digest() != index.digest:
        totals.failures.append(f"job {job.id}: stream digest does not match the index")


def _tiles(entries: list[IndexEntry], total: int) -> bool:
    """The objects (by offset) lie back to back from byte 0 to ``total``, as a backup writes them."""
    position = 0
    for entry in entries:
        if entry.offset != position:
            return False
        position += entry.length
    return position == total


@attrs.define(eq=False)
class _Unpacker:
    """A job's stream cut back into its objects, a batch at a time, in a worker thread:
    each object is hashed, and written once it is whole and matches its digest; the
    stream is hashed too if ``hash_stream``. Batches are queued as they came, never
    copied on the loop."""

    root: Path
    entries: list[IndexEntry]  # by offset
    hash_stream: bool = True
    size: int = 0  # bytes fed
    _sha: Any = attrs.Factory(hashlib.sha256)
    _queue: ByteQueue = attrs.Factory(ByteQueue)
    _start: int = 0  # the stream offset of the queue's first byte
    _next: int = 0  # the next entry to write
    _directories: set[Path] = attrs.Factory(set)  # that got a new name
    swept: set[Path] = attrs.Factory(set)  # directories cleared of killed restores' partial files, this restore

    @property
    def left(self) -> list[IndexEntry]:
        return self.entries[self._next :]

    def digest(self) -> str:
        return self._sha.hexdigest()

    def feed(self, data: bytes) -> list[tuple[IndexEntry, str]]:
        """Take the next batch; the objects it completed, each with its failure ('' if written)."""
        self.size += len(data)
        if self.hash_stream:
            self._sha.update(data)
        self._queue.append(data)
        done = []
        while self._next < len(self.entries) and self._whole(entry := self.entries[self._next]):
            done.append((entry, self._write(entry, self._queue.parts(entry.offset - self._start, entry.length))))
            self._next += 1
        consumed = self.entries[self._next].offset - self._start if self.left else self._queue.size
        consumed = max(0, min(consumed, self._queue.size))
        self._queue.consume(consumed)
        self._start += consumed
        return done

    def _whole(self, entry: IndexEntry) -> bool:
        return entry.offset + entry.length <= self._start + self._queue.size

    def _write(self, entry: IndexEntry, parts: list[memoryview]) -> str:
        """Verify, then write; a bad object is reported and never written."""
        if not _matches(entry, parts):
            return "digest mismatch"
        target = self.root / entry.path.lstrip("/")
        if self.root.resolve() not in target.resolve().parents:
            return "path escapes the restore directory"
        made = _make_directories(target.parent)
        self._sweep(target.parent)
        durable = entry.length >= SYNC_FROM
        _put(target, parts, durable)
        if durable:
            self._directories.update(made)
        return ""

    def _sweep(self, directory: Path) -> None:
        if directory not in self.swept:
            self.swept.add(directory)
            for path in partials.remove_stale(directory):
                log.warning("restore.partial_removed", path=str(path))

    def sync_directories(self) -> None:
        for directory in sorted(self._directories):
            sync_directory(directory)
        self._directories.clear()


def _matches(entry: IndexEntry, parts: list[memoryview]) -> bool:
    """The parts are hashed as they are: joining a big object holds the GIL for milliseconds."""
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part)
    return sha.hexdigest() == entry.sha256


def _make_directories(directory: Path) -> set[Path]:
    """Make ``directory`` and any missing parents. Returns the directories to sync for a
    durable name in it: itself, each one made, and the one the first was made in."""
    changed, top = {directory}, directory
    while not top.is_dir():
        top = top.parent
        changed.add(top)
    directory.mkdir(parents=True, exist_ok=True)
    return changed


def _put(target: Path, parts: list[memoryview], durable: bool) -> None:
    """Write under a temporary name beside ``target``, then rename it over: a write or
    sync that fails leaves no part of the object under its name, and the version an
    earlier job of the chain restored there stays whole."""
    partial = partials.partial_name(target)
    try:
        with os.fdopen(_create(partial), "wb") as f:
            f.writelines(parts)
            if durable:
                f.flush()
                sync_data(f.fileno())
                release_pages(f.fileno(), 0, f.tell())
        partial.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):  # the write's own error is the one to report
            partial.unlink()
        raise


def _create(path: Path) -> int:
    """A new file, never one already there: whatever is under the name (a link planted
    there) is removed first, so it is never written through. Killed restores' leftovers
    are removed by partials.remove_stale."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
