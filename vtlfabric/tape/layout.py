"""An image's label grammar, as a state machine over its records.

Layout (IBM standard labels, so Hercules' ``hetget IMAGE OUT N`` finds file N
by its data set sequence number and copies its blocks out unchanged)::

    VOL1
    HDR1 HDR2 TM  data... TM  EOF1 EOF2 TM      <- tape file 1
    HDR1 HDR2 TM  data... TM  EOF1 EOF2 TM      <- tape file 2
    ...

The last file may be open: its labels and some data, no closing records yet.
Reading and writing advance the same state machine, so an image we write is
by construction one we accept when we open it again.
"""

from __future__ import annotations

import enum

import attrs

from vtlfabric.tape.labels import LABEL_SIZE, DatasetLabel1, DatasetLabel2, LabelError, Vol1, label_id
from vtlfabric.tape.records import TAPEMARK_SIZE, FormatError, Record, encoded_block_size


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


class Phase(enum.IntEnum):
    """Position in the label grammar: what the last record completed."""

    START = enum.auto()  # nothing yet; VOL1 must come first
    BETWEEN = enum.auto()  # after VOL1 or a file's final tapemark
    HDR1 = enum.auto()
    HDR2 = enum.auto()
    DATA = enum.auto()  # after the header tapemark: data blocks may follow
    DATA_END = enum.auto()  # after the tapemark that ends the data
    EOF1 = enum.auto()
    EOF2 = enum.auto()


_LABEL_PHASES = {Phase.START, Phase.BETWEEN, Phase.HDR1, Phase.DATA_END, Phase.EOF1}


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
        return FileInfo(self.file_no, self.offset, self.blocks, self.bytes, closed, self.data_offset, end, self.hdr1.dsname)


@attrs.define
class Layout:
    """Where a scan, or a writer, stands in the image's label grammar."""

    files: list[FileInfo] = attrs.field(factory=list)
    current: _OpenFile | None = None
    phase: Phase = Phase.START
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

    def resume_at(self, index: int) -> Layout:
        """The state just before file ``index`` (0-based) began: what a rescan starts from."""
        if index == 0:
            end, prev = self.after_vol1
        else:
            end, prev = self.all_files()[index].offset, 0  # every file after the first follows a tapemark
        return Layout(self.files[:index], None, Phase.BETWEEN, self.vol1, end, prev, self.after_vol1)

    def advance(self, record: Record) -> None:
        """Take one more record, or raise FormatError if it cannot come here."""
        try:
            _STEPS[self.phase](self, record)
        except LabelError as exc:
            raise FormatError(record.offset, str(exc)) from exc
        self.end, self.prev_length = record.end, record.last_chunk

    def closing_records(self, block_size_limit: int) -> list[bytes | None]:
        """What the open file still needs to be complete, from wherever it stopped (None: a tapemark).

        A file cut short before its HDR2 gets one naming ``block_size_limit``.
        """
        current = self.current
        assert current is not None
        hdr2 = current.hdr2 or DatasetLabel2("HDR", block_size_limit)
        trailer: list[bytes | None] = [None, current.hdr1.trailer(current.blocks).encode(), hdr2.trailer().encode(), None]
        header: list[bytes | None] = [hdr2.encode(), None]
        todo = {
            Phase.HDR1: header + trailer,
            Phase.HDR2: header[1:] + trailer,
            Phase.DATA: trailer,
            Phase.DATA_END: trailer[1:],
            Phase.EOF1: trailer[2:],
            Phase.EOF2: trailer[3:],
        }
        return todo[self.phase]

    # One method per phase: each knows the only record that may follow.

    def _take_vol1(self, record: Record) -> None:
        self.vol1 = Vol1.decode(_label(record, "VOL1"))
        self.after_vol1 = (record.end, record.last_chunk)
        self.phase = Phase.BETWEEN

    def _take_hdr1(self, record: Record) -> None:
        assert self.vol1 is not None
        hdr1 = DatasetLabel1.decode(_label(record, "HDR1"), "HDR")
        file_no = len(self.files) + 1
        if hdr1.file_seq != file_no:
            raise FormatError(record.offset, f"HDR1 gives file sequence {hdr1.file_seq}, expected {file_no}")
        if hdr1.volser != self.vol1.volser:
            raise FormatError(record.offset, f"HDR1 names volume {hdr1.volser!r}, VOL1 says {self.vol1.volser!r}")
        self.current = _OpenFile(file_no, record.offset, hdr1)
        self.phase = Phase.HDR1

    def _take_hdr2(self, record: Record) -> None:
        assert self.current is not None
        self.current.hdr2 = DatasetLabel2.decode(_label(record, "HDR2"), "HDR")
        self.phase = Phase.HDR2

    def _take_header_tapemark(self, record: Record) -> None:
        assert self.current is not None
        _require_tapemark(record, "after HDR2")
        self.current.data_offset = record.end
        self.phase = Phase.DATA

    def _take_data(self, record: Record) -> None:
        assert self.current is not None
        if record.tapemark:
            self.phase = Phase.DATA_END
            return
        self.current.blocks += 1
        self.current.bytes += record.length

    def _take_eof1(self, record: Record) -> None:
        assert self.current is not None
        eof1 = DatasetLabel1.decode(_label(record, "EOF1"), "EOF")
        if eof1.block_count != self.current.blocks:
            raise FormatError(record.offset, f"EOF1 counts {eof1.block_count} blocks, the file holds {self.current.blocks}")
        if eof1.file_seq != self.current.file_no:
            raise FormatError(record.offset, f"EOF1 gives file sequence {eof1.file_seq}, expected {self.current.file_no}")
        self.phase = Phase.EOF1

    def _take_eof2(self, record: Record) -> None:
        DatasetLabel2.decode(_label(record, "EOF2"), "EOF")
        self.phase = Phase.EOF2

    def _take_final_tapemark(self, record: Record) -> None:
        assert self.current is not None
        _require_tapemark(record, "after EOF2")
        self.files.append(self.current.info(closed=True, end=record.end))
        self.current = None
        self.phase = Phase.BETWEEN


_STEPS = {
    Phase.START: Layout._take_vol1,
    Phase.BETWEEN: Layout._take_hdr1,
    Phase.HDR1: Layout._take_hdr2,
    Phase.HDR2: Layout._take_header_tapemark,
    Phase.DATA: Layout._take_data,
    Phase.DATA_END: Layout._take_eof1,
    Phase.EOF1: Layout._take_eof2,
    Phase.EOF2: Layout._take_final_tapemark,
}


def closing_size(chunk_size: int) -> int:
    """Room to close a file whose data is complete: tapemark, EOF1, EOF2, tapemark."""
    label = encoded_block_size(LABEL_SIZE, chunk_size)
    return 2 * TAPEMARK_SIZE + 2 * label


def _label(record: Record, ident: str) -> bytes:
    if record.tapemark:
        raise FormatError(record.offset, f"expected a {ident} label, found a tapemark")
    if record.data is None or label_id(record.data) != ident:
        found = label_id(record.data or b"") or f"a {record.length}-byte block"
        raise FormatError(record.offset, f"expected a {ident} label, found {found}")
    return record.data


def _require_tapemark(record: Record, where: str) -> None:
    if not record.tapemark:
        raise FormatError(record.offset, f"expected a tapemark {where}, found a {record.length}-byte block")
