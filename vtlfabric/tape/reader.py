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
    """One tape file's data blocks, a span of them at a time (see ``next_span``)."""

    f: BinaryIO
    path: Path
    offset: int | None  # the next record's; None: the file has no data
    end: Callable[[], int]
    prev: int | None = 0  # data always follows the header tapemark
    _peeked: Record | None = None

    def next_span(self, limit: int) -> tuple[list[Record], bytes]:
        """The next whole blocks holding at most ``limit`` bytes of data (always at least
        one), and their data joined; nothing at the file's end.

        Only block headers are read one by one; the span's bytes come in one read and
        each block's data is cut out of it, so a span costs one copy, not one per block."""
        records: list[Record] = []
        size = 0
        while (record := self._peeked or self._next_header()) is not None:
            self._peeked = None
            if records and size + record.length > limit:
                self._peeked = record
                break
            records.append(record)
            size += record.length
        return records, self._data(records) if records else b""

    def _next_header(self) -> Record | None:
        if self.offset is None:
            return None
        try:
            record = read_record(self.f, self.offset, self.prev, size=self.end(), read_data=False)
        except FormatError as exc:
            raise TapeFormatError(self.path, exc.offset, exc.reason) from exc
        if record is None or record.tapemark:
            self.offset = None
            return None
        self.offset, self.prev = record.end, record.last_chunk
        return record

    def _data(self, records: list[Record]) -> bytes:
        return b"".join(span_data(self.f, self.path, records[0].offset, records[-1].end))


def span_data(f: BinaryIO, path: Path, start: int, end: int) -> list[memoryview]:
    """The data of the whole data records from ``start`` to ``end``, read in one call, as
    views of each chunk's data (no copy): the records' headers were checked when they
    were mapped or written, so here they are only followed."""
    span = memoryview(os.pread(f.fileno(), end - start, start))
    if len(span) != end - start:
        raise TapeFormatError(path, start + len(span), "the image ends inside a block read a moment ago")
    parts, pos = [], 0
    while pos < len(span):
        (length,) = _CHUNK_LENGTH.unpack_from(span, pos)
        if not length or pos + HEADER_SIZE + length > len(span):
            raise TapeFormatError(path, start + pos, "not a data chunk where one was written")
        parts.append(span[pos + HEADER_SIZE : pos + HEADER_SIZE + length])
        pos += HEADER_SIZE + length
    return parts
