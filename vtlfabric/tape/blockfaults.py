"""Block-level media faults of one library's cartridges: regions that cannot be read,
and writes that will fail. Set by ``ctl fault cartridge:BARCODE read-error|write-error``;
the readers and writers of ``tape.stream`` ask here before each block.

A read fault holds until cleared; a write fault fails the next write, once. Nothing
here logs or raises: the caller knows the job and the copy, and says what happened.
"""

from __future__ import annotations

import re

import attrs

_FILE_BLOCK = re.compile(r"([0-9]{1,9})\.([0-9]{1,9})")
_OFFSET = re.compile(r"[0-9]{1,15}")
WHERE = "FILE.BLOCK (tape file, data block from 1) or OFFSET (a byte of the image); nothing: every block"


@attrs.frozen
class ReadFault:
    """Where a cartridge cannot be read: a data block of a tape file, the block holding
    a byte offset of the image, or (neither) every data block."""

    file_no: int | None = None
    block: int | None = None
    offset: int | None = None

    @classmethod
    def parse(cls, where: str | None) -> ReadFault:
        """Raises ValueError on a malformed place."""
        text = (where or "").strip()
        if not text:
            return cls()
        if match := _FILE_BLOCK.fullmatch(text):
            file_no, block = int(match.group(1)), int(match.group(2))
            if file_no < 1 or block < 1:
                raise ValueError(f"{text!r}: tape files and blocks count from 1")
            return cls(file_no=file_no, block=block)
        if _OFFSET.fullmatch(text):
            return cls(offset=int(text))
        raise ValueError(f"{text!r} is not a place on a cartridge: give {WHERE}")

    def covers(self, file_no: int, block: int, start: int, end: int) -> bool:
        if self.file_no is not None:
            return (self.file_no, self.block) == (file_no, block)
        if self.offset is not None:
            return start <= self.offset < end
        return True

    def __str__(self) -> str:
        if self.file_no is not None:
            return f"file {self.file_no} block {self.block}"
        if self.offset is not None:
            return f"the block at offset {self.offset}"
        return "every data block"


@attrs.define
class BlockFaults:
    reads: dict[str, tuple[ReadFault, ...]] = attrs.field(factory=dict)  # barcode -> unreadable places
    writes: dict[str, int] = attrs.field(factory=dict)  # barcode -> writes still to fail

    def add_read(self, barcode: str, where: str | None) -> ReadFault:
        """Make a place on the cartridge unreadable (see ``ReadFault.parse``; ValueError if malformed)."""
        fault = ReadFault.parse(where)
        # A new tuple each time: a reader in a worker thread may be iterating the old one.
        self.reads[barcode] = (*self.reads.get(barcode, ()), fault)
        return fault

    def add_write(self, barcode: str) -> None:
        self.writes[barcode] = self.writes.get(barcode, 0) + 1

    def clear(self, barcode: str) -> list[str]:
        """Drop every block fault of a cartridge; return what was cleared."""
        cleared = [f"read-error at {f}" for f in self.reads.pop(barcode, ())]
        cleared += ["write-error"] * self.writes.pop(barcode, 0)
        return cleared

    def unreadable(self, barcode: str, file_no: int, block: int, start: int, end: int) -> ReadFault | None:
        """The read fault covering this block (its record spans image bytes start..end), if any."""
        for fault in self.reads.get(barcode, ()):
            if fault.covers(file_no, block, start, end):
                return fault
        return None

    def take_write(self, barcode: str) -> bool:
        """True if this write is to fail (the fault is then used up)."""
        left = self.writes.get(barcode, 0)
        if not left:
            return False
        if left == 1:
            del self.writes[barcode]
        else:
            self.writes[barcode] = left - 1
        return True
