from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import cached_bytes, page_cache_skip, payload, write_image
from vtlfabric.tape import awstape
from vtlfabric.tape.image import MAX_BLOCK_SIZE, EndOfMedium, FileInfo, TapeFormatError, TapeImage

BARCODE = "PR0001L8"
BIG = 64 * 2**20
VOL1_END = 86  # one 80-byte label behind a 6-byte header
LABEL = 86
TM = 6
CLOSING = TM + LABEL + LABEL + TM


def read_all(image: TapeImage) -> list[list[bytes]]:
    return [list(image.read_file(info.file_no)) for info in image.data_files()]


@contextmanager
def scratch() -> Iterator[Path]:
    # Hypothesis runs many examples per test function; tmp_path would be shared by all of them.
    with tempfile.TemporaryDirectory() as d:
        yield Path(d) / f"{BARCODE}.aws"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / f"{BARCODE}.aws"


block_sizes = st.one_of(st.integers(1, MAX_BLOCK_SIZE), st.sampled_from([1, 80, 4096, 65534, MAX_BLOCK_SIZE]))
blocks = st.builds(payload, st.integers(0, 2**32), block_sizes)
tape_files = st.lists(st.lists(blocks, max_size=4), min_size=1, max_size=4)


# ---------------------------------------------------------------- basics


def test_create_writes_a_labelled_empty_image(path: Path) -> None:
    with TapeImage.create(path, BARCODE, BIG) as image:
        assert image.volser == "PR0001"
        assert image.barcode == BARCODE
        assert image.data_files() == []
        assert image.end_offset() == VOL1_END == path.stat().st_size
    raw = path.read_bytes()
    assert raw[6:10] == "VOL1".encode("cp037")
    assert awstape.Vol1.decode(raw[6:]) == awstape.Vol1("PR0001", BARCODE)


def test_create_replaces_an_old_image(path: Path) -> None:
    write_image(path, [[b"old data"]]).close()
    with TapeImage.create(path, BARCODE, BIG) as image:
        assert image.data_files() == []
    assert path.stat().st_size == VOL1_END
    assert list(path.parent.iterdir()) == [path]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=tape_files, chunk_size=st.sampled_from([awstape.MAX_CHUNK, 4096, 1000]), close_last=st.booleans())
def test_files_round_trip(files: list[list[bytes]], chunk_size: int, close_last: bool) -> None:
    with scratch() as path:
        write_image(path, files, close_last=close_last, chunk_size=chunk_size).close()
        with TapeImage.open(path, BIG) as image:
            assert read_all(image) == files
            infos = image.data_files()
            assert [i.file_no for i in infos] == list(range(1, len(files) + 1))
            assert [i.blocks for i in infos] == [len(b) for b in files]
            assert [i.bytes for i in infos] == [sum(map(len, b)) for b in files]
            assert [i.closed for i in infos] == [True] * (len(files) - 1) + [close_last]
            assert image.end_offset() == path.stat().st_size == infos[-1].end
            assert image.torn_tail == 0


def test_file_table_offsets(path: Path) -> None:
    with write_image(path, [[b"a" * 10, b"b" * 20], []]) as image:
        first, second = image.data_files()
    assert first == FileInfo(1, VOL1_END, 2, 30, True, VOL1_END + 2 * LABEL + TM, first.end, "VTLFABRIC.F0001")
    assert first.end == first.data_offset + 16 + 26 + CLOSING
    assert second.offset == first.end and second.blocks == 0 and second.closed


def test_flush_returns_the_end_of_data(path: Path) -> None:
    with TapeImage.create(path, BARCODE, BIG) as image:
        image.begin_file()
        image.write_block(b"x" * 1000)
        assert image.flush() == image.end_offset() == path.stat().st_size


many_blocks = st.lists(
    st.builds(payload, st.integers(0, 2**32), st.one_of(st.integers(1, 300), st.sampled_from([4096, MAX_BLOCK_SIZE]))),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    data=many_blocks,
    limit=st.integers(1, 3 * MAX_BLOCK_SIZE),
    chunk_size=st.sampled_from([awstape.MAX_CHUNK, 1000]),
    close=st.booleans(),
    direct=st.booleans(),
)
def test_spans_are_whole_blocks_within_the_limit_and_hold_the_file(
    data: list[bytes], limit: int, chunk_size: int, close: bool, direct: bool
) -> None:
    """A span is read in one go with its headers checked in memory: whatever the block
    sizes (one far bigger than the read, a record cut by the read), the spans are the
    file's blocks in order, each span whole blocks, over the limit only as one block."""
    with scratch() as path, write_image(path, [data, [b"next file"]], close_last=close, chunk_size=chunk_size) as image:
        spans = image.read_spans(1, direct=direct)
        got: list[bytes] = []
        while True:
            records, joined = spans.next_span(limit)
            if not records:
                break
            assert joined == b"".join(data[len(got) : len(got) + len(records)])
            assert [r.length for r in records] == [len(b) for b in data[len(got) : len(got) + len(records)]]
            assert len(records) == 1 or len(joined) <= limit
            got += data[len(got) : len(got) + len(records)]
        assert got == data
        assert spans.next_span(limit) == ([], b"")


@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("cut", [0, 3, 700])  # at a block's start, in its header, in its data
def test_a_span_reader_over_an_image_cut_short_under_it_says_so(path: Path, cut: int, direct: bool) -> None:
    """The image lost its tail while its map still says otherwise: the span that reaches
    the cut fails, naming the image, instead of waiting for bytes that never come."""
    data = [payload(i, 1000) for i in range(8)]
    with write_image(path, [data]) as image:
        spans = image.read_spans(1, direct=direct)
        records, _ = spans.next_span(2000)
        assert len(records) == 2
        os.truncate(path, records[-1].end + 1006 + cut)  # the next block whole, then the cut
        with pytest.raises(TapeFormatError, match=str(path)):
            while spans.next_span(2000)[0]:
                pass


def test_reading_is_lazy_and_survives_other_calls(path: Path) -> None:
    files = [[payload(i, 5000) for i in range(5)]]
    with write_image(path, files, close_last=True) as image:
        blocks = image.read_file(1)
        got = [next(blocks)]
        image.begin_file()
        image.write_block(b"more")
        got.append(next(blocks))
        assert list(image.read_file(2)) == [b"more"]
        got.extend(blocks)
    assert got == files[0]


@pytest.mark.parametrize("direct", [False, True])
def test_a_span_reader_of_a_closed_image_reads_nothing(path: Path, direct: bool) -> None:
    """Its descriptors are gone, and their numbers may be another file's by now."""
    image = write_image(path, [[b"block"]])
    spans = image.read_spans(1, direct=direct)
    image.close()
    with pytest.raises(ValueError, match="closed file"):
        spans.next_span(2000)


def test_an_open_file_can_be_read_while_it_grows(path: Path) -> None:
    with TapeImage.create(path, BARCODE, BIG) as image:
        image.begin_file()
        image.write_block(b"one")
        blocks = image.read_file(1)
        assert next(blocks) == b"one"
        image.write_block(b"two")
        assert list(blocks) == [b"two"]


def test_missing_files_are_refused(path: Path) -> None:
    with write_image(path, [[b"x"]]) as image:
        for file_no in (0, 2, -1):
            with pytest.raises(KeyError):
                image.read_file(file_no)


# ---------------------------------------------------------------- limits


def test_blocks_above_the_hercules_limit_are_refused(path: Path) -> None:
    with TapeImage.create(path, BARCODE, BIG) as image:
        image.begin_file()
        for bad in (b"", bytes(MAX_BLOCK_SIZE + 1), bytes(256 * 1024)):
            with pytest.raises(ValueError, match="65535"):
                image.write_block(bad)
        with pytest.raises(ValueError):
            image.write_blocks([b"fine", bytes(MAX_BLOCK_SIZE + 1)])
        assert image.data_files()[0].blocks == 0


def test_block_size_limit_cannot_exceed_what_hercules_reads(path: Path) -> None:
    with pytest.raises(ValueError, match="HETMAX_BLOCKSIZE"):
        TapeImage.create(path, BARCODE, BIG, MAX_BLOCK_SIZE + 1)
    with TapeImage.create(path, BARCODE, BIG, 4096) as image:
        image.begin_file()
        image.write_block(bytes(4096))
        with pytest.raises(ValueError):
            image.write_block(bytes(4097))


def test_writing_needs_an_open_file(path: Path) -> None:
    with TapeImage.create(path, BARCODE, BIG) as image:
        with pytest.raises(ValueError, match="begin_file"):
            image.write_block(b"x")
        with pytest.raises(ValueError, match="no tape file is open"):
            image.end_file()


def small_tape(path: Path, capacity: int) -> TapeImage:
    image = TapeImage.create(path, BARCODE, capacity)
    image.begin_file()
    return image


def test_write_block_stops_short_of_capacity(path: Path) -> None:
    header = VOL1_END + 2 * LABEL + TM
    capacity = header + 3 * (6 + 1000) + CLOSING
    with small_tape(path, capacity) as image:
        for _ in range(3):
            image.write_block(bytes(1000))
        before = path.stat().st_size
        with pytest.raises(EndOfMedium):
            image.write_block(b"x")
        assert path.stat().st_size == before == image.end_offset()
        image.end_file()
        assert path.stat().st_size == capacity
    with TapeImage.open(path, capacity) as image:
        assert image.data_files()[0].blocks == 3


def test_write_blocks_writes_what_fits(path: Path) -> None:
    header = VOL1_END + 2 * LABEL + TM
    capacity = header + 2 * (6 + 1000) + 500 + CLOSING
    with small_tape(path, capacity) as image:
        assert image.write_blocks([bytes(1000)] * 5) == 2
        assert image.write_blocks([bytes(1000)]) == 0
        assert image.write_blocks([bytes(400), bytes(400)]) == 1
        image.end_file()
        assert image.end_offset() <= capacity
        assert [len(b) for b in image.read_file(1)] == [1000, 1000, 400]


def test_begin_file_needs_room_for_a_block_and_the_trailer(path: Path) -> None:
    capacity = VOL1_END + 2 * LABEL + TM + 7 + CLOSING
    with TapeImage.create(path, BARCODE, capacity) as image:
        image.begin_file()
        image.write_block(b"x")
        image.end_file()
        with pytest.raises(EndOfMedium):
            image.begin_file()
        assert len(image.data_files()) == 1


# ---------------------------------------------------------------- crash recovery


def test_begin_file_closes_an_unterminated_file(path: Path) -> None:
    write_image(path, [[b"a", b"b"]], close_last=False).close()
    with TapeImage.open(path, BIG) as image:
        assert image.open_file() == 1
        assert image.begin_file() == 2
        image.write_block(b"c")
        image.end_file()
    with TapeImage.open(path, BIG) as image:
        assert [(i.blocks, i.closed) for i in image.data_files()] == [(2, True), (1, True)]
        assert read_all(image) == [[b"a", b"b"], [b"c"]]


def record_boundaries(path: Path) -> list[int]:
    with path.open("rb") as f:
        return [r.offset for r in awstape.iter_records(f)] + [path.stat().st_size]


def reference_image(path: Path) -> list[list[bytes]]:
    files = [[payload(1, 300), payload(2, 70000 % MAX_BLOCK_SIZE)], [], [payload(3, 5)]]
    write_image(path, files, close_last=False, chunk_size=4096).close()
    return files


def test_truncate_at_every_record_boundary_leaves_a_valid_prefix(path: Path) -> None:
    files = reference_image(path)
    original = path.read_bytes()
    for cut in record_boundaries(path)[1:]:
        path.write_bytes(original)
        with TapeImage.open(path, BIG) as image:
            image.truncate(cut)
            assert image.end_offset() == cut == path.stat().st_size
            prefix = read_all(image)
            assert prefix == [blocks[: len(got)] for blocks, got in zip(files, prefix)]
            number = image.begin_file()
            image.write_block(b"after")
            image.end_file()
        with TapeImage.open(path, BIG) as image:
            assert list(image.read_file(number)) == [b"after"]
            assert all(i.closed for i in image.data_files())


def test_truncate_refuses_offsets_off_record_boundaries(path: Path) -> None:
    reference_image(path)
    boundaries = set(record_boundaries(path))
    with TapeImage.open(path, BIG) as image:
        end = image.end_offset()
        for cut in (0, 5, VOL1_END - 1, VOL1_END + 1, end - 1, end + 1, end + 1000):
            assert cut not in boundaries or cut < VOL1_END
            with pytest.raises(ValueError):
                image.truncate(cut)
        assert image.end_offset() == end == path.stat().st_size


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_crash_at_any_byte_leaves_a_usable_image(data: st.DataObject) -> None:
    with scratch() as path:
        files = reference_image(path)
        original = path.read_bytes()
        cut = data.draw(st.integers(VOL1_END, len(original)))
        path.write_bytes(original[:cut])
        with TapeImage.open(path, BIG, repair=True) as image:
            end = image.end_offset()
            assert end <= cut and end == path.stat().st_size
            assert end in record_boundaries(path)
            prefix = read_all(image)
            assert prefix == [blocks[: len(got)] for blocks, got in zip(files, prefix)]
            number = image.begin_file()
            image.write_block(b"recovered")
        with TapeImage.open(path, BIG) as image:
            assert list(image.read_file(number)) == [b"recovered"]


def test_a_crash_at_every_byte_of_a_small_image(path: Path) -> None:
    files = [[b"a" * 10, b"b" * 20], [], [b"c" * 30]]
    with write_image(path, files, close_last=False, chunk_size=32) as image:
        vol1_end = image.data_files()[0].offset  # labels too are cut in 32-byte chunks
    original = path.read_bytes()
    for cut in range(vol1_end, len(original) + 1):
        path.write_bytes(original[:cut])
        with TapeImage.open(path, BIG, repair=True) as image:
            assert image.end_offset() == path.stat().st_size <= cut
            prefix = read_all(image)
            assert prefix == [blocks[: len(got)] for blocks, got in zip(files, prefix)]
            image.begin_file()


def test_a_torn_tail_is_reported_then_repaired(path: Path) -> None:
    files = [[b"first file"], [payload(9, 20000)]]
    write_image(path, files).close()
    with TapeImage.open(path, BIG) as image:
        image.begin_file()
        image.write_block(b"z" * 1000)
        good_end = image.end_offset()
        whole = path.read_bytes()
    path.write_bytes(whole[: good_end - 400])  # the last block's data was half written
    torn_at = good_end - 1006
    with TapeImage.open(path, BIG) as image:
        assert image.end_offset() == torn_at
        assert image.torn_tail == 1006 - 400
        assert path.stat().st_size == good_end - 400  # open without repair changes nothing
    with TapeImage.open(path, BIG, repair=True) as image:
        assert image.torn_tail == 0
        assert path.stat().st_size == image.end_offset() == torn_at
        assert read_all(image) == [*files, []]


def test_writing_after_a_torn_tail_cuts_it_first(path: Path) -> None:
    write_image(path, [[b"a"]], close_last=False).close()
    with path.open("ab") as f:
        f.write(b"\x10\x00")  # two bytes of a header that never finished
    with TapeImage.open(path, BIG) as image:
        assert image.torn_tail == 2
        image.write_block(b"b")
        image.end_file()
    with TapeImage.open(path, BIG) as image:
        assert image.torn_tail == 0
        assert read_all(image) == [[b"a", b"b"]]


def test_truncate_at_the_end_drops_a_torn_tail(path: Path) -> None:
    write_image(path, [[b"a"]]).close()
    with path.open("ab") as f:
        f.write(b"\x10")
    with TapeImage.open(path, BIG) as image:
        image.truncate(image.end_offset())
        assert image.torn_tail == 0
        assert path.stat().st_size == image.end_offset()


# ---------------------------------------------------------------- damage


def damage(path: Path, offset: int, value: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(value)


def expect_damage(path: Path, offset: int, match: str) -> None:
    with pytest.raises(TapeFormatError, match=match) as info:
        TapeImage.open(path, BIG, repair=True).close()
    assert info.value.offset == offset
    assert info.value.path == str(path)
    assert str(path) in str(info.value) and f"offset {offset}" in str(info.value)


def damaged_image(path: Path) -> FileInfo:
    write_image(path, [[b"a" * 100, b"b" * 100], [b"c"]]).close()
    with TapeImage.open(path, BIG) as image:
        return image.data_files()[0]


def test_bad_flags_are_damage(path: Path) -> None:
    first = damaged_image(path)
    second_block = first.data_offset + 106
    damage(path, second_block + 4, bytes([0x90]))
    expect_damage(path, second_block, "flag")


def test_bad_prev_length_is_damage(path: Path) -> None:
    first = damaged_image(path)
    second_block = first.data_offset + 106
    damage(path, second_block + 2, (7).to_bytes(2, "little"))
    expect_damage(path, second_block, "previous chunk length is 7, expected 100")


def test_a_wrong_length_is_damage_not_a_torn_tail(path: Path) -> None:
    first = damaged_image(path)
    damage(path, first.data_offset, (101).to_bytes(2, "little"))
    # The block swallows one byte of the next header, so the next header is where it shows.
    with pytest.raises(TapeFormatError) as info:
        TapeImage.open(path, BIG, repair=True).close()
    assert info.value.offset > first.data_offset


def test_a_wrong_block_count_in_eof1_is_damage(path: Path) -> None:
    first = damaged_image(path)
    eof1 = first.data_offset + 2 * 106 + TM
    label = awstape.DatasetLabel1("EOF", "VTLFABRIC.F0001", "PR0001", 1, block_count=3).encode()
    damage(path, eof1 + 6, label)
    expect_damage(path, eof1, "EOF1 counts 3 blocks, the file holds 2")


def test_a_missing_label_is_damage(path: Path) -> None:
    first = damaged_image(path)
    damage(path, first.offset + 6, "XXXX".encode("cp037"))
    expect_damage(path, first.offset, "expected a HDR1 label")


def test_an_image_without_vol1_is_refused(path: Path) -> None:
    path.write_bytes(b"")
    expect_damage(path, 0, "VOL1")
    raw, _ = awstape.encode_block(b"not a label", 0)
    path.write_bytes(raw)
    expect_damage(path, 0, "expected a VOL1 label")


def test_a_torn_vol1_cannot_be_repaired(path: Path) -> None:
    TapeImage.create(path, BARCODE, BIG).close()
    path.write_bytes(path.read_bytes()[:40])
    expect_damage(path, 0, "VOL1")


def test_garbage_after_the_last_file_is_damage(path: Path) -> None:
    write_image(path, [[b"a"]]).close()
    end = path.stat().st_size
    with path.open("ab") as f:
        f.write(awstape.encode_block(b"stray", 0)[0])
    expect_damage(path, end, "expected a HDR1 label")


def test_damage_found_while_reading_names_path_and_offset(path: Path) -> None:
    first = damaged_image(path)
    with TapeImage.open(path, BIG) as image:
        damage(path, first.data_offset + 106 + 4, bytes([0x00]))
        blocks = image.read_file(1)
        assert next(blocks) == b"a" * 100
        with pytest.raises(TapeFormatError) as info:
            next(blocks)
    assert info.value.offset == first.data_offset + 106 and info.value.path == str(path)


# ---------------------------------------------------------------- the map kept between mounts


@settings(max_examples=25, deadline=None)
@given(files=tape_files, close_last=st.booleans())
def test_a_map_kept_from_the_last_close_opens_the_image_as_a_scan_would(files, close_last) -> None:
    with scratch() as path:
        mapped = write_image(path, files, close_last=close_last).close_mapped()
        assert mapped is not None
        with TapeImage.open(path, BIG) as scanned, TapeImage.open(path, BIG, mapped=mapped) as kept:
            assert kept.data_files() == scanned.data_files() and kept.end_offset() == scanned.end_offset()
            assert read_all(kept) == read_all(scanned)


def test_a_map_is_not_used_once_the_file_changed(path: Path) -> None:
    mapped = write_image(path, [[b"a" * 4000], [b"b" * 4000]]).close_mapped()
    assert mapped is not None
    with TapeImage.open(path, BIG) as image:  # someone else appends a file
        image.begin_file()
        image.write_blocks([b"c" * 10])
        image.end_file()
    with TapeImage.open(path, BIG, mapped=mapped) as image:
        assert [f.file_no for f in image.data_files()] == [1, 2, 3]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])  # and cut short at rest
    with TapeImage.open(path, BIG, mapped=mapped) as image:
        assert image.torn_tail > 0 or len(image.data_files()) < 3


def test_mounting_an_image_without_its_map_leaves_none_of_it_cached(path: Path) -> None:
    """The scan reads every header, and the kernel's readahead brings the whole image in
    with them: a mount gives those pages back, as a drive streams past its data."""
    if why := page_cache_skip(path.parent):
        pytest.skip(why)
    block = os.urandom(60 * 1024)
    with TapeImage.create(path, BARCODE, BIG) as image:
        image.begin_file()
        image.write_blocks([block] * 256)  # 15 MiB
        image.end_file()
        image.release(0, image.flush())
    with TapeImage.open(path, BIG) as image:
        assert len(image.data_files()) == 1
        assert cached_bytes([path]) <= 64 * 1024
