"""Reads of an image that go around the page cache: a drive streams past what it reads.

A buffered read of pages the cache does not hold has the kernel take a fresh page for
every 4 KiB before it copies the data out. On a VM whose host takes free pages back, a
4 MiB read of them cost 10-28 ms of kernel time, and the event loop's thread waited
behind it on the run queue (docs/PERFORMANCE.md, "The direct reads round"). An
``O_DIRECT`` read moves the disk's bytes into one buffer the reader keeps: no new cache
pages, and the reader copies a span once, out of its own buffer.

Not every system takes it: there is no ``O_DIRECT`` on macOS, tmpfs refused it before
Linux 6.6 (and since takes it, but reads through its cache all the same), and a device
whose blocks are larger than ``ALIGN`` refuses the read. There, reads are buffered, as
before. The kernel writes back dirty pages of a range before it reads that range
directly, so a direct read sees every write made through the cache.
"""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path
from typing import BinaryIO

import attrs
import structlog

log = structlog.get_logger()

ALIGN = 4096  # what a direct read's offset, length and buffer must be multiples of here
_O_DIRECT = getattr(os, "O_DIRECT", 0)  # 0: the system has none


@attrs.define(eq=False)
class ReadBuffer:
    """Page-aligned memory for one reader's reads, kept from one read to the next: its
    pages are faulted in once. Grows to the largest read asked of it."""

    _map: mmap.mmap | None = None

    def view(self, size: int) -> memoryview:
        """``size`` bytes of it, from its start: each read overwrites the one before. (A read
        larger than any before takes new memory; the old stays while a view holds it.)"""
        if self._map is None or len(self._map) < size:
            self._map = mmap.mmap(-1, max(_aligned_up(size), ALIGN))
        return memoryview(self._map)[:size]


@attrs.define(eq=False)
class ImageReads:
    """How one open image is read in bulk: directly when the file takes it, else buffered.

    ``f`` is the image's own file, which the image closes (a read after that fails, as
    any read of a closed file does); ``direct`` is a second descriptor of the same file
    opened with ``O_DIRECT`` (None: reads are buffered), closed by ``close``."""

    path: Path
    f: BinaryIO
    direct: int | None = None
    _refused: bool = False  # a direct read was refused: the rest go buffered

    @classmethod
    def open(cls, path: Path, f: BinaryIO) -> ImageReads:
        """Reads of the image open as ``f`` at ``path``: a direct descriptor if the file
        takes one, and only if ``path`` still names the file ``f`` has open."""
        return cls(path, f, _open_direct(path, f.fileno()))

    def read_range(self, start: int, end: int, buffer: ReadBuffer) -> memoryview:
        """The image's bytes ``start`` to ``end`` (fewer if it ends before), as a view of
        ``buffer``: valid until the buffer's next read."""
        direct = None if self._refused else self.direct
        if direct is not None:
            try:
                return _read_direct(direct, start, end, buffer)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._refuse(exc)
        view = buffer.view(end - start)
        return view[: _fill(self.f.fileno(), view, start, 1)]

    def close(self) -> None:
        if self.direct is not None:
            os.close(self.direct)
            self.direct = None

    def _refuse(self, exc: OSError) -> None:
        # The descriptor stays open until close(): another reader may be in a read on it.
        if not self._refused:
            log.info("tape.direct_reads_refused", path=str(self.path), error=exc.strerror)
        self._refused = True


def _open_direct(path: Path, fd: int) -> int | None:
    if not _O_DIRECT:
        return None
    try:
        direct = os.open(path, os.O_RDONLY | _O_DIRECT | os.O_CLOEXEC)
    except OSError as exc:  # EINVAL: the filesystem does not do it; anything else, the buffered fd still works
        log.debug("tape.direct_reads_refused", path=str(path), error=exc.strerror)
        return None
    if _same_file(os.fstat(fd), os.fstat(direct)):
        return direct
    os.close(direct)  # the name was given to another file since the image was opened
    return None


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_direct(fd: int, start: int, end: int, buffer: ReadBuffer) -> memoryview:
    """As ``ImageReads.read_range``, read from the aligned blocks that hold ``start`` to ``end``."""
    lo = start - start % ALIGN
    view = buffer.view(_aligned_up(end) - lo)
    got = _fill(fd, view, lo, ALIGN)
    skip = start - lo
    return view[skip : max(skip, min(got, end - lo))]


def _fill(fd: int, view: memoryview, offset: int, align: int) -> int:
    """Read into ``view`` from ``offset`` until it is full or the file ends; return how much
    was read. A read that stops short of a multiple of ``align`` has met the file's end
    (and a direct read from there would be refused as unaligned)."""
    filled = 0
    while filled < len(view):
        n = os.preadv(fd, [view[filled:]], offset + filled)
        filled += n
        if n == 0 or n % align:
            break
    return filled


def _aligned_up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN
