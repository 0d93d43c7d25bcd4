"""AWSTAPE records, as Hercules reads them: chunk headers, blocks and tapemarks.

Pure functions over bytes and binary file objects: nothing here keeps a file
open, knows a path or blocks on anything but the file it is handed.

An image is a run of records. A record is a data block or a tapemark; a block
is stored as one or more chunks, each behind a 6-byte little-endian header::

    current chunk length (u16), previous chunk length (u16), flags1, flags2

The previous length chains every header to the one before it, which is what
lets Hercules space backwards and what lets us tell damage from data.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import attrs

Buffer = bytes | bytearray | memoryview
HEADER = struct.Struct("<HHBB")
HEADER_SIZE = HEADER.size

BOR = 0x80
TAPEMARK = 0x40
EOR = 0x20
# Hercules' HET compression bits; AWSTAPE never sets them and we cannot inflate.
COMPRESSION = 0x03
KNOWN_FLAGS1 = BOR | TAPEMARK | EOR

MAX_CHUNK = 0xFFFF
# hetlib.h HETMIN_CHUNKSIZE: the smallest chunk size Hercules itself writes.
HERCULES_MIN_CHUNK = 4096

TAPEMARK_SIZE = HEADER_SIZE


class FormatError(Exception):
    """The bytes at ``offset`` are not a valid record."""

    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        self.reason = reason
        super().__init__(f"offset {offset}: {reason}")


class TornRecord(FormatError):
    """The file ends inside the record starting at ``offset``.

    Kept apart from other damage because it is what an interrupted append
    leaves behind: everything before ``offset`` is still good.
    """


@attrs.frozen
class ChunkHeader:
    length: int
    prev_length: int
    flags1: int
    flags2: int = 0

    def pack(self) -> bytes:
        return HEADER.pack(self.length, self.prev_length, self.flags1, self.flags2)

    @classmethod
    def unpack(cls, raw: Buffer) -> ChunkHeader:
        return cls(*HEADER.unpack(raw))

    @property
    def is_tapemark(self) -> bool:
        return bool(self.flags1 & TAPEMARK)


@attrs.frozen
class Record:
    """One block or tapemark as found in an image.

    ``data`` is None when the caller asked to skip block contents.
    """

    offset: int
    end: int
    tapemark: bool
    length: int
    chunks: int
    last_chunk: int
    data: bytes | None = None

    @property
    def size(self) -> int:
        return self.end - self.offset


def chunk_lengths(size: int, chunk_size: int = MAX_CHUNK) -> list[int]:
    """How a block of ``size`` bytes is cut; an empty block still needs one chunk."""
    check_chunk_size(chunk_size)
    if size <= 0:
        return [0]
    full, rest = divmod(size, chunk_size)
    return [chunk_size] * full + ([rest] if rest else [])


def encoded_block_size(size: int, chunk_size: int = MAX_CHUNK) -> int:
    return size + HEADER_SIZE * len(chunk_lengths(size, chunk_size))


def encode_block(data: bytes, prev_length: int, chunk_size: int = MAX_CHUNK) -> tuple[bytes, int]:
    """Encode one block; return its bytes and its last chunk length.

    The last chunk length is what the next header must carry as its previous
    length, so callers chain records without re-parsing what they wrote.
    """
    parts, last = _block_parts(data, prev_length, chunk_size)
    return b"".join(parts), last


def _block_parts(data: Buffer, prev_length: int, chunk_size: int) -> tuple[list[Buffer], int]:
    """A block's headers and views of its data, in order, for a gathered write."""
    _check_prev_length(prev_length)
    lengths = chunk_lengths(len(data), chunk_size)
    view = memoryview(data)
    parts: list[Buffer] = []
    pos = 0
    for i, length in enumerate(lengths):
        flags = (BOR if i == 0 else 0) | (EOR if i == len(lengths) - 1 else 0)
        parts.append(HEADER.pack(length, prev_length, flags, 0))
        parts.append(view[pos : pos + length])
        pos += length
        prev_length = length
    return parts, prev_length


def encode_tapemark(prev_length: int) -> bytes:
    """A tapemark is a bare header; the record after it carries previous length 0."""
    _check_prev_length(prev_length)
    return HEADER.pack(0, prev_length, TAPEMARK, 0)


def encode_records(
    items: Sequence[bytes | None], offset: int, prev_length: int, chunk_size: int = MAX_CHUNK
) -> tuple[bytes, list[Record]]:
    """Encode blocks (None for a tapemark) to follow the record that ends at ``offset``.

    Returns the bytes and the records as a reader will find them, so a writer
    can account for what it appends without reading it back.
    """
    parts, records = record_parts(items, offset, prev_length, chunk_size)
    return b"".join(parts), records


def record_parts(
    items: Sequence[Buffer | None], offset: int, prev_length: int, chunk_size: int = MAX_CHUNK
) -> tuple[list[Buffer], list[Record]]:
    """As ``encode_records``, the bytes left as headers and views of the blocks' data:
    written with one gathered write (``os.pwritev``), the data is never copied here."""
    parts: list[Buffer] = []
    records: list[Record] = []
    for item in items:
        if item is None:
            raw: list[Buffer] = [encode_tapemark(prev_length)]
            last = 0
            record = Record(offset, offset + HEADER_SIZE, True, 0, 1, 0)
        else:
            raw, last = _block_parts(item, prev_length, chunk_size)
            chunks = len(raw) // 2
            end = offset + len(item) + HEADER_SIZE * chunks
            record = Record(offset, end, False, len(item), chunks, last, item)
        parts += raw
        records.append(record)
        offset, prev_length = record.end, last
    return parts, records


def check_chunk_size(chunk_size: int) -> None:
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk size {chunk_size} is outside 1..{MAX_CHUNK}")


def _check_prev_length(prev_length: int) -> None:
    if not 0 <= prev_length <= MAX_CHUNK:
        raise ValueError(f"previous chunk length {prev_length} is outside 0..{MAX_CHUNK}")


def file_size(f: BinaryIO) -> int:
    return f.seek(0, io.SEEK_END)


def read_record(f: BinaryIO, offset: int, prev_length: int | None, *, size: int, read_data: bool = True) -> Record | None:
    """Read the record at ``offset``; None if ``offset`` is the end (``size``).

    ``prev_length`` None skips the check of the first header's back link, for
    readers that resume somewhere without knowing what came before.
    Raises TornRecord if ``size`` cuts the record, FormatError for any other
    damage.
    """
    if offset >= size:
        return None
    pos, chunks, length, parts = offset, 0, 0, []
    while True:
        header = _read_header(f, offset, pos, size)
        _check_header(header, offset, pos, prev_length, first=chunks == 0)
        if header.is_tapemark:
            return Record(offset, pos + HEADER_SIZE, True, 0, 1, 0, None)
        pos += HEADER_SIZE
        if pos + header.length > size:
            raise TornRecord(offset, f"chunk at {pos - HEADER_SIZE} runs past the end of the image")
        if read_data:
            parts.append(_read_exact(f, pos, header.length, offset))
        pos += header.length
        chunks += 1
        length += header.length
        prev_length = header.length
        if header.flags1 & EOR:
            data = b"".join(parts) if read_data else None
            return Record(offset, pos, False, length, chunks, header.length, data)


def iter_records(
    f: BinaryIO,
    offset: int = 0,
    prev_length: int | None = 0,
    *,
    end: int | None = None,
    read_data: bool = True,
) -> Iterator[Record]:
    """Every record from ``offset`` up to ``end`` (default: the file's size)."""
    size = file_size(f) if end is None else end
    while (record := read_record(f, offset, prev_length, size=size, read_data=read_data)) is not None:
        yield record
        offset, prev_length = record.end, record.last_chunk


def _read_header(f: BinaryIO, record_offset: int, pos: int, size: int) -> ChunkHeader:
    if pos + HEADER_SIZE > size:
        raise TornRecord(record_offset, f"the image ends inside the chunk header at {pos}")
    return ChunkHeader.unpack(_read_exact(f, pos, HEADER_SIZE, record_offset))


def _read_exact(f: BinaryIO, pos: int, n: int, record_offset: int) -> Buffer:
    f.seek(pos)
    got = f.read(n)
    if len(got) == n:  # the usual case: no second copy
        return got
    out = bytearray(got)
    while len(out) < n:
        got = f.read(n - len(out))
        if not got:
            raise TornRecord(record_offset, f"the image ends at {pos + len(out)}, inside the record")
        out += got
    return bytes(out)


def _check_header(header: ChunkHeader, record_offset: int, pos: int, prev_length: int | None, *, first: bool) -> None:
    def bad(reason: str) -> FormatError:
        # Point at the chunk, not the record, when they differ: that is where to look with a hex dump.
        where = record_offset if pos == record_offset else pos
        return FormatError(where, reason)

    if header.flags2 != 0 or header.flags1 & COMPRESSION:
        raise bad(f"compressed or unknown chunk (flags {header.flags1:#04x} {header.flags2:#04x})")
    if header.flags1 & ~(KNOWN_FLAGS1 | COMPRESSION):
        raise bad(f"unknown flag bits {header.flags1:#04x}")
    if prev_length is not None and header.prev_length != prev_length:
        raise bad(f"previous chunk length is {header.prev_length}, expected {prev_length}")
    if header.is_tapemark:
        if not first:
            raise bad("tapemark inside a block")
        if header.flags1 != TAPEMARK or header.length != 0:
            raise bad(f"malformed tapemark (flags {header.flags1:#04x}, length {header.length})")
    elif first and not header.flags1 & BOR:
        raise bad(f"block does not start with a beginning-of-record chunk (flags {header.flags1:#04x})")
    elif not first and header.flags1 & BOR:
        raise bad("beginning-of-record chunk inside a block")
