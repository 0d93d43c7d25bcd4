"""Reading an image back: the scan that maps its files, and one file's data blocks.

Both report damage as TapeFormatError, which names the image file as well as
the offset: an operator holding only the message knows where to hex dump.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from vtlfabric.tape.layout import Layout
from vtlfabric.tape.records import FormatError, Record, TornRecord, read_record


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
