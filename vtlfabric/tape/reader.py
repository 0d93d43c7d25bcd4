"""Reading an image back: the scan that maps its files, and one file's data blocks.

Both report damage as TapeFormatError, which names the image file as well as
the offset: an operator holding only the message knows where to hex dump.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import attrs

from vtlfabric.tape.direct import ImageReads, ReadBuffer
from vtlfabric.tape.layout import Layout
from vtlfabric.tape.records import HEADER_SIZE, FormatError, Record, TornRecord, read_record

_CHUNK_LENGTH = struct.Struct("<H")


class TapeFormatError(Exception):
    """An image is damaged; says which file and where, for a hex dump."""

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        self.path, self.offset, self.reason = str(path), offset, reason
        super().__init__(f"{self.path}: offset {offset}: {reason}")


def scan(f: BinaryIO, path: Path, layout: Layout, limit: int) -> tuple[Layout, int]:
    """Advance ``layout`` over the records up to ``limit``; return it and the torn bytes.

    Data blocks are skipped with a seek; only headers and labels are read.
    """
    while True:
        try:
            record = read_record(f, layout.end, layout.prev_length, size=limit, read_data=layout.expects_label())
        except TornRecord:
            return layout, limit - layout.end
        except FormatError as exc:
            raise TapeFormatError(path, exc.offset, exc.reason) from exc
        if record is None:
            return layout, 0
        try:
            layout.advance(record)
        except FormatError as exc:
            raise TapeFormatError(path, exc.offset, exc.reason) from exc


def data_blocks(f: BinaryIO, path: Path, offset: int | None, end: Callable[[], int]) -> Iterator[bytes]:
    """The data blocks from ``offset`` (a file's first; None: it has none) to its closing tapemark.

    ``end()`` is asked again before each block: an open file may grow between
    two steps of the iterator.
    """
    return (record.data for record in data_records(f, path, offset, end))


def data_records(f: BinaryIO, path: Path, offset: int | None, end: Callable[[], int]) -> Iterator[Record]:
    """As ``data_blocks``, each block as its record: where it lies in the image, and its data."""
    if offset is None:
        return
    prev: int | None = 0  # data always follows the header tapemark
    while True:
        try:
            record = read_record(f, offset, prev, size=end(), read_data=True)
        except FormatError as exc:
            raise TapeFormatError(path, exc.offset, exc.reason) from exc
        if record is None or record.tapemark:
            return
        assert record.data is not None
        yield record
        offset, prev = record.end, record.last_chunk


@attrs.define(eq=False)
class SpanReader:
    """One tape file's data blocks, a span of them at a time (see ``next_span``), each span
    read into the reader's own buffer."""

    reads: ImageReads
    offset: int | None  # the next record's; None: the file has no data
    end: Callable[[], int]
    prev: int | None = 0  # data always follows the header tapemark
    _buffer: ReadBuffer = attrs.field(factory=ReadBuffer)

    @property
    def path(self) -> Path:
        return self.reads.path

    def next_span(self, limit: int) -> tuple[list[Record], bytes]:
        """The next whole blocks holding at most ``limit`` bytes of data (always at least
        one), and their data joined; nothing at the file's end.

        The span comes in one read, a little more than ``limit`` (its headers'
        worth), and its headers are checked in memory: a read per header was a system
        call per block, each giving up the GIL and waiting to get it back."""
        want = limit + _HEADROOM
        while self.offset is not None:
            window = _Window.load(self.reads, self._buffer, self.offset, min(self.offset + want, self.end()))
            records, done = self._records(window, limit)
            if records:
                first, last = records[0].offset, records[-1].end
                self.offset, self.prev = (None if done else last), records[-1].last_chunk
                return records, b"".join(_chunk_data(window.data(first, last), self.path, first))
            if done:
                self.offset = None
            want *= 2  # a block bigger than the window: read enough for one
        return [], b""

    def _records(self, window: _Window, limit: int) -> tuple[list[Record], bool]:
        """The whole data records the window holds from ``offset``, up to ``limit`` bytes
        of data (at least one), and whether the file ends after them (a tapemark, or
        the end of the image's data)."""
        records: list[Record] = []
        offset, prev, size = self.offset, self.prev, 0
        cut = window.end < self.end() and not window.short  # by the read, not by the image's end
        while True:
            try:
                record = read_record(window, offset, prev, size=window.end, read_data=False)
            except TornRecord as exc:
                if cut:  # the next read has the rest of it
                    return records, False
                raise TapeFormatError(self.path, exc.offset, exc.reason) from exc
            except FormatError as exc:
                raise TapeFormatError(self.path, exc.offset, exc.reason) from exc
            if record is None:  # the window's end: the image's too, or a record boundary
                if window.short:
                    raise TapeFormatError(self.path, offset, f"the image ends at {offset}, before its end of data")
                return records, not cut
            if record.tapemark:
                return records, True
            if records and size + record.length > limit:
                return records, False
            records.append(record)
            size += record.length
            offset, prev = record.end, record.last_chunk


_HEADROOM = 64 << 10  # past ``limit``, for the span's headers: a few hundred blocks' worth


@attrs.define(eq=False)
class _Window:
    """Bytes of an image from ``start``, read at once, read as the image by ``read_record``."""

    start: int
    raw: memoryview  # a view of the reader's buffer
    short: bool  # the file held less than was asked for: it ends before its end of data
    _pos: int = 0

    @classmethod
    def load(cls, reads: ImageReads, buffer: ReadBuffer, start: int, end: int) -> _Window:
        data = reads.read_range(start, max(start, end), buffer)
        return cls(start, data, len(data) < end - start)

    @property
    def end(self) -> int:
        return self.start + len(self.raw)

    def seek(self, pos: int) -> None:
        self._pos = pos

    def read(self, n: int) -> memoryview:
        at = self._pos - self.start
        self._pos += n
        return self.raw[at : at + n]

    def data(self, start: int, end: int) -> memoryview:
        return self.raw[start - self.start : end - self.start]


def span_data(f: BinaryIO, path: Path, start: int, end: int) -> list[memoryview]:
    """The data of the whole data records from ``start`` to ``end``, read in one call, as
    views of each chunk's data (no copy): the records' headers were checked when they
    were mapped or written, so here they are only followed."""
    span = memoryview(os.pread(f.fileno(), end - start, start))
    if len(span) != end - start:
        raise TapeFormatError(path, start + len(span), "the image ends inside a block read a moment ago")
    return _chunk_data(span, path, start)


def _chunk_data(span: memoryview, path: Path, start: int) -> list[memoryview]:
    """Each chunk's data in ``span`` (whole data records from image offset ``start``), as views."""
    parts, pos = [], 0
    while pos < len(span):
        (length,) = _CHUNK_LENGTH.unpack_from(span, pos)
        if not length or pos + HEADER_SIZE + length > len(span):
            raise TapeFormatError(path, start + pos, "not a data chunk where one was written")
        parts.append(span[pos + HEADER_SIZE : pos + HEADER_SIZE + length])
        pos += HEADER_SIZE + length
    return parts
