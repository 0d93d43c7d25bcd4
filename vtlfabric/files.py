"""What the fabric does to its files beyond reading and writing them: it makes what it
wrote durable, and gives the pages back once it is done with them.

A drive streams past its data, and a restore hands its files to the client: neither
reads them again soon. Pages kept for them grow the page cache by every job, and on a
VM whose host takes free pages back, each fresh page costs more than the write that
fills it (docs/PERFORMANCE.md, "The page cache round"). The kernel drops clean pages only,
so callers sync first.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_FADVISE = hasattr(os, "posix_fadvise")  # Linux and the BSDs; elsewhere the cache keeps pages
_FOLIO = 2 << 20  # the largest page-cache folio readahead builds (x86-64, arm64: a PMD)


def release_pages(fd: int, start: int, end: int) -> None:
    """Let the kernel drop the cached pages of ``fd``'s bytes ``start`` to ``end``.

    The kernel drops only whole folios inside the range, and a read fills the cache
    with aligned folios of up to 2 MiB: one that straddles ``start`` was kept by the range
    before (callers release in order), so the range begins at the folio boundary below."""
    if end > start and _FADVISE:  # a length of 0 would mean "to the end of the file"
        start -= start % _FOLIO
        with contextlib.suppress(OSError):  # advice: it must never fail a job
            os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)


def sync_data(fd: int) -> None:
    """Make a file's data durable (and its size: what a reader needs of the metadata)."""
    getattr(os, "fdatasync", os.fsync)(fd)  # macOS has no fdatasync


def sync_directory(directory: Path) -> None:
    """Make a new name or a rename durable: the entry lives in the directory."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
