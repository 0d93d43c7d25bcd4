"""An image looked at offline: what is on it, and the first thing wrong with it.

``vtlfabric tape ls`` and ``tape verify`` only format what ``inspect_image``
returns. Pure, as ``records`` is: it reads the binary file object it is handed
and knows no path.

Every record is read with the codec (``records.read_record``), so every header
is checked: known flags, a tapemark's shape, beginning- and end-of-record flags
in order, and the previous length each header carries. That back link is what
Hercules uses to space backwards; it writes it (the length of the chunk before,
0 after a tapemark, as ``encode_tapemark`` does) but never checks it when reading
forwards, so an image with a broken chain reads fine in ``hetget`` and still
cannot be spaced back over. A standard-labelled image is walked through the
label grammar of ``layout`` as well. The walk stops at the first problem.

A damaged chunk length shows only at the header after it, which the codec then
looks for in the wrong place. So before blaming the header where the codec
stopped, ``inspect_image`` looks for the real next header: one, in reach of the
header before, whose previous length chains back to it. If there is one, the
length of the header before is what is wrong, and that is where the problem is.
"""

from __future__ import annotations

import enum
import re
from typing import BinaryIO

import attrs

from vtlfabric.tape.labels import DatasetLabel1, DatasetLabel2, Vol1, label_id
from vtlfabric.tape.layout import Layout, Phase
from vtlfabric.tape.records import (
    BOR,
    EOR,
    HEADER_SIZE,
    KNOWN_FLAGS1,
    MAX_CHUNK,
    TAPEMARK,
    ChunkHeader,
    FormatError,
    Record,
    TornRecord,
    file_size,
    read_record,
)
from vtlfabric.vocab import HERCULES_MAX_BLOCK


class Labels(enum.Enum):
    """How to read an image's files."""

    AUTO = "auto"  # standard labels if the first block is a VOL1, else as NONE
    STANDARD = "standard"  # VOL1 first, then the label grammar of ``layout`` throughout
    NONE = "none"  # records only: a file is the blocks up to each tapemark (hetmap's files), and any after the last


@attrs.frozen
class Problem:
    """What is wrong, and the byte offset of the header or record to look at."""

    offset: int
    message: str

    def __str__(self) -> str:
        return f"offset {self.offset}: {self.message}"


@attrs.frozen
class Chunk:
    """One 6-byte header and the chunk of data behind it."""

    offset: int
    length: int
    prev_length: int
    flags: int


@attrs.frozen
class Block:
    """A record: a data block (one chunk or more) or a tapemark."""

    offset: int
    length: int
    tapemark: bool
    chunks: tuple[Chunk, ...]
    label: str | None = None  # "VOL1", "HDR1"...: the block is a standard label


@attrs.frozen
class TapeFile:
    """A tape file: a data set with its labels, or on an unlabelled image the blocks up to a tapemark.

    ``offset`` is where it starts (its HDR1 if labelled), ``data_offset`` its
    first data block, ``end`` just past its last record.
    """

    number: int
    offset: int
    end: int
    blocks: int
    bytes: int
    closed: bool
    data_offset: int | None = None
    hdr1: DatasetLabel1 | None = None
    hdr2: DatasetLabel2 | None = None


@attrs.frozen
class Inspection:
    """Everything read from an image, up to its end or its first problem.

    ``end`` is just past the last whole record read without a problem;
    ``labels`` is how the files were read (STANDARD or NONE, never AUTO).
    """

    size: int
    end: int
    labels: Labels
    vol1: Vol1 | None
    files: tuple[TapeFile, ...]
    records: int
    tapemarks: int
    largest_block: int
    problem: Problem | None = None
    warnings: tuple[Problem, ...] = ()
    blocks: tuple[Block, ...] = ()  # every record, when asked for

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def data_blocks(self) -> int:
        return sum(f.blocks for f in self.files)

    @property
    def data_bytes(self) -> int:
        return sum(f.bytes for f in self.files)


def inspect_image(f: BinaryIO, *, labels: Labels = Labels.AUTO, list_blocks: bool = False) -> Inspection:
    """Read every header of the image in ``f`` and, as ``labels`` says, its label structure."""
    walk = _Walk(f, file_size(f), labels, list_blocks)
    walk.run()
    return walk.result()


# ---------------------------------------------------------------- the walk


@attrs.define
class _Walk:
    f: BinaryIO
    size: int
    labels: Labels
    list_blocks: bool
    layout: Layout | None = None
    offset: int = 0
    prev_length: int = 0
    last_header: int | None = None  # the previous record's last chunk header
    records: int = 0
    tapemarks: int = 0
    largest: int = 0
    problem: Problem | None = None
    blocks: list[Block] = attrs.field(factory=list)
    # Labelled: each file's HDR1 and HDR2 as they were read.
    headers: dict[int, tuple[DatasetLabel1, DatasetLabel2 | None]] = attrs.field(factory=dict)
    # Unlabelled: the files so far, and the one being read.
    files: list[TapeFile] = attrs.field(factory=list)
    file_start: int = 0
    file_blocks: int = 0
    file_bytes: int = 0
    # Blocks Hercules' readers disagree about, or cannot all read: offsets (and lengths).
    empty: list[int] = attrs.field(factory=list)
    oversized: list[tuple[int, int]] = attrs.field(factory=list)

    def run(self) -> None:
        if self.labels is Labels.STANDARD:
            self.layout = Layout()
        while True:
            try:
                record = read_record(self.f, self.offset, self.prev_length, size=self.size, read_data=self._wants_data())
            except FormatError as exc:
                self.problem = _diagnose(self.f, self.size, self.offset, self.last_header, exc)
                return
            if record is None:
                break
            if self.records == 0 and self.labels is Labels.AUTO:
                self._choose_labels(record)
            try:
                self._take(record)
            except FormatError as exc:
                # A label of the wrong length, a block too long: the length of its last chunk may be what is wrong.
                last = record.end - HEADER_SIZE - record.last_chunk
                self.problem = _wrong_length(self.f, self.size, last) or Problem(exc.offset, exc.reason)
                return
            self.records += 1
            self.offset, self.prev_length = record.end, record.last_chunk
            self.last_header = record.end - HEADER_SIZE - record.last_chunk
        if self.layout is not None and self.layout.vol1 is None:
            self.problem = Problem(0, "the image is empty: no VOL1 label")

    def _wants_data(self) -> bool:
        if self.layout is None:
            return self.records == 0 and self.labels is Labels.AUTO  # to see whether it is a VOL1
        return self.layout.expects_label()

    def _choose_labels(self, record: Record) -> None:
        if not record.tapemark and label_id(record.data or b"") == "VOL1":
            self.layout = Layout()

    def _take(self, record: Record) -> None:
        if self.layout is not None:
            self._take_labelled(record, self.layout)
        else:
            self._take_unlabelled(record)
        if record.tapemark:
            self.tapemarks += 1
        else:
            self.largest = max(self.largest, record.length)
            if record.length == 0:
                self.empty.append(record.offset)
            elif record.length > HERCULES_MAX_BLOCK:
                self.oversized.append((record.offset, record.length))
        if self.list_blocks:
            label = label_id(record.data) if record.data is not None else None
            self.blocks.append(Block(record.offset, record.length, record.tapemark, _chunks(self.f, record), label))

    def _take_labelled(self, record: Record, layout: Layout) -> None:
        current = layout.current
        hdr2 = current.hdr2 if current is not None and layout.phase is Phase.DATA else None
        if hdr2 is not None and current is not None and not record.tapemark and 0 < hdr2.block_size < record.length:
            raise FormatError(
                record.offset,
                f"a {record.length}-byte block in tape file {current.file_no}, whose HDR2 block size is {hdr2.block_size}",
            )
        layout.advance(record)
        if layout.current is not None:
            self.headers[layout.current.file_no] = (layout.current.hdr1, layout.current.hdr2)

    def _take_unlabelled(self, record: Record) -> None:
        if not record.tapemark:
            self.file_blocks += 1
            self.file_bytes += record.length
            return
        self.files.append(self._unlabelled_file(end=record.end, closed=True))
        self.file_start, self.file_blocks, self.file_bytes = record.end, 0, 0

    def _unlabelled_file(self, *, end: int, closed: bool) -> TapeFile:
        number = len(self.files) + 1
        data = self.file_start if self.file_blocks else None
        return TapeFile(number, self.file_start, end, self.file_blocks, self.file_bytes, closed, data)

    def result(self) -> Inspection:
        if self.layout is not None:
            files = []
            for info in self.layout.all_files():
                hdr1, hdr2 = self.headers.get(info.file_no, (None, None))
                files.append(
                    TapeFile(
                        info.file_no, info.offset, info.end, info.blocks, info.bytes, info.closed, info.data_offset, hdr1, hdr2
                    )
                )
            vol1 = self.layout.vol1
        else:
            files = list(self.files)
            if self.file_blocks:
                files.append(self._unlabelled_file(end=self.offset, closed=False))
            vol1 = None
        return Inspection(
            size=self.size,
            end=self.offset,
            labels=Labels.NONE if self.layout is None else Labels.STANDARD,
            vol1=vol1,
            files=tuple(files),
            records=self.records,
            tapemarks=self.tapemarks,
            largest_block=self.largest,
            problem=self.problem,
            warnings=self._warnings(),
            blocks=tuple(self.blocks),
        )

    def _warnings(self) -> tuple[Problem, ...]:
        found = []
        if self.empty:
            found.append(
                Problem(
                    self.empty[0],
                    f"{_count(len(self.empty), 'empty data block')}, the first here: "
                    "hetget and hetmap read an empty block, but Hercules' emulated drive reads a tapemark",
                )
            )
        if self.oversized:
            offset, length = self.oversized[0]
            found.append(
                Problem(
                    offset,
                    f"{_count(len(self.oversized), 'block')} over {HERCULES_MAX_BLOCK} bytes, the first here ({length}): "
                    f"Hercules 3's hetget and hetmap read at most {HERCULES_MAX_BLOCK} (HETMAX_BLOCKSIZE)",
                )
            )
        return tuple(found)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------- headers


def _header_at(f: BinaryIO, pos: int) -> ChunkHeader:
    f.seek(pos)
    return ChunkHeader.unpack(f.read(HEADER_SIZE))


def _chunks(f: BinaryIO, record: Record) -> tuple[Chunk, ...]:
    """The headers of a record the codec has read whole."""
    out, pos = [], record.offset
    for _ in range(record.chunks):
        header = _header_at(f, pos)
        out.append(Chunk(pos, header.length, header.prev_length, header.flags1))
        pos += HEADER_SIZE + header.length
    return tuple(out)


# ---------------------------------------------------------------- damage


def _diagnose(f: BinaryIO, size: int, record_offset: int, last_header: int | None, exc: FormatError) -> Problem:
    """The problem behind the codec's complaint about the record at ``record_offset``.

    ``last_header`` is the last chunk header of the record before (None at the
    start of the image).
    """
    before, pos, cut = _failure_point(f, size, record_offset, last_header, exc)
    # The header whose length led here: the one before, or if its own chunk runs off the image, itself.
    suspect = pos if cut == "chunk" else before
    if suspect is not None and (wrong := _wrong_length(f, size, suspect)) is not None:
        return wrong
    if isinstance(exc, TornRecord):
        return Problem(record_offset, f"the image is cut short in this record: {exc.reason} ({size} bytes)")
    header = _header_at(f, pos)
    if before is None:
        if header.prev_length != 0:
            return Problem(pos, f"the first block header's previous length is {header.prev_length}, not 0")
        return Problem(exc.offset, exc.reason)
    previous = _header_at(f, before)
    what = "tapemark" if previous.is_tapemark else "chunk"
    if header.prev_length != previous.length:
        return Problem(
            pos,
            f"block header's previous length {header.prev_length} does not match the {what} before it "
            f"({previous.length} bytes, header at {before})",
        )
    begins = header.is_tapemark or bool(header.flags1 & BOR)
    if not previous.is_tapemark and bool(previous.flags1 & EOR) != begins:
        # A record's end and the next one's beginning disagree: either flag may be the damaged one.
        return Problem(
            exc.offset,
            f"{exc.reason}, after the chunk at {before} (flags {previous.flags1:#04x}): one of the two headers is wrong",
        )
    return Problem(exc.offset, exc.reason)


def _wrong_length(f: BinaryIO, size: int, at: int) -> Problem | None:
    """The problem with the length of the header ``at``, if the real next header is not where it leads."""
    found = _real_next_header(f, size, at)
    if found is None:
        return None
    return Problem(
        at,
        f"block header's length {_header_at(f, at).length} is wrong: the next header is at {found}, "
        f"whose previous length says this chunk holds {found - at - HEADER_SIZE} bytes",
    )


def _failure_point(
    f: BinaryIO, size: int, record_offset: int, last_header: int | None, exc: FormatError
) -> tuple[int | None, int, str | None]:
    """Where in the record the codec stopped: (the header before, the header there, what was cut).

    What was cut is "header" if the image ends inside the header at ``pos``,
    "chunk" if inside its data, None if the header at ``pos`` failed a check.
    Every header before ``pos`` passed the codec's checks.
    """
    before, pos = last_header, record_offset
    while True:
        if pos + HEADER_SIZE > size:
            return before, pos, "header"
        if not isinstance(exc, TornRecord) and pos >= exc.offset:
            return before, pos, None
        header = _header_at(f, pos)
        if pos + HEADER_SIZE + header.length > size:
            return before, pos, "chunk"
        before, pos = pos, pos + HEADER_SIZE + header.length


# Where a header could start: any lengths, then flags1 with only known bits, then flags2 zero.
# (A lookahead, so that overlapping candidates are all found.)
_MAYBE_HEADER = re.compile(b"(?=.{4}[" + re.escape(bytes(v for v in range(256) if not v & ~KNOWN_FLAGS1)) + b"]\x00)", re.DOTALL)


def _real_next_header(f: BinaryIO, size: int, at: int) -> int | None:
    """Where the header after the one ``at`` really is, if its length is wrong: None if it is not.

    The header after it is recognised by its previous length, which must equal
    its distance from the chunk at ``at``. Only where that length does not lead is looked at.
    """
    header = _header_at(f, at)
    if header.is_tapemark:
        return None  # the codec checks that a tapemark's length is 0
    start = at + HEADER_SIZE
    f.seek(start)
    window = f.read(max(0, min(MAX_CHUNK + HEADER_SIZE, size - start)))
    for match in _MAYBE_HEADER.finditer(window):
        gap = match.start()
        if gap == header.length:
            continue
        after = ChunkHeader.unpack(window[gap : gap + HEADER_SIZE])
        if after.prev_length == gap and _could_follow(header, after) and start + gap + HEADER_SIZE + after.length <= size:
            return start + gap
    return None


def _could_follow(header: ChunkHeader, after: ChunkHeader) -> bool:
    """Whether ``after`` has flags that can follow ``header``'s."""
    if after.flags2 or after.flags1 & ~KNOWN_FLAGS1:
        return False
    if header.flags1 & EOR:
        return (after.flags1 == TAPEMARK and after.length == 0) or (bool(after.flags1 & BOR) and not after.is_tapemark)
    return not after.flags1 & (BOR | TAPEMARK)
