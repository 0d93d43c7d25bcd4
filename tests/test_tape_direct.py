"""Span reads that go around the page cache: the same bytes as a plain read, whatever
the file system makes of them."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import cached_bytes, page_cache_skip
from vtlfabric.tape import direct
from vtlfabric.tape.direct import ImageReads, ReadBuffer
from vtlfabric.tape.image import TapeImage

BIG = 64 * 2**20


def _reads(path: Path) -> tuple[ImageReads, BinaryIO]:
    f = path.open("rb", buffering=0)
    return ImageReads.open(path, f), f


def _direct_or_skip(reads: ImageReads) -> None:
    if reads.direct is None:
        pytest.skip("this file system (or system) takes no O_DIRECT reads")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(0, 3 * direct.ALIGN + 5),
    ranges=st.lists(st.tuples(st.integers(0, 4 * direct.ALIGN), st.integers(0, 2 * direct.ALIGN + 3)), min_size=1, max_size=6),
    buffered=st.booleans(),
)
def test_a_read_is_the_files_bytes_at_any_offset_and_length(size: int, ranges: list[tuple[int, int]], buffered: bool) -> None:
    data = os.urandom(size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.aws"
        path.write_bytes(data)
        reads, f = _reads(path)
        if buffered:
            reads.close()  # as on a system without O_DIRECT
        buffer = ReadBuffer()  # one buffer for every read, as a span reader keeps one
        try:
            for start, length in ranges:
                assert bytes(reads.read_range(start, start + length, buffer)) == data[start : start + length]
        finally:
            reads.close()
            f.close()


def test_a_direct_read_sees_what_was_written_and_not_yet_synced(tmp_path: Path) -> None:
    path = tmp_path / "image.aws"
    path.write_bytes(b"\0" * 3 * direct.ALIGN)
    reads, f = _reads(path)
    try:
        _direct_or_skip(reads)
        with path.open("r+b") as w:
            w.seek(direct.ALIGN + 10)
            w.write(b"written, still dirty")
            w.flush()  # to the page cache, not to the disk
            assert bytes(reads.read_range(direct.ALIGN + 10, direct.ALIGN + 30, ReadBuffer())) == b"written, still dirty"
    finally:
        reads.close()
        f.close()


def test_a_path_that_names_another_file_now_is_read_through_the_open_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "image.aws"
    path.write_bytes(b"the mounted image")
    with path.open("rb", buffering=0) as f:
        (tmp_path / "other").write_bytes(b"another image now")
        os.replace(tmp_path / "other", path)
        reads = ImageReads.open(path, f)
        try:
            assert bytes(reads.read_range(0, 17, ReadBuffer())) == b"the mounted image"
        finally:
            reads.close()


def test_a_refused_direct_read_is_read_buffered_from_then_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A device with blocks larger than ALIGN refuses a direct read (EINVAL): that read
    and every later one are read buffered, and right."""
    data = os.urandom(3 * 4096)
    path = tmp_path / "image.aws"
    path.write_bytes(data)
    reads, f = _reads(path)
    try:
        _direct_or_skip(reads)
        refused, preadv = reads.direct, os.preadv
        asked: list[int] = []

        def refusing(at: int, buffers: list[memoryview], offset: int) -> int:
            asked.append(at)
            if at == refused:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            return preadv(at, buffers, offset)

        monkeypatch.setattr(os, "preadv", refusing)
        assert bytes(reads.read_range(1000, 5000, ReadBuffer())) == data[1000:5000]
        assert bytes(reads.read_range(8, 16, ReadBuffer())) == data[8:16]
        assert asked.count(refused) == 1
    finally:
        reads.close()
        f.close()


def test_direct_span_reads_leave_none_of_a_file_cached(tmp_path: Path) -> None:
    """Direct span reads (verify's) take no page cache pages; plain ones let the kernel
    read ahead, and keep what it read."""
    if why := page_cache_skip(tmp_path):
        pytest.skip(why)
    path = tmp_path / "image.aws"
    blocks = [os.urandom(60 * 1024) for _ in range(64)]
    with TapeImage.create(path, "PR0001L8", BIG) as image:
        image.begin_file()
        image.write_blocks(blocks)
        image.end_file()
        image.release(0, image.flush())
    for direct_reads in (True, False):
        with TapeImage.open(path, BIG) as image:
            spans = image.read_spans(1, direct=direct_reads)
            if direct_reads:
                _direct_or_skip(spans.reads)
            read = b""
            while (span := spans.next_span(1 << 20))[0]:
                read += span[1]
            assert read == b"".join(blocks)
            assert (cached_bytes([path]) > 64 * 1024) != direct_reads
            image.release(0, image.end_offset())
