"""A job's data stream on a copy's media: written in blocks, spanning cartridges,
committed chunk by chunk; read back by stream offset."""

from __future__ import annotations

import errno
import hashlib
import math
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import attrs
import structlog
import trio

from vtlfabric import blocking
from vtlfabric.ahead import Emit, read_ahead
from vtlfabric.catalog import queries
from vtlfabric.catalog.db import Catalog
from vtlfabric.catalog.records import SegmentRecord
from vtlfabric.tape.image import EndOfMedium, TapeImage
from vtlfabric.tape.library import Drive, Library, MediaReadError, MediaWriteError, WrongCartridge
from vtlfabric.tape.reader import SpanReader
from vtlfabric.tape.records import Buffer, Record

log = structlog.get_logger()
WRITE_BATCH = 16 << 20  # bytes buffered before a trip to the drive (a chunk is at most this)
READ_BATCH = 4 << 20  # bytes a read-back takes from the drive in one trip


class DataMissing(OSError):
    """The media hold less of a job than the catalog says: a cartridge cut short, a file gone."""


@attrs.define
class JobWriter:
    """Appends a job's stream to the copy's cartridges, from ``offset`` on.

    Nothing counts until ``commit()``: it flushes the image and records, in one
    catalog transaction, the segment's length, the cartridge's end of data and
    the copy's progress. A crash before that leaves bytes past the committed end
    of data, which the library trims away on restart.

    A write that fails (``MediaWriteError``) retires the cartridge as *bad*: what was
    committed on it stays and is read back from it; what was written since the last
    checkpoint is written again on the next cartridge, as when a cartridge fills.
    """

    library: Library
    drive: Drive
    catalog: Catalog
    now: Callable[[], float]
    job_id: int
    copy_id: str
    offset: int = 0
    _partial: bytearray = attrs.field(factory=bytearray)  # less than a block
    _full: list[Buffer] = attrs.field(factory=list)  # whole blocks not yet sent to the drive
    _image: TapeImage | None = None
    _barcode: str = ""
    _seq: int = 0
    _seg_bytes: int = 0
    _seg_blocks: int = 0
    _committed_eod: int = 0
    _unsaved: list[Buffer] = attrs.field(factory=list)  # blocks written since the last checkpoint
    readback: ReadBack | None = None  # reads each committed range back behind the writer

    @property
    def barcodes(self) -> list[str]:
        return [self._barcode] if self._barcode else []

    async def write(self, data: Buffer) -> None:
        """Cut ``data`` into blocks; whole blocks go to the drive a batch at a time. The
        blocks are views of ``data``, not copies (so anything mutable is copied once first)."""
        view = memoryview(data if isinstance(data, bytes) else bytes(data))
        size = self.library.spec.block_size
        if self._partial:  # finish the block the last write began
            need = size - len(self._partial)
            self._partial += view[:need]
            view = view[need:]
            if len(self._partial) < size:
                return
            self._full.append(bytes(self._partial))
            self._partial.clear()
        whole = len(view) - len(view) % size
        for at in range(0, whole, size):
            self._full.append(view[at : at + size])
            if len(self._full) * size >= WRITE_BATCH:
                await self._write_full_blocks()
        self._partial += view[whole:]

    async def commit(self) -> None:
        blocks, self._full = self._full, []
        if self._partial:  # a checkpoint ends on a block boundary, so the tail goes as a short block
            blocks.append(bytes(self._partial))
            self._partial.clear()
        eod = await self._write_blocks(blocks, sync=True) if blocks else None
        if self._image is not None:
            await self._checkpoint(eod)

    async def close(self) -> None:
        """Commit the rest and close the tape file; the cartridge stays appendable."""
        await self.commit()
        if self._image is not None:
            await self._end_file("appendable")

    async def abort(self) -> None:
        """Drop what was not committed; the unterminated file is closed by the next writer."""
        if self._image is None:
            return
        with trio.CancelScope(shield=True):
            await blocking.run_sync(self._image.truncate, self._committed_eod)

    async def _write_full_blocks(self) -> None:
        blocks, self._full = self._full, []
        if blocks:
            await self._write_blocks(blocks)

    async def _write_blocks(self, blocks: list[Buffer], *, sync: bool = False) -> int | None:
        """Blocks go to the drive in batches: one thread hand-off each, not one per block.
        With ``sync``, the trip that writes the last of them also makes the image durable
        and returns its end of data (a checkpoint then needs no trip of its own)."""
        eod = None
        while blocks:
            if self._image is None:
                await self._mount_next()
            try:
                written, eod = await self._write_to_drive(blocks, sync)
            except MediaWriteError as e:
                blocks = await self._retire(e) + blocks
                continue
            await self.drive.moved(sum(len(b) for b in blocks[:written]))
            self._unsaved += blocks[:written]
            for block in blocks[:written]:
                self._seg_bytes += len(block)
                self.offset += len(block)
            self._seg_blocks += written
            blocks = blocks[written:]
            if blocks and self._seg_blocks == 0:
                raise OSError(
                    f"a {len(blocks[0])}-byte block does not fit in a new tape file on {self._barcode} in {self.library.spec.id}"
                )
            if blocks:
                await self._span()
        return eod

    async def _write_to_drive(self, blocks: list[Buffer], sync: bool) -> tuple[int, int | None]:
        if self.library.block_faults.take_write(self._barcode):
            log.warning(
                "fault.fired", target=f"cartridge:{self._barcode}", action="write-error", job_id=self.job_id, copy=self.copy_id
            )
            raise MediaWriteError(f"cartridge {self._barcode} in {self.library.spec.id}: write failed")
        if self.library.state_full:  # the disk under the images, not the cartridge: it stays good
            raise OSError(errno.ENOSPC, f"no space left for the image of {self._barcode} in {self.library.spec.id}")
        return await self.drive.io(_write_then_sync, self._image, blocks, sync, self._release_from)

    @property
    def _release_from(self) -> int | None:
        """Where a sync gives the pages back from, in the sync's own trip (no await may
        come between the catalog's checkpoint and the writer's record of it: an abort
        there would cut what the catalog counts); None if a read-back will read them."""
        return self._committed_eod if self.readback is None else None

    async def _retire(self, error: MediaWriteError) -> list[Buffer]:
        """A write failed: mark the cartridge bad (never claimed again) and return the
        blocks to write again, from the last checkpoint, on the next cartridge."""
        redo, self._unsaved = self._unsaved, []
        size = sum(len(b) for b in redo)
        self.offset -= size
        self._seg_bytes -= size
        self._seg_blocks -= len(redo)
        barcode = self._barcode
        await self.catalog.call(queries.mark_cartridge_bad, barcode, self._committed_eod, str(error), self.now())
        log.error(
            "cartridge.bad",
            barcode=barcode,
            library=self.library.spec.id,
            job_id=self.job_id,
            copy=self.copy_id,
            error=str(error),
        )
        self._image, self._barcode = None, ""
        await self._drain()  # the cartridge leaves the drive: what was committed on it is read back first
        await self.drive.unload()  # its uncommitted tail is trimmed at the next start
        log.info("job.rewriting", job_id=self.job_id, copy=self.copy_id, previous=barcode, offset=self.offset, bytes=size)
        return redo

    async def _span(self) -> None:
        """The cartridge is full: close it and carry on on the next one."""
        await self._checkpoint()
        old = self._barcode
        await self._end_file("full")
        await self._drain()
        await self._mount_next()
        log.info("job.spanned", job_id=self.job_id, copy=self.copy_id, barcode=self._barcode, previous=old)

    async def _checkpoint(self, eod: int | None = None) -> None:
        """Record in the catalog what the image holds durably (``eod``: synced already)."""
        if eod is None:
            eod = await self.drive.io(_sync, self._image, self._release_from)
        await self.catalog.call(
            partial(
                queries.checkpoint,
                job_id=self.job_id,
                copy_id=self.copy_id,
                seq=self._seq,
                length=self._seg_bytes,
                blocks=self._seg_blocks,
                barcode=self._barcode,
                eod=eod,
                bytes_done=self.offset,
                now=self.now(),
            )
        )
        if self.readback is not None:  # it gives the range's pages back once it has read it
            self.readback.feed(self._image, self._committed_eod, eod)
        self._committed_eod = eod
        self._unsaved.clear()

    async def _drain(self) -> None:
        if self.readback is not None:
            await self.readback.drain()

    async def _end_file(self, state: str) -> None:
        await self.drive.io(self._image.end_file)
        eod = await self.drive.io(self._image.flush)
        await self.catalog.call(queries.set_cartridge_state, self._barcode, state, eod)
        self._committed_eod = eod
        self._image = None

    async def _mount_next(self) -> None:
        """Load the next cartridge with room and open a tape file on it for this job."""
        while True:
            barcode = await self.library.claim_for_append(self.copy_id)
            try:
                image = await self.drive.load(barcode, write=True)
                await self.drive.locate(image.end_offset())  # appending starts at the end of data
                # Room for a whole block, or a cartridge with a few KiB left would be
                # claimed again and again, and no job with data could ever start on it.
                file_no = await self.drive.io(partial(image.begin_file, first_block=self.library.spec.block_size))
                break
            except EndOfMedium:  # too little room left for one more block: retire it
                eod = await self.drive.io(image.flush)
                await self.catalog.call(queries.set_cartridge_state, barcode, "full", eod)
                await self.drive.unload()
            except WrongCartridge as e:  # never written over: set aside, and the next one is tried
                # What it already holds stays committed: an eod of 0 would have it relabelled
                # (its jobs' data gone) at the next start.
                await self.catalog.call(queries.mark_cartridge_bad, barcode, None, str(e), self.now())
                log.error("cartridge.wrong_label", barcode=barcode, library=self.library.spec.id, error=str(e))
            except BaseException:
                # A failed load let the claim go; a loaded cartridge is let go once it is back in its slot.
                await self.drive.unload()
                raise
        eod = await self.drive.io(image.flush)
        self._seq = await self.catalog.call(queries.open_segment, self.job_id, self.copy_id, barcode, file_no, self.offset, eod)
        log.debug("segment.opened", job_id=self.job_id, copy=self.copy_id, barcode=barcode, file_no=file_no, seq=self._seq)
        self._image, self._barcode = image, barcode
        self._seg_bytes = self._seg_blocks = 0
        self._committed_eod = eod


@attrs.define(eq=False)
class ReadBack:
    """Reads a job back right behind its writer, as a tape drive's read heads check each
    block its write heads just wrote: each range the writer commits (synced) is read
    from the image and hashed while the next one is written, so once the writer is done
    the SHA-256 of what the media hold is ready, without a second pass over the job. The
    read finds the synced pages in the page cache; it then gives them back. (Dropping
    them first, to read what the disk holds, cost a third of the copy's speed.)

    ``run`` is its task (in the receiver's nursery). The writer feeds it committed ranges
    and drains it before a cartridge leaves the drive. A read that fails stops the read
    back, and ``digest()`` raises that error."""

    drive: Drive
    _sha: Any = attrs.field(factory=hashlib.sha256)
    _ranges: tuple[Any, Any] = attrs.field(factory=lambda: trio.open_memory_channel[tuple[TapeImage, int, int]](math.inf))
    _error: Exception | None = None
    _fed: int = 0
    _read: int = 0
    _caught_up: trio.Event = attrs.field(factory=trio.Event)

    def feed(self, image: TapeImage, start: int, end: int) -> None:
        if end > start:
            self._ranges[0].send_nowait((image, start, end))  # a range's ends, not its data: unbounded is fine
            self._fed += 1

    async def drain(self) -> None:
        """Wait until every range fed so far is read back (or the read back failed)."""
        while self._read < self._fed:
            self._caught_up = trio.Event()
            await self._caught_up.wait()

    async def digest(self) -> str:
        """The SHA-256 of everything fed, as read back; the read's error if one failed."""
        await self.drain()
        if self._error is not None:
            raise self._error
        return self._sha.hexdigest()

    async def run(self) -> None:
        async for image, start, end in self._ranges[1]:
            if self._error is None:
                try:
                    await self.drive.io(_hash_span, image, start, end, self._sha)
                except Exception as e:  # raised to whoever asks for the digest
                    self._error = e
            self._read += 1
            self._caught_up.set()


def _hash_span(image: TapeImage, start: int, end: int, sha: Any) -> None:
    for part in image.span_data(start, end):
        sha.update(part)
    image.release(start, end)  # synced and checked: the media hold it, the cache need not


def _next_span(image: TapeImage, spans: SpanReader, limit: int) -> tuple[list[Record], bytes]:
    """The next span of a tape file, its pages then given back: a drive streams past
    what it read (``TapeImage.release``)."""
    records, data = spans.next_span(limit)
    if records:
        image.release(records[0].offset, records[-1].end)
    return records, data


def _write_then_sync(image: TapeImage, blocks: list[Buffer], sync: bool, release_from: int | None) -> tuple[int, int | None]:
    """Append what fits; if all of it did and ``sync``, make it durable: (blocks written, end of data or None)."""
    written = image.write_blocks(blocks)
    return written, _sync(image, release_from) if sync and written == len(blocks) else None


def _sync(image: TapeImage, release_from: int | None) -> int:
    """Make the image durable and return its end of data; with ``release_from``, give the
    pages from there on back in the same trip."""
    eod = image.flush()
    if release_from is not None:
        image.release(release_from, eod)
    return eod


def _file_offset(image: TapeImage, file_no: int) -> int:
    """Where a tape file starts on the image (0 if it is not found: the read will say so)."""
    return next((f.offset for f in image.data_files() if f.file_no == file_no), 0)


def _check_readable(library: Library, seg: SegmentRecord, block: int, record: Record) -> None:
    fault = library.block_faults.unreadable(seg.barcode, seg.file_no, block, record.offset, record.end)
    if fault is None:
        return
    log.warning(
        "fault.fired",
        target=f"cartridge:{seg.barcode}",
        action="read-error",
        at=str(fault),
        file_no=seg.file_no,
        block=block,
        job_id=seg.job_id,
        copy=seg.copy_id,
    )
    raise MediaReadError(
        f"cartridge {seg.barcode} in {library.spec.id}: cannot read file {seg.file_no} block {block} (job {seg.job_id})"
    )


async def read_segments(
    library: Library,
    drive: Drive,
    segments: list[SegmentRecord],
    start: int = 0,
    batch: int = 2**20,
    *,
    direct: bool = False,
) -> AsyncIterator[bytes]:
    """Yield a job's stream from ``start`` on, reading its segments in order: whole blocks
    at a time, at most ``batch`` bytes (but at least a block) each. ``direct``: read
    around the page cache (``TapeImage.read_spans``)."""
    async for data in _read_segments(library, drive, segments, start, batch, direct):
        yield data
    # Done with the last cartridge: it stays loaded, and whoever needs it may have it. Not
    # on a failure: a generator left unfinished is closed later, when the drive may be
    # another holder's.
    drive.leave()


async def _read_segments(
    library: Library, drive: Drive, segments: list[SegmentRecord], start: int, batch: int, direct: bool
) -> AsyncIterator[bytes]:
    position = start
    for seg in sorted(segments, key=lambda s: s.offset):
        if seg.length == 0 or seg.offset + seg.length <= position:
            continue
        if seg.offset > position:
            raise DataMissing(f"job {seg.job_id} on {seg.copy_id}: no data for bytes {position}..{seg.offset}")
        await drive.mount_for_read(seg.barcode)
        image = drive.image  # the one the span reader reads, whatever the drive holds later
        await drive.locate(_file_offset(image, seg.file_no))
        try:
            spans = await drive.io(partial(image.read_spans, seg.file_no, direct=direct))
        except KeyError:
            raise DataMissing(f"job {seg.job_id}: cartridge {seg.barcode} holds no tape file {seg.file_no}") from None
        pos, block = seg.offset, 0
        end = seg.offset + seg.length
        faulty = seg.barcode in library.block_faults.reads
        while pos < end:
            got, data = await drive.io(_next_span, image, spans, batch)
            if not got:
                raise DataMissing(f"job {seg.job_id}: cartridge {seg.barcode} file {seg.file_no} ends {end - pos} bytes early")
            at = pos
            for record in got:
                block += 1
                at += record.length
                if faulty and at > position:  # only blocks whose data is wanted are read; the rest are spaced over
                    _check_readable(library, seg, block, record)
            if len(data) > end - pos:
                data = data[: end - pos]
            await drive.moved(len(data))
            lo = max(0, position - pos)
            if lo < len(data):
                yield data[lo:] if lo else data
            pos += len(data)
            position = max(position, pos)


async def read_digest(library: Library, drive: Drive, segments: list[SegmentRecord]) -> str:
    """The SHA-256 of a job's stream as the media hold it now.

    The reads go around the page cache: they check what the disk holds, not a cached
    copy, and take no fresh cache pages, which cost the loop up to 20 ms of lag on a VM
    (docs/PERFORMANCE.md, "The direct reads round"). A direct read waits on the disk
    and hardly uses a core, so the next batch is read while this one is hashed. Where
    reads fall back to buffered ones (``tape/direct.py``), each is a copy out of the
    cache, and with both threads busy on 2 cores the loop's own lag about doubles
    (still a few ms): verify is then faster than it needs to be, never slower."""
    sha = hashlib.sha256()

    async def read(emit: Emit[bytes]) -> None:
        async for data in read_segments(library, drive, segments, batch=READ_BATCH, direct=True):
            await emit(data)

    async with read_ahead(read, depth=2) as chunks:
        async for data in chunks:
            await blocking.run_sync(sha.update, data)  # bulk hashing stays off the loop
    return sha.hexdigest()


def coverage_problem(segments: list[SegmentRecord], total: int) -> str:
    """'' if the segments hold bytes 0..total exactly once, in order; else what is wrong."""
    position = 0
    for seg in sorted(segments, key=lambda s: (s.offset, s.seq)):
        if seg.length == 0:
            continue
        if seg.offset != position:
            what = "overlap" if seg.offset < position else "gap"
            return f"{what} at byte {min(seg.offset, position)} (segment {seg.seq} on {seg.barcode})"
        position += seg.length
    return "" if position == total else f"segments hold {position} of {total} bytes"
