"""A cartridge: one AWSTAPE image file, standard-labelled, one tape file per job.

Layout (IBM standard labels, so Hercules' ``hetget IMAGE OUT N`` finds file N
by its data set sequence number and copies its blocks out unchanged)::

    VOL1
    HDR1 HDR2 TM  data... TM  EOF1 EOF2 TM      <- tape file 1
    HDR1 HDR2 TM  data... TM  EOF1 EOF2 TM      <- tape file 2
    ...

The last file may be open: its labels and some data, no closing records yet.
Every method blocks; callers run them in a worker thread, one at a time.
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import BinaryIO

import attrs

from vtlfabric.tape import awstape
from vtlfabric.tape.awstape import (
    DatasetLabel1,
    DatasetLabel2,
    FormatError,
    LabelError,
    Record,
    TornRecord,
    Vol1,
)
from vtlfabric.vocab import HERCULES_MAX_BLOCK

# A block hetget/hetmap cannot read is no use on a cartridge that must be
# readable by them, so this is also the ceiling for ``block_size_limit``.
MAX_BLOCK_SIZE = HERCULES_MAX_BLOCK
MAX_FILES = awstape.MAX_FILE_SEQUENCE


class EndOfMedium(Exception):
    """The cartridge cannot take this without losing the room to close its file."""


class TapeFormatError(Exception):
    """An image is damaged; says which file and where, for a hex dump."""

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        self.path, self.offset, self.reason = str(path), offset, reason
        super().__init__(f"{self.path}: offset {offset}: {reason}")


@attrs.frozen
class FileInfo:
    """One tape file as found on the image.

    ``offset`` is where its HDR1 starts, ``data_offset`` its first data block
    (None while its header labels are incomplete), ``end`` just past its last
    record on the image.
    """

    file_no: int
    offset: int
    blocks: int
    bytes: int
    closed: bool
    data_offset: int | None = None
    end: int = 0
    dsname: str = ""


class _Phase(enum.IntEnum):
    """Position in the label grammar: what the last record completed."""

    START = enum.auto()  # nothing yet; VOL1 must come first
    BETWEEN = enum.auto()  # after VOL1 or a file's final tapemark
    HDR1 = enum.auto()
    HDR2 = enum.auto()
    DATA = enum.auto()  # after the header tapemark: data blocks may follow
    DATA_END = enum.auto()  # after the tapemark that ends the data
    EOF1 = enum.auto()
    EOF2 = enum.auto()


_LABEL_PHASES = {_Phase.START, _Phase.BETWEEN, _Phase.HDR1, _Phase.DATA_END, _Phase.EOF1}


@attrs.define
class _OpenFile:
    file_no: int
    offset: int
    hdr1: DatasetLabel1
    hdr2: DatasetLabel2 | None = None
    data_offset: int | None = None
    blocks: int = 0
    bytes: int = 0

    def info(self, *, closed: bool, end: int) -> FileInfo:
        return FileInfo(
            self.file_no, self.offset, self.blocks, self.bytes, closed, self.data_offset, end, self.hdr1.dsname
        )


@attrs.define
class _Layout:
    """Where a scan, or a writer, stands in the image's label grammar.

    Reading and writing advance the same state machine, so an image we write is
    by construction one we accept when we open it again.
    """

    files: list[FileInfo] = attrs.field(factory=list)
    current: _OpenFile | None = None
    phase: _Phase = _Phase.START
    vol1: Vol1 | None = None
    end: int = 0
    prev_length: int = 0
    # Where file 1 starts and the back link it carries: the resume point of a rescan.
    after_vol1: tuple[int, int] = (0, 0)

    def expects_label(self) -> bool:
        return self.phase in _LABEL_PHASES

    def all_files(self) -> list[FileInfo]:
        if self.current is None:
            return list(self.files)
        return [*self.files, self.current.info(closed=False, end=self.end)]

    def resume_at(self, index: int) -> _Layout:
        """The state just before file ``index`` (0-based) began: what a rescan starts from."""
        if index == 0:
            end, prev = self.after_vol1
        else:
            end, prev = self.all_files()[index].offset, 0  # every file after the first follows a tapemark
        return _Layout(self.files[:index], None, _Phase.BETWEEN, self.vol1, end, prev, self.after_vol1)

    def advance(self, record: Record) -> None:
        """Take one more record, or raise FormatError if it cannot come here."""
        try:
            _STEPS[self.phase](self, record)
        except LabelError as exc:
            raise FormatError(record.offset, str(exc)) from exc
        self.end, self.prev_length = record.end, record.last_chunk

    # One method per phase: each knows the only record that may follow.

    def _take_vol1(self, record: Record) -> None:
        self.vol1 = Vol1.decode(_label(record, "VOL1"))
        self.after_vol1 = (record.end, record.last_chunk)
        self.phase = _Phase.BETWEEN

    def _take_hdr1(self, record: Record) -> None:
        assert self.vol1 is not None
        hdr1 = DatasetLabel1.decode(_label(record, "HDR1"), "HDR")
        file_no = len(self.files) + 1
        if hdr1.file_seq != file_no:
            raise FormatError(record.offset, f"HDR1 gives file sequence {hdr1.file_seq}, expected {file_no}")
        if hdr1.volser != self.vol1.volser:
            raise FormatError(record.offset, f"HDR1 names volume {hdr1.volser!r}, VOL1 says {self.vol1.volser!r}")
        self.current = _OpenFile(file_no, record.offset, hdr1)
        self.phase = _Phase.HDR1

    def _take_hdr2(self, record: Record) -> None:
        assert self.current is not None
        self.current.hdr2 = DatasetLabel2.decode(_label(record, "HDR2"), "HDR")
        self.phase = _Phase.HDR2

    def _take_header_tapemark(self, record: Record) -> None:
        assert self.current is not None
        _require_tapemark(record, "after HDR2")
        self.current.data_offset = record.end
        self.phase = _Phase.DATA

    def _take_data(self, record: Record) -> None:
        assert self.current is not None
        if record.tapemark:
            self.phase = _Phase.DATA_END
            return
        self.current.blocks += 1
        self.current.bytes += record.length

    def _take_eof1(self, record: Record) -> None:
        assert self.current is not None
        eof1 = DatasetLabel1.decode(_label(record, "EOF1"), "EOF")
        if eof1.block_count != self.current.blocks:
            raise FormatError(
                record.offset, f"EOF1 counts {eof1.block_count} blocks, the file holds {self.current.blocks}"
            )
        if eof1.file_seq != self.current.file_no:
            raise FormatError(record.offset, f"EOF1 gives file sequence {eof1.file_seq}, expected {self.current.file_no}")
        self.phase = _Phase.EOF1

    def _take_eof2(self, record: Record) -> None:
        DatasetLabel2.decode(_label(record, "EOF2"), "EOF")
        self.phase = _Phase.EOF2

    def _take_final_tapemark(self, record: Record) -> None:
        assert self.current is not None
        _require_tapemark(record, "after EOF2")
        self.files.append(self.current.info(closed=True, end=record.end))
        self.current = None
        self.phase = _Phase.BETWEEN


_STEPS = {
    _Phase.START: _Layout._take_vol1,
    _Phase.BETWEEN: _Layout._take_hdr1,
    _Phase.HDR1: _Layout._take_hdr2,
    _Phase.HDR2: _Layout._take_header_tapemark,
    _Phase.DATA: _Layout._take_data,
    _Phase.DATA_END: _Layout._take_eof1,
    _Phase.EOF1: _Layout._take_eof2,
    _Phase.EOF2: _Layout._take_final_tapemark,
}


def _label(record: Record, ident: str) -> bytes:
    if record.tapemark:
        raise FormatError(record.offset, f"expected a {ident} label, found a tapemark")
    if record.data is None or awstape.label_id(record.data) != ident:
        found = awstape.label_id(record.data or b"") or f"a {record.length}-byte block"
        raise FormatError(record.offset, f"expected a {ident} label, found {found}")
    return record.data


def _require_tapemark(record: Record, where: str) -> None:
    if not record.tapemark:
        raise FormatError(record.offset, f"expected a tapemark {where}, found a {record.length}-byte block")


def volser_of(barcode: str) -> str:
    """The VOL1 serial for a cartridge: its barcode without the media suffix."""
    return barcode[:6]


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
    _layout: _Layout = attrs.field(repr=False)
    block_size_limit: int = MAX_BLOCK_SIZE
    chunk_size: int = awstape.MAX_CHUNK
    # Bytes past end_offset() that an interrupted append left: a torn record.
    torn_tail: int = attrs.field(default=0, init=False)

    # ------------------------------------------------------------ opening

    @classmethod
    def create(
        cls,
        path: Path,
        barcode: str,
        capacity: int,
        block_size_limit: int = MAX_BLOCK_SIZE,
        *,
        chunk_size: int = awstape.MAX_CHUNK,
    ) -> TapeImage:
        """Write a new, empty labelled image (replacing any file there) and open it.

        Written under a temporary name and renamed, so a crash leaves either
        the old file or a complete new one, never a torn VOL1.
        """
        _check_limits(block_size_limit, chunk_size)
        vol1 = Vol1(volser_of(barcode), owner=barcode)
        payload, _ = awstape.encode_block(vol1.encode(), 0, chunk_size)
        if len(payload) > capacity:
            raise ValueError(f"capacity {capacity} cannot hold even the volume label")
        tmp = path.with_name(path.name + ".new")
        with open(tmp, "wb", buffering=0) as f:
            _write_all(f, 0, payload)
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        return cls.open(path, capacity, block_size_limit=block_size_limit, chunk_size=chunk_size)

    @classmethod
    def open(
        cls,
        path: Path,
        capacity: int,
        *,
        repair: bool = False,
        block_size_limit: int = MAX_BLOCK_SIZE,
        chunk_size: int = awstape.MAX_CHUNK,
    ) -> TapeImage:
        """Open an image read/write and map its files, reading only headers and labels.

        Damage raises TapeFormatError. A torn last record is not damage but an
        interrupted append: the image ends before it, ``torn_tail`` says how
        many bytes it left, and with ``repair`` they are cut off at once.
        Without ``repair`` they are cut off by the next write, since appending
        after them would bury garbage inside the image.
        """
        _check_limits(block_size_limit, chunk_size)
        f = open(path, "r+b", buffering=0)  # noqa: SIM115 - the image owns the handle until close()
        try:
            image = cls(path, capacity, f, _Layout(), block_size_limit, chunk_size)
            image._layout, torn = image._scan(_Layout(), awstape.file_size(f))
            if image._layout.vol1 is None:
                raise TapeFormatError(path, 0, "no complete VOL1 label: not a labelled tape image")
            image.torn_tail = torn
            if repair:
                image._cut_torn_tail()
        except BaseException:
            f.close()
            raise
        return image

    def close(self) -> None:
        self._f.close()

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
        payload, records = self._encode([hdr1.encode(), hdr2.encode(), None])
        block = awstape.encoded_block_size(first_block, self.chunk_size)
        if not self._fits(len(payload) + block + self._closing_size()):
            raise EndOfMedium(f"{self.path}: no room for another file")
        self._append(payload, records)
        return file_no

    def write_block(self, data: bytes) -> None:
        """Append one data block to the open file; EndOfMedium (nothing written) if it won't fit."""
        if self.write_blocks([data]) == 0:
            raise EndOfMedium(f"{self.path}: full at offset {self.end_offset()}")

    def write_blocks(self, blocks: Sequence[bytes]) -> int:
        """Append as many of ``blocks`` as fit, in one write; return how many.

        Fewer than ``len(blocks)`` means the cartridge is full.
        """
        self._require_data_phase()
        for block in blocks:
            self._check_block(block)
        reserve = self._closing_size()
        used, count = 0, 0
        for block in blocks:
            size = awstape.encoded_block_size(len(block), self.chunk_size)
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
        new, torn = self._scan(layout.resume_at(max(index - 1, 0)), offset)
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
        files = self._layout.all_files()
        if not 1 <= file_no <= len(files):
            raise KeyError(f"{self.path}: no tape file {file_no} (the image holds {len(files)})")
        return self._blocks_from(files[file_no - 1].data_offset)

    def _blocks_from(self, offset: int | None) -> Iterator[bytes]:
        if offset is None:
            return
        prev: int | None = 0  # data always follows the header tapemark
        while True:
            # Re-read the end each time: an open file may grow between calls.
            record = self._read(offset, prev, self._layout.end, read_data=True)
            if record is None or record.tapemark:
                return
            assert record.data is not None
            yield record.data
            offset, prev = record.end, record.last_chunk

    # ------------------------------------------------------------ internals

    def _read(self, offset: int, prev: int | None, limit: int, *, read_data: bool) -> Record | None:
        try:
            return awstape.read_record(self._f, offset, prev, size=limit, read_data=read_data)
        except FormatError as exc:
            raise TapeFormatError(self.path, exc.offset, exc.reason) from exc

    def _scan(self, layout: _Layout, limit: int) -> tuple[_Layout, int]:
        """Advance ``layout`` over the records up to ``limit``; return it and the torn bytes.

        Data blocks are skipped with a seek; only headers and labels are read.
        """
        while True:
            try:
                record = awstape.read_record(
                    self._f, layout.end, layout.prev_length, size=limit, read_data=layout.expects_label()
                )
            except TornRecord:
                return layout, limit - layout.end
            except FormatError as exc:
                raise TapeFormatError(self.path, exc.offset, exc.reason) from exc
            if record is None:
                return layout, 0
            try:
                layout.advance(record)
            except FormatError as exc:
                raise TapeFormatError(self.path, exc.offset, exc.reason) from exc

    def _encode(self, items: Sequence[bytes | None]) -> tuple[bytes, list[Record]]:
        """Encode blocks (None for a tapemark) to follow the image's last record."""
        offset, prev = self._layout.end, self._layout.prev_length
        parts: list[bytes] = []
        records: list[Record] = []
        for item in items:
            if item is None:
                raw, last = awstape.encode_tapemark(prev), 0
                record = Record(offset, offset + len(raw), True, 0, 1, 0)
            else:
                raw, last = awstape.encode_block(item, prev, self.chunk_size)
                chunks = len(awstape.chunk_lengths(len(item), self.chunk_size))
                record = Record(offset, offset + len(raw), False, len(item), chunks, last, item)
            parts.append(raw)
            records.append(record)
            offset, prev = record.end, last
        return b"".join(parts), records

    def _append(self, payload: bytes, records: list[Record]) -> None:
        """Write at the end of valid data; on failure put the image back as it was."""
        self._cut_torn_tail()
        start = self._layout.end
        try:
            _write_all(self._f, start, payload)
        except BaseException:
            with contextlib.suppress(OSError):
                self._f.truncate(start)
            raise
        for record in records:
            self._layout.advance(record)

    def _closing_records(self) -> list[bytes | None]:
        """What the open file still needs to be complete, from wherever it stopped."""
        layout, current = self._layout, self._layout.current
        assert current is not None
        hdr2 = current.hdr2 or DatasetLabel2("HDR", self.block_size_limit)
        trailer: list[bytes | None] = [None, current.hdr1.trailer(current.blocks).encode(), hdr2.trailer().encode(), None]
        header: list[bytes | None] = [hdr2.encode(), None]
        todo = {
            _Phase.HDR1: header + trailer,
            _Phase.HDR2: header[1:] + trailer,
            _Phase.DATA: trailer,
            _Phase.DATA_END: trailer[1:],
            _Phase.EOF1: trailer[2:],
            _Phase.EOF2: trailer[3:],
        }
        return todo[layout.phase]

    def _close_open_file(self) -> None:
        if self._layout.current is not None:
            # Closing ignores capacity: every write left room for it.
            self._append(*self._encode(self._closing_records()))

    def _closing_size(self) -> int:
        """Room to close a file whose data is complete: tapemark, EOF1, EOF2, tapemark."""
        label = awstape.encoded_block_size(awstape.LABEL_SIZE, self.chunk_size)
        return 2 * awstape.TAPEMARK_SIZE + 2 * label

    def _fits(self, size: int) -> bool:
        return self._layout.end + size <= self.capacity

    def _require_data_phase(self) -> None:
        if self._layout.phase != _Phase.DATA:
            raise ValueError(f"{self.path}: no tape file is open for data (call begin_file first)")

    def _check_block(self, block: bytes) -> None:
        if not 1 <= len(block) <= self.block_size_limit:
            raise ValueError(
                f"a tape block is 1 to {self.block_size_limit} bytes (Hercules reads at most {MAX_BLOCK_SIZE}), "
                f"not {len(block)}"
            )

    def _cut_torn_tail(self) -> None:
        if self.torn_tail:
            self._f.truncate(self._layout.end)
            os.fsync(self._f.fileno())
            self.torn_tail = 0


def _check_limits(block_size_limit: int, chunk_size: int) -> None:
    if not 1 <= block_size_limit <= MAX_BLOCK_SIZE:
        raise ValueError(
            f"block size limit {block_size_limit} is outside 1..{MAX_BLOCK_SIZE}: "
            "hetget and hetmap cannot read larger blocks (HETMAX_BLOCKSIZE)"
        )
    if not 1 <= chunk_size <= awstape.MAX_CHUNK:
        raise ValueError(f"chunk size {chunk_size} is outside 1..{awstape.MAX_CHUNK}")


def _write_all(f: BinaryIO, offset: int, payload: bytes) -> None:
    f.seek(offset)
    view = memoryview(payload)
    while view:
        written = f.write(view)
        if not written:
            raise OSError(f"write at {offset} made no progress")
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry lives in the directory."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
