from __future__ import annotations

import io
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import payload
from vtlfabric.tape import awstape
from vtlfabric.tape.awstape import (
    BOR,
    EOR,
    HEADER,
    MAX_CHUNK,
    TAPEMARK,
    ChunkHeader,
    DatasetLabel1,
    DatasetLabel2,
    FormatError,
    LabelError,
    TornRecord,
    Vol1,
)

# A record to encode: block contents, or None for a tapemark.
Item = bytes | None


def encode(items: list[Item], chunk_size: int = MAX_CHUNK) -> bytes:
    out, prev = bytearray(), 0
    for item in items:
        if item is None:
            out += awstape.encode_tapemark(prev)
            prev = 0
        else:
            raw, prev = awstape.encode_block(item, prev, chunk_size)
            out += raw
    return bytes(out)


def parse(raw: bytes, **kwargs) -> list[awstape.Record]:
    return list(awstape.iter_records(io.BytesIO(raw), **kwargs))


blocks = st.builds(payload, st.integers(0, 2**32), st.integers(1, 3 * MAX_CHUNK + 7))
items = st.lists(st.one_of(blocks, st.none()), max_size=8)


# ---------------------------------------------------------------- records


def test_header_is_six_little_endian_bytes() -> None:
    header = ChunkHeader(length=0x1234, prev_length=0xABCD, flags1=BOR | EOR)
    assert header.pack() == b"\x34\x12\xcd\xab\xa0\x00"
    assert ChunkHeader.unpack(header.pack()) == header


def test_tapemark_is_a_bare_header() -> None:
    assert awstape.encode_tapemark(513) == HEADER.pack(0, 513, TAPEMARK, 0)


@pytest.mark.parametrize(
    ("size", "lengths"),
    [(1, [1]), (65535, [65535]), (65536, [65535, 1]), (3 * 65535, [65535] * 3), (0, [0])],
)
def test_blocks_are_cut_at_65535_bytes(size: int, lengths: list[int]) -> None:
    assert awstape.chunk_lengths(size) == lengths
    raw, last = awstape.encode_block(bytes(size), 7)
    assert len(raw) == awstape.encoded_block_size(size) == size + 6 * len(lengths)
    assert last == lengths[-1]


def test_multi_chunk_block_flags_and_back_links() -> None:
    raw, last = awstape.encode_block(b"abcdefghij", 99, chunk_size=4)
    headers, pos = [], 0
    while pos < len(raw):
        header = ChunkHeader.unpack(raw[pos : pos + 6])
        headers.append(header)
        pos += 6 + header.length
    assert [(h.length, h.prev_length, h.flags1) for h in headers] == [(4, 99, BOR), (4, 4, 0), (2, 4, EOR)]
    assert last == 2


@settings(max_examples=60, deadline=None)
@given(items=items, chunk_size=st.sampled_from([512, 4096, 65535]) | st.integers(512, MAX_CHUNK))
def test_records_round_trip(items: list[Item], chunk_size: int) -> None:
    raw = encode(items, chunk_size)
    records = parse(raw)
    assert [None if r.tapemark else r.data for r in records] == items
    assert [r.offset for r in records] == [0, *(r.end for r in records)][: len(records)]
    assert (records[-1].end if records else 0) == len(raw)


@settings(max_examples=30, deadline=None)
@given(items=items)
def test_skipping_data_reads_only_lengths(items: list[Item]) -> None:
    records = parse(encode(items), read_data=False)
    assert [r.length for r in records] == [0 if i is None else len(i) for i in items]
    assert all(r.data is None for r in records)


@settings(max_examples=30, deadline=None)
@given(items=st.lists(st.one_of(blocks, st.none()), min_size=1, max_size=6), data=st.data())
def test_reading_resumes_at_any_record(items: list[Item], data: st.DataObject) -> None:
    raw = encode(items)
    records = parse(raw)
    start = data.draw(st.integers(0, len(records) - 1))
    prev = records[start - 1].last_chunk if start else 0
    resumed = parse(raw, offset=records[start].offset, prev_length=prev)
    assert resumed == records[start:]


@settings(max_examples=30, deadline=None)
@given(
    items=st.lists(st.one_of(st.binary(min_size=1, max_size=40), st.none()), max_size=8),
    chunk_size=st.integers(1, 9),
)
def test_tiny_chunks_round_trip(items: list[Item], chunk_size: int) -> None:
    records = parse(encode(items, chunk_size))
    assert [None if r.tapemark else r.data for r in records] == items


def test_a_zero_length_block_is_not_a_tapemark() -> None:
    (record,) = parse(encode([b""]))
    assert not record.tapemark and record.data == b""


# ---------------------------------------------------------------- damage


def two_blocks() -> bytes:
    return encode([b"x" * 100, b"y" * 50, None])


def test_truncated_header_is_a_torn_record_at_its_offset() -> None:
    raw = two_blocks()
    with pytest.raises(TornRecord) as info:
        parse(raw[: 106 + 3])
    assert info.value.offset == 106


def test_truncated_chunk_data_is_a_torn_record() -> None:
    with pytest.raises(TornRecord) as info:
        parse(two_blocks()[: 106 + 6 + 10])
    assert info.value.offset == 106
    assert "106" in str(info.value)


def test_a_block_missing_its_last_chunk_is_torn() -> None:
    raw = encode([b"abcdefgh"], chunk_size=4)
    with pytest.raises(TornRecord) as info:
        parse(raw[:10])
    assert info.value.offset == 0


def corrupt(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value) :]


@pytest.mark.parametrize(
    ("flags1", "flags2", "why"),
    [
        (BOR | EOR | 0x10, 0, "unknown flag"),
        (BOR | EOR | 0x01, 0, "compressed"),
        (BOR | EOR, 0x80, "compressed"),
        (EOR, 0, "beginning-of-record"),
        (TAPEMARK | BOR, 0, "tapemark"),
    ],
)
def test_bad_flags_name_the_offset(flags1: int, flags2: int, why: str) -> None:
    raw = corrupt(two_blocks(), 106 + 4, bytes([flags1, flags2]))
    with pytest.raises(FormatError) as info:
        parse(raw)
    assert not isinstance(info.value, TornRecord)
    assert info.value.offset == 106
    assert why in str(info.value) and "offset 106" in str(info.value)


def test_bad_prev_length_names_the_offset() -> None:
    raw = corrupt(two_blocks(), 106 + 2, (99).to_bytes(2, "little"))
    with pytest.raises(FormatError, match="previous chunk length is 99, expected 100") as info:
        parse(raw)
    assert info.value.offset == 106


def test_bad_prev_length_inside_a_block_names_the_chunk() -> None:
    raw = encode([b"abcdefgh"], chunk_size=4)
    raw = corrupt(raw, 10 + 2, (3).to_bytes(2, "little"))
    with pytest.raises(FormatError) as info:
        parse(raw)
    assert info.value.offset == 10


def test_a_tapemark_with_a_length_is_damage() -> None:
    raw = corrupt(two_blocks(), 162, (5).to_bytes(2, "little"))
    with pytest.raises(FormatError, match="tapemark"):
        parse(raw)


def test_a_second_beginning_inside_a_block_is_damage() -> None:
    raw = encode([b"abcdefgh"], chunk_size=4)
    raw = corrupt(raw, 10 + 4, bytes([BOR | EOR]))
    with pytest.raises(FormatError, match="inside a block") as info:
        parse(raw)
    assert info.value.offset == 10


# ---------------------------------------------------------------- labels


def test_vol1_is_80_ebcdic_bytes() -> None:
    raw = Vol1("PR0001", owner="PR0001L8").encode()
    assert len(raw) == 80
    assert raw[:10] == "VOL1PR0001".encode("cp037") == b"\xe5\xd6\xd3\xf1\xd7\xd9\xf0\xf0\xf0\xf1"
    assert raw[41:51] == "PR0001L8  ".encode("cp037")
    assert awstape.label_id(raw) == "VOL1"
    assert Vol1.decode(raw) == Vol1("PR0001", "PR0001L8")


@pytest.mark.parametrize("volser", ["", "PR0001L", "pr0001", "PR 01"])
def test_bad_volsers_are_refused(volser: str) -> None:
    with pytest.raises(LabelError):
        Vol1(volser)


def test_decoding_the_wrong_label_says_what_it_found() -> None:
    with pytest.raises(LabelError, match="expected a HDR1 label, found 'VOL1'"):
        DatasetLabel1.decode(Vol1("A").encode(), "HDR")
    with pytest.raises(LabelError, match="80 bytes"):
        Vol1.decode(b"VOL1")


dsnames = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.", min_size=1, max_size=17).map(str.strip)
dates = st.none() | st.dates(min_value=date(1900, 1, 1), max_value=date(2999, 12, 31))


@given(
    kind=st.sampled_from(["HDR", "EOF"]),
    dsname=dsnames.filter(bool),
    file_seq=st.integers(1, 9999),
    count=st.integers(0, awstape.MAX_LABEL_BLOCK_COUNT),
    created=dates,
    expires=dates,
)
def test_dataset_label1_round_trips(kind, dsname, file_seq, count, created, expires) -> None:
    label = DatasetLabel1(kind, dsname, "PR0001", file_seq, count, created, expires)
    raw = label.encode()
    assert len(raw) == 80 and awstape.label_id(raw) == f"{kind}1"
    assert DatasetLabel1.decode(raw, kind) == label


@given(kind=st.sampled_from(["HDR", "EOF"]), block_size=st.integers(1, 65535), job=dsnames)
def test_dataset_label2_round_trips(kind, block_size: int, job: str) -> None:
    label = DatasetLabel2(kind, block_size, job=job)
    raw = label.encode()
    assert len(raw) == 80 and awstape.label_id(raw) == f"{kind}2"
    assert DatasetLabel2.decode(raw, kind) == label


def test_large_blocks_use_the_large_block_length_field() -> None:
    text = DatasetLabel2("HDR", 65535).encode().decode("cp037")
    assert text[4:10] == "U00000" and text[70:80] == "0000065535"
    text = DatasetLabel2("HDR", 32760).encode().decode("cp037")
    assert text[4:10] == "U32760" and text[70:80] == " " * 10


def test_trailer_labels_copy_the_header_and_count_blocks() -> None:
    hdr1 = DatasetLabel1("HDR", "VTLFABRIC.F0001", "PR0001", 1)
    eof1 = hdr1.trailer(1_234_567)
    text = eof1.encode().decode("cp037")
    assert text[:4] == "EOF1" and text[54:60] == "234567" and text[76:80] == "0001"
    assert DatasetLabel1.decode(eof1.encode(), "EOF").block_count == 1_234_567


@given(day=st.dates(min_value=date(1900, 1, 1), max_value=date(2999, 12, 31)))
def test_dates_round_trip(day: date) -> None:
    text = awstape.encode_date(day)
    assert len(text) == 6
    assert awstape.decode_date(text) == day


def test_date_format_is_cyyddd() -> None:
    assert awstape.encode_date(date(1999, 12, 31)) == " 99365"
    assert awstape.encode_date(date(2024, 2, 1)) == "024032"
    assert awstape.encode_date(None) == "000000"
    assert awstape.decode_date("000000") is None


def test_fields_that_do_not_fit_are_refused() -> None:
    with pytest.raises(LabelError):
        DatasetLabel1("HDR", "lower.case", "PR0001", 1).encode()
    with pytest.raises(LabelError):
        DatasetLabel1("HDR", "X", "PR0001", 10_000).encode()
    with pytest.raises(LabelError):
        Vol1("PR0001", owner="ELEVENCHARS")
