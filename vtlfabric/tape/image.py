"""A cartridge: one AWSTAPE image file, standard-labelled, one tape file per job.

How its records must follow each other is the label grammar in ``layout``;
reading them back is ``reader``. Every method blocks; callers run them in a
worker thread, one at a time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import BinaryIO

import attrs

from vtlfabric.files import release_pages, sync_directory
from vtlfabric.tape.direct import ImageReads
from vtlfabric.tape.labels import MAX_FILE_SEQUENCE, DatasetLabel1, DatasetLabel2, Vol1
from vtlfabric.tape.layout import FileInfo, Layout, Phase, closing_size
from vtlfabric.tape.reader import SpanReader, TapeFormatError, data_blocks, data_records, scan, span_data
from vtlfabric.tape.records import (
    MAX_CHUNK,
    Buffer,
    Record,
    check_chunk_size,
    encode_block,
    encoded_block_size,
    file_size,
    record_parts,
)
from vtlfabric.vocab import HERCULES_MAX_BLOCK

# The name config and the tests know Hercules' block limit by.
MAX_BLOCK_SIZE = HERCULES_MAX_BLOCK
MAX_FILES = MAX_FILE_SEQUENCE
_IOV_BATCH = 512  # buffers per pwritev: below every system's IOV_MAX (Linux: 1024)


class EndOfMedium(Exception):
    """The cartridge cannot take this without losing the room to close its file."""


def volser_of(barcode: str) -> str:
    """The VOL1 serial for a cartridge: its barcode without the media suffix."""
    return barcode[:6]


@attrs.frozen
class Mapped:
    """An image's map as it stood when it was closed, and the file as it was then (inode,
    size, modification and change times): an open that finds the same file skips the
    scan. Any write to it, ours or anyone's, changes one of them."""

    identity: tuple[int, int, int, int]
    layout: Layout

    def fits(self, f: BinaryIO) -> bool:
        return self.identity == _identity(f)


def _identity(f: BinaryIO) -> tuple[int, int, int, int]:
    st = os.fstat(f.fileno())
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _copy(layout: Layout) -> Layout:
    """A layout of its own: the image advances its layout as it writes."""
    current = attrs.evolve(layout.current) if layout.current is not None else None
    return attrs.evolve(layout, files=list(layout.files), current=current)


@attrs.define(eq=False)
class TapeImage:
    """An open cartridge image. Not thread-safe: one caller at a time.

    ``capacity`` bounds the image's size in bytes. Writes stop short of it by
    the room needed to close the open file, so a full cartridge can always be
    closed cleanly.
    """

    path: Path
    capacity: int
    _f: BinaryIO = attrs.field(repr=False)
    _layout: Layout = attrs.field(repr=False)
    block_size_limit: int = HERCULES_MAX_BLOCK
    chunk_size: int = MAX_CHUNK
    # Bytes past end_offset() that an interrupted append left: a torn record.
    torn_tail: int = attrs.field(default=0, init=False)
    _reads: ImageReads | None = attrs.field(default=None, init=False, repr=False)  # direct where the file takes it

    # ------------------------------------------------------------ opening

    @classmethod
    def create(
        cls,
        path: Path,
        barcode: str,
        capacity: int,
        block_size_limit: int = HERCULES_MAX_BLOCK,
        *,
        chunk_size: int = MAX_CHUNK,
    ) -> TapeImage:
        """Write a new, empty labelled image (replacing any file there) and open it.

        Written under a temporary name and renamed, so a crash leaves either
        the old file or a complete new one, never a torn VOL1.
        """
        _check_limits(block_size_limit, chunk_size)
        vol1 = Vol1(volser_of(barcode), owner=barcode)
        payload, _ = encode_block(vol1.encode(), 0, chunk_size)
        if len(payload) > capacity:
            raise ValueError(f"capacity {capacity} cannot hold even the volume label")
        tmp = path.with_name(path.name + ".new")
        with open(tmp, "wb", buffering=0) as f:
            _write_all(f, 0, payload)
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_directory(path.parent)
        return cls.open(path, capacity, block_size_limit=block_size_limit, chunk_size=chunk_size)

    @classmethod
    def open(
        cls,
        path: Path,
        capacity: int,
        *,
        repair: bool = False,
        block_size_limit: int = HERCULES_MAX_BLOCK,
        chunk_size: int = MAX_CHUNK,
        mapped: Mapped | None = None,
    ) -> TapeImage:
        """Open an image read/write and map its files, reading only headers and labels.

        Damage raises TapeFormatError. A torn last record is not damage but an
        interrupted append: the image ends before it, ``torn_tail`` says how
        many bytes it left, and with ``repair`` they are cut off at once.
        Without ``repair`` they are cut off by the next write, since appending
        after them would bury garbage inside the image. ``mapped``: the map from when
        the image was last closed, used if the file has not changed since.
        """
        _check_limits(block_size_limit, chunk_size)
        f = open(path, "r+b", buffering=0)  # noqa: SIM115 - the image owns the handle until close()
        try:
            if mapped is not None and mapped.fits(f):
                layout, torn = _copy(mapped.layout), 0
            else:  # the scan read every header: readahead brought the image into the cache
                layout, torn = scan(f, path, Layout(), file_size(f))
                release_pages(f.fileno(), 0, layout.end)
            if layout.vol1 is None:
                raise TapeFormatError(path, 0, "no complete VOL1 label: not a labelled tape image")
            image = cls(path, capacity, f, layout, block_size_limit, chunk_size)
            image.torn_tail = torn
            if repair:
                image._cut_torn_tail()
            image._reads = ImageReads.open(path, f)  # last: nothing after it can fail
        except BaseException:
            f.close()
            raise
        return image

    def close(self) -> None:
        try:
            if self._reads is not None:
                self._reads.close()
        finally:
            self._f.close()

    def close_mapped(self) -> Mapped | None:
        """Close, and return the map for the next open (None if the image ends in a torn
        record: the next open must find that again)."""
        mapped = Mapped(_identity(self._f), _copy(self._layout)) if not self.torn_tail else None
        self.close()
        return mapped

    def __enter__(self) -> TapeImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ looking

    @property
    def volser(self) -> str:
        assert self._layout.vol1 is not None
        return self._layout.vol1.volser

    @property
    def barcode(self) -> str:
        """The full barcode, kept in VOL1's owner field (the volser holds only 6 characters)."""
        assert self._layout.vol1 is not None
        return self._layout.vol1.owner or self._layout.vol1.volser

    def end_offset(self) -> int:
        return self._layout.end

    def data_files(self) -> list[FileInfo]:
        return self._layout.all_files()

    def open_file(self) -> int | None:
        """The number of the unterminated last file, if there is one."""
        return None if self._layout.current is None else self._layout.current.file_no

    # ------------------------------------------------------------ writing

    def begin_file(self, *, dsname: str | None = None, created: date | None = None, first_block: int = 1) -> int:
        """Start a tape file at the end of the image; return its number (hetget's FILENO).

        An unterminated last file (its writer crashed or gave up) is closed
        first, so the image stays well formed. Raises EndOfMedium if the new
        file could not hold a block of ``first_block`` bytes and still be closed.
        """
        self._close_open_file()
        file_no = len(self._layout.files) + 1
        if file_no > MAX_FILES:
            raise EndOfMedium(f"{self.path}: a standard-labelled tape holds at most {MAX_FILES} files")
        hdr1 = DatasetLabel1("HDR", dsname or f"VTLFABRIC.F{file_no:04d}", self.volser, file_no, created=created)
        hdr2 = DatasetLabel2("HDR", self.block_size_limit)
        parts, records = self._encode([hdr1.encode(), hdr2.encode(), None])
        block = encoded_block_size(first_block, self.chunk_size)
        if not self._fits(records[-1].end - records[0].offset + block + closing_size(self.chunk_size)):
            raise EndOfMedium(f"{self.path}: no room for another file")
        self._append(parts, records)
        return file_no

    def write_block(self, data: bytes) -> None:
        """Append one data block to the open file; EndOfMedium (nothing written) if it won't fit."""
        if self.write_blocks([data]) == 0:
            raise EndOfMedium(f"{self.path}: full at offset {self.end_offset()}")

    def write_blocks(self, blocks: Sequence[Buffer]) -> int:
        """Append as many of ``blocks`` as fit, in one write; return how many.

        Fewer than ``len(blocks)`` means the cartridge is full.
        """
        self._require_data_phase()
        for block in blocks:
            self._check_block(block)
        reserve = closing_size(self.chunk_size)
        used, count = 0, 0
        for block in blocks:
            size = encoded_block_size(len(block), self.chunk_size)
            if not self._fits(used + size + reserve):
                break
            used += size
            count += 1
        if count:
            self._append(*self._encode(blocks[:count]))
        return count

    def end_file(self) -> None:
        """Close the open file: tapemark, EOF1 (with its block count), EOF2, tapemark."""
        if self._layout.current is None:
            raise ValueError(f"{self.path}: no tape file is open")
        self._close_open_file()

    def flush(self) -> int:
        """Make everything written so far durable; return the end of valid data."""
        os.fsync(self._f.fileno())
        return self.end_offset()

    def truncate(self, offset: int) -> None:
        """Cut the image at ``offset``, which must be a record boundary after VOL1.

        The file table is rebuilt by rescanning from the start of the file that
        holds ``offset``; files before it are untouched.
        """
        layout = self._layout
        if not layout.after_vol1[0] <= offset <= layout.end:
            raise ValueError(
                f"{self.path}: cannot truncate at {offset}: valid data runs from {layout.after_vol1[0]} to {layout.end}"
            )
        starts = [info.offset for info in layout.all_files()]
        index = sum(1 for start in starts if start <= offset)
        new, torn = scan(self._f, self.path, layout.resume_at(max(index - 1, 0)), offset)
        if torn or new.end != offset:
            raise ValueError(f"{self.path}: offset {offset} is not a record boundary")
        self._f.truncate(offset)
        os.fsync(self._f.fileno())
        self._layout, self.torn_tail = new, 0

    # ------------------------------------------------------------ reading

    def read_file(self, file_no: int) -> Iterator[bytes]:
        """The data blocks of tape file ``file_no``, read lazily.

        The iterator seeks for itself, so it may be consumed a little at a time
        between other calls on this image.
        """
        return data_blocks(self._f, self.path, self._data_offset(file_no), lambda: self._layout.end)

    def read_records(self, file_no: int) -> Iterator[Record]:
        """As ``read_file``, each block with where its record lies in the image."""
        return data_records(self._f, self.path, self._data_offset(file_no), lambda: self._layout.end)

    def read_spans(self, file_no: int, *, direct: bool = False) -> SpanReader:
        """As ``read_records``, a span of blocks at a time: the fast way through a file.
        ``direct``: its reads go around the page cache where the file allows
        (``tape/direct.py``), and read what the disk holds; else the kernel reads ahead."""
        reads = self._reads if direct and self._reads is not None else ImageReads(self.path, self._f)
        return SpanReader(reads, self._data_offset(file_no), lambda: self._layout.end)

    def span_data(self, start: int, end: int) -> list[memoryview]:
        """The data of the whole data records from ``start`` to ``end``, as views (one read)."""
        return span_data(self._f, self.path, start, end)

    def release(self, start: int, end: int) -> None:
        """Let the kernel drop its cached pages of bytes ``start`` to ``end``: a drive
        streams past its data. Only clean pages go, never data not yet durable; a later
        read of them comes from the disk. Why: docs/PERFORMANCE.md, "the page cache"."""
        release_pages(self._f.fileno(), start, end)

    def _data_offset(self, file_no: int) -> int | None:
        files = self._layout.all_files()
        if not 1 <= file_no <= len(files):
            raise KeyError(f"{self.path}: no tape file {file_no} (the image holds {len(files)})")
        return files[file_no - 1].data_offset

    # ------------------------------------------------------------ internals

    def _encode(self, items: Sequence[Buffer | None]) -> tuple[list[Buffer], list[Record]]:
        """Encode blocks (None for a tapemark) to follow the image's last record."""
        return record_parts(items, self._layout.end, self._layout.prev_length, self.chunk_size)

    def _append(self, parts: list[Buffer], records: list[Record]) -> None:
        """Write at the end of valid data; on failure put the image back as it was."""
        self._cut_torn_tail()
        start = self._layout.end
        try:
            _write_gathered(self._f, start, parts)
        except BaseException:
            with contextlib.suppress(OSError):
                self._f.truncate(start)
            raise
        for record in records:
            self._layout.advance(record)

    def _close_open_file(self) -> None:
        if self._layout.current is not None:
            # Closing ignores capacity: every write left room for it.
            self._append(*self._encode(self._layout.closing_records(self.block_size_limit)))

    def _fits(self, size: int) -> bool:
        return self._layout.end + size <= self.capacity

    def _require_data_phase(self) -> None:
        if self._layout.phase != Phase.DATA:
            raise ValueError(f"{self.path}: no tape file is open for data (call begin_file first)")

    def _check_block(self, block: bytes) -> None:
        if not 1 <= len(block) <= self.block_size_limit:
            raise ValueError(
                f"a tape block is 1 to {self.block_size_limit} bytes (Hercules reads at most {HERCULES_MAX_BLOCK}), "
                f"not {len(block)}"
            )

    def _cut_torn_tail(self) -> None:
        if self.torn_tail:
            self._f.truncate(self._layout.end)
            os.fsync(self._f.fileno())
            self.torn_tail = 0


def _check_limits(block_size_limit: int, chunk_size: int) -> None:
    # hetlib.h HETMAX_BLOCKSIZE: het_read() fails with HETE_OVERFLOW past it, and
    # hetget/hetmap read into a buffer of exactly this size. A block they cannot
    # read is no use on a cartridge that must be readable by them.
    if not 1 <= block_size_limit <= HERCULES_MAX_BLOCK:
        raise ValueError(
            f"block size limit {block_size_limit} is outside 1..{HERCULES_MAX_BLOCK}: "
            "hetget and hetmap cannot read larger blocks (HETMAX_BLOCKSIZE)"
        )
    check_chunk_size(chunk_size)


def _write_all(f: BinaryIO, offset: int, payload: bytes) -> None:
    f.seek(offset)
    view = memoryview(payload)
    while view:
        written = f.write(view)
        if not written:
            raise OSError(f"write at {offset} made no progress")
        view = view[written:]


def _write_gathered(f: BinaryIO, offset: int, parts: list[Buffer]) -> None:
    """Write ``parts`` back to back from ``offset``: one system call per _IOV_BATCH of them, never joined."""
    for i in range(0, len(parts), _IOV_BATCH):
        group = parts[i : i + _IOV_BATCH]
        size = sum(len(p) for p in group)
        written = os.pwritev(f.fileno(), group, offset)
        if written < size:  # a short write (rare): the rest the plain way
            _write_all(f, offset + written, b"".join(group)[written:])
        offset += size
