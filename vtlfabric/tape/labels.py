"""IBM standard tape labels: VOL1, and the HDR/EOF pairs around each data set.

Each label is one 80-byte block in EBCDIC. Hercules' ``hetget`` reads them to
find a tape file by its data set sequence number.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

import attrs

LABEL_SIZE = 80
LABEL_CODEC = "cp037"

# A data set's block count is written as 6 low digits plus 4 high ones.
MAX_LABEL_BLOCK_COUNT = 10**10 - 1
# HDR1 holds the data set sequence number in 4 digits; hetget refuses more.
MAX_FILE_SEQUENCE = 9999
# BLKSIZE in HDR2 is limited to this; larger blocks use the 10-digit field
# (IBM's large block interface convention).
MAX_CLASSIC_BLKSIZE = 32760


class LabelError(ValueError):
    """80 bytes that are not the standard label expected."""


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
