"""The AWSTAPE image format, as Hercules reads it, and IBM standard tape labels.

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
import re
import struct
from collections.abc import Iterator
from datetime import date
from typing import BinaryIO, Literal

import attrs

HEADER = struct.Struct("<HHBB")
HEADER_SIZE = HEADER.size

BOR = 0x80
TAPEMARK = 0x40
EOR = 0x20
# Hercules' HET compression bits; AWSTAPE never sets them and we cannot inflate.
COMPRESSION = 0x03
KNOWN_FLAGS1 = BOR | TAPEMARK | EOR

MAX_CHUNK = 0xFFFF
# hetlib.h HETMAX_BLOCKSIZE: het_read() fails with HETE_OVERFLOW past it, and
# hetget/hetmap read into a buffer of exactly this size.
HERCULES_MAX_BLOCK = 65535
# hetlib.h HETMIN_CHUNKSIZE: the smallest chunk size Hercules itself writes.
HERCULES_MIN_CHUNK = 4096

LABEL_SIZE = 80
LABEL_CODEC = "cp037"
TAPEMARK_SIZE = HEADER_SIZE

# A data set's block count is written as 6 low digits plus 4 high ones.
MAX_LABEL_BLOCK_COUNT = 10**10 - 1
# HDR1 holds the data set sequence number in 4 digits; hetget refuses more.
MAX_FILE_SEQUENCE = 9999
# BLKSIZE in HDR2 is limited to this; larger blocks use the 10-digit field
# (IBM's large block interface convention).
MAX_CLASSIC_BLKSIZE = 32760


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


class LabelError(ValueError):
    """80 bytes that are not the standard label expected."""


# ---------------------------------------------------------------- records


@attrs.frozen
class ChunkHeader:
    length: int
    prev_length: int
    flags1: int
    flags2: int = 0

    def pack(self) -> bytes:
        return HEADER.pack(self.length, self.prev_length, self.flags1, self.flags2)

    @classmethod
    def unpack(cls, raw: bytes) -> ChunkHeader:
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
    _check_chunk_size(chunk_size)
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
    _check_prev_length(prev_length)
    lengths = chunk_lengths(len(data), chunk_size)
    view = memoryview(data)
    parts: list[bytes] = []
    pos = 0
    for i, length in enumerate(lengths):
        flags = (BOR if i == 0 else 0) | (EOR if i == len(lengths) - 1 else 0)
        parts.append(HEADER.pack(length, prev_length, flags, 0))
        parts.append(view[pos : pos + length])
        pos += length
        prev_length = length
    return b"".join(parts), prev_length


def encode_tapemark(prev_length: int) -> bytes:
    """A tapemark is a bare header; the record after it carries previous length 0."""
    _check_prev_length(prev_length)
    return HEADER.pack(0, prev_length, TAPEMARK, 0)


def _check_chunk_size(chunk_size: int) -> None:
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk size {chunk_size} is outside 1..{MAX_CHUNK}")


def _check_prev_length(prev_length: int) -> None:
    if not 0 <= prev_length <= MAX_CHUNK:
        raise ValueError(f"previous chunk length {prev_length} is outside 0..{MAX_CHUNK}")


def file_size(f: BinaryIO) -> int:
    return f.seek(0, io.SEEK_END)


def read_record(
    f: BinaryIO, offset: int, prev_length: int | None, *, size: int, read_data: bool = True
) -> Record | None:
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


def _read_exact(f: BinaryIO, pos: int, n: int, record_offset: int) -> bytes:
    f.seek(pos)
    out = bytearray()
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


# ---------------------------------------------------------------- labels

_LABEL_CHARS = re.compile(r"[A-Z0-9 !\"%&'()*+,\-./:;<=>?@#$]*")
_VOLSER = re.compile(r"[A-Z0-9@#$]{1,6}")

LabelKind = Literal["HDR", "EOF"]


def _field(text: str, width: int, what: str) -> str:
    if len(text) > width:
        raise LabelError(f"{what} {text!r} is longer than {width} characters")
    if not _LABEL_CHARS.fullmatch(text):
        raise LabelError(f"{what} {text!r} has characters a standard label cannot hold")
    return text.ljust(width)


def _digits(value: int, width: int, what: str) -> str:
    if not 0 <= value < 10**width:
        raise LabelError(f"{what} {value} does not fit in {width} digits")
    return f"{value:0{width}d}"


def _to_label(text: str) -> bytes:
    assert len(text) == LABEL_SIZE, len(text)
    return text.encode(LABEL_CODEC)


def _from_label(raw: bytes, ident: str) -> str:
    if len(raw) != LABEL_SIZE:
        raise LabelError(f"a {ident} label is {LABEL_SIZE} bytes, this block is {len(raw)}")
    text = raw.decode(LABEL_CODEC)
    if text[:4] != ident:
        raise LabelError(f"expected a {ident} label, found {text[:4]!r}")
    return text


def _int_field(text: str, what: str) -> int:
    text = text.strip()
    if not text:
        return 0
    if not text.isdigit():
        raise LabelError(f"{what} {text!r} is not a number")
    return int(text)


def label_id(raw: bytes) -> str | None:
    """The 4-character identifier (``"VOL1"``, ``"HDR2"``...) if ``raw`` is a label."""
    if len(raw) != LABEL_SIZE:
        return None
    ident = raw[:4].decode(LABEL_CODEC)
    return ident if re.fullmatch(r"(VOL|HDR|EOF|EOV|UHL|UTL)[1-9]", ident) else None


def encode_date(day: date | None) -> str:
    """IBM ``cyyddd``: c is blank for 19xx, 0 for 20xx, 1 for 21xx.

    No date is written as zeros, which no real day encodes (day 000).
    """
    if day is None:
        return "000000"
    if day.year // 100 == 19:
        c = " "
    elif 20 <= day.year // 100 <= 29:
        c = str(day.year // 100 - 20)
    else:
        raise LabelError(f"{day} cannot be written in a standard label")
    return f"{c}{day.year % 100:02d}{day.timetuple().tm_yday:03d}"


def decode_date(text: str) -> date | None:
    if text in ("000000", "      ", " 00000"):
        return None
    c, yy, ddd = text[0], text[1:3], text[3:6]
    if not (yy.isdigit() and ddd.isdigit() and (c == " " or c.isdigit())):
        raise LabelError(f"date {text!r} is not in cyyddd form")
    year = (1900 if c == " " else 2000 + 100 * int(c)) + int(yy)
    day_of_year = int(ddd)
    if not 1 <= day_of_year <= (366 if _leap(year) else 365):
        raise LabelError(f"date {text!r} has no such day")
    return date.fromordinal(date(year, 1, 1).toordinal() + day_of_year - 1)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


@attrs.frozen
class Vol1:
    """The volume label: the first block of a standard-labelled tape."""

    volser: str
    owner: str = ""

    def __attrs_post_init__(self) -> None:
        if not _VOLSER.fullmatch(self.volser):
            raise LabelError(f"volume serial {self.volser!r} must be 1-6 of A-Z 0-9 @ # $")
        _field(self.owner, 10, "owner")

    def encode(self) -> bytes:
        text = "VOL1" + self.volser.ljust(6) + " " + " " * 30 + _field(self.owner, 10, "owner") + " " * 29
        return _to_label(text)

    @classmethod
    def decode(cls, raw: bytes) -> Vol1:
        text = _from_label(raw, "VOL1")
        return cls(volser=text[4:10].rstrip(), owner=text[41:51].rstrip())


@attrs.frozen
class DatasetLabel1:
    """HDR1 before a data set, EOF1 after it (then with the block count)."""

    kind: LabelKind
    dsname: str
    volser: str
    file_seq: int
    block_count: int = 0
    created: date | None = None
    expires: date | None = None
    system: str = "VTLFABRIC"

    def encode(self) -> bytes:
        count_lo, count_hi = self.block_count % 10**6, self.block_count // 10**6
        text = (
            f"{self.kind}1"
            + _field(self.dsname[-17:], 17, "data set name")
            + _field(self.volser, 6, "volume serial")
            + "0001"
            + _digits(self.file_seq, 4, "file sequence number")
            + " " * 4  # generation
            + " " * 2  # version
            + encode_date(self.created)
            + encode_date(self.expires)
            + "0"  # no password protection
            + _digits(count_lo, 6, "block count")
            + _field(self.system, 13, "system code")
            + " " * 3
            + (_digits(count_hi, 4, "block count") if count_hi else " " * 4)
        )
        return _to_label(text)

    @classmethod
    def decode(cls, raw: bytes, kind: LabelKind) -> DatasetLabel1:
        text = _from_label(raw, f"{kind}1")
        count = _int_field(text[54:60], "block count") + 10**6 * _int_field(text[76:80], "block count")
        return cls(
            kind=kind,
            dsname=text[4:21].rstrip(),
            volser=text[21:27].rstrip(),
            file_seq=_int_field(text[31:35], "file sequence number"),
            block_count=count,
            created=decode_date(text[41:47]),
            expires=decode_date(text[47:53]),
            system=text[60:73].rstrip(),
        )

    def trailer(self, block_count: int) -> DatasetLabel1:
        return attrs.evolve(self, kind="EOF", block_count=block_count)


@attrs.frozen
class DatasetLabel2:
    """HDR2/EOF2: the DCB. RECFM=U means every block is a record as it stands."""

    kind: LabelKind
    block_size: int
    recfm: str = "U"
    record_length: int = 0
    job: str = ""

    def encode(self) -> bytes:
        if self.recfm[:1] not in ("U", "F", "V"):
            raise LabelError(f"record format {self.recfm!r} is not U, F or V")
        large = self.block_size > MAX_CLASSIC_BLKSIZE
        text = (
            f"{self.kind}2"
            + self.recfm[:1]
            + _digits(0 if large else self.block_size, 5, "block size")
            + _digits(self.record_length, 5, "record length")
            + " "  # density: not meaningful for a cartridge
            + "0"  # the data set starts on this volume
            + _field(self.job, 17, "job/step")
            + "  "  # recording technique
            + " "  # no control characters
            + " "
            + self.recfm[1:2].ljust(1)  # block attribute
            + " " * 2
            + " " * 6  # device serial
            + " "  # not a checkpoint data set
            + " " * 22
            + (_digits(self.block_size, 10, "block size") if large else " " * 10)
        )
        return _to_label(text)

    @classmethod
    def decode(cls, raw: bytes, kind: LabelKind) -> DatasetLabel2:
        text = _from_label(raw, f"{kind}2")
        block_size = _int_field(text[5:10], "block size") or _int_field(text[70:80], "large block size")
        return cls(
            kind=kind,
            block_size=block_size,
            recfm=(text[4] + text[38]).rstrip(),
            record_length=_int_field(text[10:15], "record length"),
            job=text[17:34].rstrip(),
        )

    def trailer(self) -> DatasetLabel2:
        return attrs.evolve(self, kind="EOF")
