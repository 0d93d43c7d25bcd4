"""`vtlfabric tape ls` and `tape verify`: an image looked at offline, and damage found at its byte offset.

The module under them is ``vtlfabric.tape.inspect``; the CLI only formats what it returns.
"""

from __future__ import annotations

import functools
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import hetget_argv, payload, write_image
from vtlfabric.tape import records
from vtlfabric.tape.image import MAX_BLOCK_SIZE, TapeImage
from vtlfabric.tape.inspect import Inspection, Labels, Problem, inspect_image
from vtlfabric.tape.labels import DatasetLabel1, DatasetLabel2, Vol1
from vtlfabric.tape.records import BOR, EOR, HEADER_SIZE, MAX_CHUNK, TAPEMARK, ChunkHeader

HETMAP = shutil.which("hetmap")
HETGET = shutil.which("hetget")
needs_hercules = pytest.mark.skipif(
    HETMAP is None or HETGET is None,
    reason="Hercules' hetmap/hetget are not on PATH (install the 'hercules' package; CI does)",
)

Item = bytes | None  # a record to write: block contents, or None for a tapemark


def inspect(raw: bytes, labels: Labels = Labels.AUTO, **kwargs: bool) -> Inspection:
    return inspect_image(io.BytesIO(raw), labels=labels, **kwargs)


def verify(raw: bytes) -> Problem | None:
    return inspect(raw, Labels.STANDARD).problem


def physical_files(items: list[Item]) -> list[list[bytes]]:
    """The blocks of each file as hetmap counts them: up to each tapemark, and any after the last."""
    files: list[list[bytes]] = [[]]
    for item in items:
        if item is None:
            files.append([])
        else:
            files[-1].append(item)
    return files if files[-1] else files[:-1]


# Records as records.py writes them: up to 256 KiB, so several 65535-byte chunks, and empty ones.
record_sizes = st.one_of(
    st.integers(0, 256 * 2**10), st.sampled_from([0, 1, MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1, 2 * MAX_CHUNK])
)
any_records = st.lists(st.one_of(st.builds(payload, st.integers(0, 2**32), record_sizes), st.none()), min_size=1, max_size=8)


# ---------------------------------------------------------------- round trips


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(items=any_records, chunk_size=st.sampled_from([MAX_CHUNK, 4096, 1000]))
def test_any_records_round_trip_and_verify(items: list[Item], chunk_size: int) -> None:
    raw, written = records.encode_records(items, 0, 0, chunk_size)
    read = list(records.iter_records(io.BytesIO(raw)))
    assert read == written
    assert [None if r.tapemark else r.data for r in read] == items

    found = inspect(raw, Labels.NONE, list_blocks=True)
    assert found.ok, found.problem
    assert (found.records, found.tapemarks, found.size, found.end) == (len(items), items.count(None), len(raw), len(raw))
    files = physical_files(items)
    assert [(f.blocks, f.bytes) for f in found.files] == [(len(f), sum(map(len, f))) for f in files]
    assert [f.closed for f in found.files] == [True] * items.count(None) + [False] * (len(files) - items.count(None))
    # Every header as records.py cut it: BOR on the first chunk, EOR on the last, each linked to the one before.
    prev = 0
    for block, item in zip(found.blocks, items, strict=True):
        if item is None:
            assert block.tapemark and [(c.length, c.flags) for c in block.chunks] == [(0, TAPEMARK)]
        else:
            assert [c.length for c in block.chunks] == records.chunk_lengths(len(item), chunk_size)
            assert block.chunks[0].flags & BOR and block.chunks[-1].flags & EOR
        for chunk in block.chunks:
            assert chunk.prev_length == prev
            prev = chunk.length
    # Unlabelled, so the default reading agrees; and `verify` wants labels.
    assert attrs.evolve(inspect(raw), blocks=()) == attrs.evolve(found, blocks=())
    assert verify(raw) is not None


labelled_files = st.lists(
    st.lists(st.builds(payload, st.integers(0, 2**32), st.integers(1, MAX_BLOCK_SIZE)), max_size=3), min_size=1, max_size=3
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=labelled_files, chunk_size=st.sampled_from([MAX_CHUNK, 4096]), close_last=st.booleans())
def test_labelled_images_round_trip_and_verify(files: list[list[bytes]], chunk_size: int, close_last: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "PR0007L8.aws"
        with write_image(path, files, close_last=close_last, barcode="PR0007L8", chunk_size=chunk_size) as image:
            assert [list(image.read_file(n)) for n in range(1, len(files) + 1)] == files
            infos = image.data_files()
        raw = path.read_bytes()
    found = inspect(raw)
    assert found.ok and verify(raw) is None
    assert found.labels is Labels.STANDARD and found.vol1 == Vol1("PR0007", "PR0007L8")
    assert [(f.number, f.offset, f.data_offset, f.blocks, f.bytes, f.closed) for f in found.files] == [
        (i.file_no, i.offset, i.data_offset, i.blocks, i.bytes, i.closed) for i in infos
    ]
    assert [(f.hdr1.dsname, f.hdr1.file_seq) for f in found.files if f.hdr1] == [
        (f"VTLFABRIC.F{n:04d}", n) for n in range(1, len(files) + 1)
    ]
    assert all(f.hdr2 == DatasetLabel2("HDR", MAX_BLOCK_SIZE) for f in found.files)
    assert found.files[-1].closed == close_last


# ---------------------------------------------------------------- Hercules agrees


def run(*argv: str | Path) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    # hetget and hetmap exit 0 even when a read fails: look at what they say.
    assert "missing" not in done.stdout + done.stderr and "het_read() returned" not in done.stdout, done.stdout
    return done.stdout


def hetmap_files(image: Path) -> list[tuple[int, int]]:
    """(file number, blocks) of each file hetmap lists: those a tapemark ends."""
    out = run(HETMAP, image).split("Summary")[0]
    numbers = [int(n) for n in re.findall(r"^File #\s*: (\d+)", out, re.M)]
    blocks = [int(n) for n in re.findall(r"^Blocks\s*: (\d+)", out, re.M)]
    return list(zip(numbers, blocks, strict=True))


# Hercules 3's hetget and hetmap read blocks of at most 65535 bytes.
hercules_records = st.lists(
    st.one_of(st.builds(payload, st.integers(0, 2**32), st.integers(0, MAX_BLOCK_SIZE)), st.none()), min_size=1, max_size=8
)


@pytest.mark.hercules
@needs_hercules
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(items=hercules_records, chunk_size=st.sampled_from([MAX_CHUNK, 4096]))
def test_hercules_reads_unlabelled_records_as_we_do(items: list[Item], chunk_size: int) -> None:
    raw, _ = records.encode_records([*items, None], 0, 0, chunk_size)  # hetmap lists only files a tapemark ends
    found = inspect(raw, Labels.NONE)
    assert found.ok
    ours: list[bytes] = [b""]  # each file's bytes, as our reader reads them
    for record in records.iter_records(io.BytesIO(raw)):
        if record.tapemark:
            ours.append(b"")
        else:
            ours[-1] += record.data
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "nl.aws"
        path.write_bytes(raw)
        assert hetmap_files(path) == [(f.number, f.blocks) for f in found.files]
        for n, data in enumerate(ours[:-1], 1):
            run(HETGET, "-n", path, Path(d) / "out", n, "U", 0, MAX_BLOCK_SIZE)  # -n: unlabelled, so give the DCB
            assert (Path(d) / "out").read_bytes() == data, f"file {n}"


@pytest.mark.hercules
@needs_hercules
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=labelled_files, chunk_size=st.sampled_from([MAX_CHUNK, 4096]))
def test_hercules_lists_and_extracts_labelled_files_as_we_do(files: list[list[bytes]], chunk_size: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "PR0008L8.aws"
        with write_image(path, files, barcode="PR0008L8", chunk_size=chunk_size) as image:
            ours = [b"".join(image.read_file(n)) for n in range(1, len(files) + 1)]
        found = inspect(path.read_bytes())
        out = run(HETMAP, "-d", path)
        assert re.search(r"^vol=(\S+)", out, re.M).group(1) == found.vol1.volser
        theirs = list(
            zip(map(int, re.findall(r"^seq=(\d+)", out, re.M)), map(int, re.findall(r"blocks=(\d+)", out)), strict=True)
        )
        assert theirs == [(f.number, f.blocks) for f in found.files]
        assert re.findall(r"^dsn=(\S+)", out, re.M) == [f.hdr1.dsname for f in found.files]
        for n, data in enumerate(ours, 1):
            run(*hetget_argv(path, Path(d) / "out", n))
            assert (Path(d) / "out").read_bytes() == data, f"tape file {n}"


# ---------------------------------------------------------------- damage, at its offset


@attrs.frozen
class Cartridge:
    """A labelled image with multi-chunk blocks, and where its headers are (worked out, not read)."""

    raw: bytes
    at: dict[str, int]

    def header(self, name: str) -> ChunkHeader:
        return ChunkHeader.unpack(self.raw[self.at[name] : self.at[name] + HEADER_SIZE])

    def patched(self, offset: int, value: bytes) -> bytes:
        return self.raw[:offset] + value + self.raw[offset + len(value) :]

    def flipped(self, name: str, bit: int) -> bytes:
        offset = self.at[name] + bit // 8
        return self.patched(offset, bytes([self.raw[offset] ^ 1 << bit % 8]))


CHUNK = 4096
A_SIZE, B_SIZE = 10_000, 100  # A: chunks of 4096, 4096 and 1808 bytes; B: one chunk


@functools.cache
def cartridge() -> Cartridge:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "PR0001L8.aws"
        write_image(path, [[payload(1, A_SIZE), payload(2, B_SIZE)], [payload(3, 5)]], chunk_size=CHUNK).close()
        raw = path.read_bytes()
    label = HEADER_SIZE + 80
    at = {"VOL1": 0, "HDR1": label, "HDR2": 2 * label, "TM0": 3 * label}
    at["A"] = at["TM0"] + HEADER_SIZE
    at["A2"] = at["A"] + HEADER_SIZE + CHUNK
    at["A3"] = at["A2"] + HEADER_SIZE + CHUNK
    at["B"] = at["A3"] + HEADER_SIZE + A_SIZE - 2 * CHUNK
    at["TM1"] = at["B"] + HEADER_SIZE + B_SIZE
    at["EOF1"] = at["TM1"] + HEADER_SIZE
    at["EOF2"] = at["EOF1"] + label
    at["TM2"] = at["EOF2"] + label
    at["HDR1.2"] = at["TM2"] + HEADER_SIZE
    starts = [r.offset for r in records.iter_records(io.BytesIO(raw))]
    assert {v for k, v in at.items() if k not in ("A2", "A3")} <= set(starts)
    return Cartridge(raw, at)


def test_the_undamaged_cartridge_verifies() -> None:
    found = inspect(cartridge().raw, Labels.STANDARD, list_blocks=True)
    assert found.ok and not found.warnings
    assert [len(b.chunks) for b in found.blocks if b.offset == cartridge().at["A"]] == [3]


@pytest.mark.parametrize(
    ("record", "header", "into"),
    [
        ("B", "B", 3),  # mid-header
        ("B", "B", HEADER_SIZE + 50),  # mid-block
        ("A", "A2", 2),  # mid-header of a block's second chunk
        ("A", "A3", HEADER_SIZE + 1000),  # in a block's last chunk
        ("EOF1", "EOF1", HEADER_SIZE + 79),  # one byte short of a whole label
        ("TM1", "TM1", 5),
        ("VOL1", "VOL1", 40),
    ],
)
def test_a_truncation_is_caught_at_the_record_it_cuts(tmp_path: Path, record: str, header: str, into: int) -> None:
    cart = cartridge()
    cut = cart.at[header] + into
    found = inspect(cart.raw[:cut], Labels.STANDARD)
    # The offset is the record's: where the image would have to be cut back to to be whole.
    assert found.problem is not None and found.problem.offset == cart.at[record], found.problem
    assert "cut short" in found.problem.message and str(cart.at[header]) in found.problem.message
    assert found.end == cart.at[record]
    if record != "VOL1":  # TapeImage agrees on where the good part ends
        (tmp_path / "cut.aws").write_bytes(cart.raw[:cut])
        with TapeImage.open(tmp_path / "cut.aws", 2**20) as image:
            assert image.end_offset() == cart.at[record] and image.torn_tail == cut - cart.at[record]


def test_a_truncation_between_records_leaves_a_good_image_with_a_file_not_closed() -> None:
    cart = cartridge()
    found = inspect(cart.raw[: cart.at["B"]], Labels.STANDARD)
    assert found.ok
    assert [(f.number, f.blocks, f.closed) for f in found.files] == [(1, 1, False)]


HEADERS = ["VOL1", "HDR2", "TM0", "A", "A2", "A3", "B", "TM1", "EOF1", "TM2", "HDR1.2"]
FLIPS = [
    ("length", 0),
    ("length", 3),
    ("length", 7),
    ("length", 12),
    ("length", 15),
    ("previous length", 16),
    ("previous length", 20),
    ("previous length", 31),
    ("flags: compression", 32),
    ("flags: undefined", 36),
    ("flags: tapemark", 38),
    ("flags: beginning of record", 39),
    ("flags2", 40),
    ("flags2", 47),
]


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize(("field", "bit"), FLIPS, ids=[f"{f}-bit{b}" for f, b in FLIPS])
def test_a_flipped_bit_in_a_header_is_caught_at_that_header(header: str, field: str, bit: int) -> None:
    cart = cartridge()
    problem = verify(cart.flipped(header, bit))
    assert problem is not None and problem.offset == cart.at[header], problem
    if field == "length" and not cart.header(header).is_tapemark:
        assert problem.message.startswith(f"block header's length {cart.header(header).length ^ 1 << bit} is wrong")
    if field == "previous length":
        assert "previous length" in problem.message


@pytest.mark.parametrize(("header", "shows_at"), [("A", "A2"), ("A2", "A3"), ("B", "TM1"), ("VOL1", "HDR1")])
def test_a_flipped_end_of_record_flag_is_caught_at_the_next_header_which_names_both(header: str, shows_at: str) -> None:
    """Losing EOR looks the same as the next chunk gaining BOR (or the reverse): both headers are named."""
    cart = cartridge()
    problem = verify(cart.flipped(header, 37))
    assert problem is not None and problem.offset == cart.at[shows_at], problem
    assert f"after the chunk at {cart.at[header]}" in problem.message


def test_every_bit_of_every_header_of_a_small_image_is_caught_where_it_is() -> None:
    raw, _ = records.encode_records([Vol1("PR0002").encode(), payload(4, 5000), payload(5, 50), None], 0, 0, CHUNK)
    headers = [c.offset for b in inspect(raw, Labels.NONE, list_blocks=True).blocks for c in b.chunks]
    for i, at in enumerate(headers):
        for bit in range(8 * HEADER_SIZE):
            damaged = bytearray(raw)
            damaged[at + bit // 8] ^= 1 << bit % 8
            problem = inspect(bytes(damaged), Labels.NONE).problem
            eor = bit == 37 and not ChunkHeader.unpack(raw[at : at + HEADER_SIZE]).is_tapemark
            assert problem is not None and problem.offset == (headers[i + 1] if eor else at), (at, bit, problem)


@pytest.mark.parametrize(
    ("header", "prev", "before", "what"),
    [
        ("B", CHUNK, "A3", "chunk"),  # the chunk size instead of the last chunk's length
        ("A", 80, "TM0", "tapemark"),  # as if the tapemark did not reset the chain
        ("A2", 0, "A", "chunk"),
        ("EOF1", B_SIZE, "TM1", "tapemark"),
    ],
)
def test_a_broken_back_link_is_caught_at_its_header(header: str, prev: int, before: str, what: str) -> None:
    cart = cartridge()
    problem = verify(cart.patched(cart.at[header] + 2, prev.to_bytes(2, "little")))
    length = cart.header(before).length
    assert problem == Problem(
        cart.at[header],
        f"block header's previous length {prev} does not match the {what} before it "
        f"({length} bytes, header at {cart.at[before]})",
    )


def test_the_first_header_must_link_back_to_nothing() -> None:
    cart = cartridge()
    assert verify(cart.patched(2, (80).to_bytes(2, "little"))) == Problem(
        0, "the first block header's previous length is 80, not 0"
    )


@pytest.mark.hercules
@needs_hercules
def test_hercules_does_not_see_a_broken_back_link_and_verify_does(tmp_path: Path) -> None:
    cart = cartridge()
    path = tmp_path / "chain.aws"
    path.write_bytes(cart.patched(cart.at["B"] + 2, CHUNK.to_bytes(2, "little")))
    run(*hetget_argv(path, tmp_path / "out", 1))
    assert (tmp_path / "out").read_bytes() == payload(1, A_SIZE) + payload(2, B_SIZE)
    assert verify(path.read_bytes()).offset == cart.at["B"]


def test_label_damage_is_caught_at_the_label() -> None:
    cart = cartridge()
    eof1 = DatasetLabel1("EOF", "VTLFABRIC.F0001", "PR0001", 1, block_count=3).encode()
    assert verify(cart.patched(cart.at["EOF1"] + HEADER_SIZE, eof1)) == Problem(
        cart.at["EOF1"], "EOF1 counts 3 blocks, the file holds 2"
    )
    problem = verify(cart.patched(cart.at["HDR1.2"] + HEADER_SIZE, "XXXX".encode("cp037")))
    assert problem.offset == cart.at["HDR1.2"] and "expected a HDR1 label" in problem.message


def test_an_image_without_a_volume_label_fails_verify_but_lists_unlabelled() -> None:
    raw, _ = records.encode_records([b"data", None], 0, 0)
    assert verify(raw) == Problem(0, "expected a VOL1 label, found a 4-byte block")
    assert verify(b"") == Problem(0, "the image is empty: no VOL1 label")
    found = inspect(raw)
    assert found.ok and found.labels is Labels.NONE and found.vol1 is None


def test_a_block_longer_than_its_hdr2_says_is_caught() -> None:
    labels = [
        Vol1("PR0003").encode(),
        DatasetLabel1("HDR", "DS", "PR0003", 1).encode(),
        DatasetLabel2("HDR", 100).encode(),
        None,
        b"x" * 100,
        b"y" * 101,
    ]
    raw, written = records.encode_records(labels, 0, 0)
    assert verify(raw) == Problem(written[-1].offset, "a 101-byte block in tape file 1, whose HDR2 block size is 100")


def test_blocks_hercules_reads_differently_are_warned_about() -> None:
    raw, written = records.encode_records([b"a", b"", b"", bytes(MAX_BLOCK_SIZE + 1), None], 0, 0)
    found = inspect(raw)
    assert found.ok
    assert [w.offset for w in found.warnings] == [written[1].offset, written[3].offset]
    assert "2 empty data blocks" in found.warnings[0].message and "65535" in found.warnings[1].message


# ---------------------------------------------------------------- the CLI


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "vtlfabric.cli", "tape", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "PR0001L8.aws"
    path.write_bytes(cartridge().raw)
    return path


def test_verify_says_ok_in_one_line(image: Path) -> None:
    done = cli("verify", image)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        f"{image}: OK: volume PR0001, 2 files, 3 data blocks (10105 bytes); "
        f"18 records in {len(cartridge().raw)} bytes, every header, back link and label checked"
    ]


def test_verify_prints_the_first_problem_and_exits_1(image: Path) -> None:
    cart = cartridge()
    image.write_bytes(cart.patched(cart.at["B"] + 2, CHUNK.to_bytes(2, "little")))
    done = cli("verify", image)
    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout.splitlines() == [
        f"{image}: offset {cart.at['B']}: block header's previous length 4096 does not match the chunk before it "
        f"(1808 bytes, header at {cart.at['A3']})"
    ]
    image.write_bytes(cart.raw[: cart.at["B"] + 20])
    done = cli("verify", image, "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["problem"]["offset"] == cart.at["B"]


def test_verify_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    done = cli("verify", tmp_path / "nothing.aws")
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert "nothing.aws" in line and "No such file" in line
    assert cli("verify").returncode == 2  # argparse: no IMAGE


def test_ls_json_lists_the_label_and_files(image: Path) -> None:
    done = cli("ls", "--json", image)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["ok"] and out["vol1"] == {"volser": "PR0001", "owner": "PR0001L8"} and "blocks" not in out
    files = [
        (f["number"], f["offset"], f["blocks"], f["bytes"], f["hdr1"]["dsname"], f["hdr2"]["block_size"]) for f in out["files"]
    ]
    assert files == [
        (1, cartridge().at["HDR1"], 2, A_SIZE + B_SIZE, "VTLFABRIC.F0001", MAX_BLOCK_SIZE),
        (2, cartridge().at["HDR1.2"], 1, 5, "VTLFABRIC.F0002", MAX_BLOCK_SIZE),
    ]
    blocks = json.loads(cli("ls", "--json", "--blocks", image).stdout)["blocks"]
    assert [b["label"] for b in blocks[:3]] == ["VOL1", "HDR1", "HDR2"]
    [a] = [b for b in blocks if b["offset"] == cartridge().at["A"]]
    assert [(c["offset"], c["length"], c["flags"]) for c in a["chunks"]] == [
        (cartridge().at["A"], CHUNK, BOR),
        (cartridge().at["A2"], CHUNK, 0),
        (cartridge().at["A3"], A_SIZE - 2 * CHUNK, EOR),
    ]


def test_ls_lists_files_and_blocks_in_text(image: Path) -> None:
    done = cli("ls", "--blocks", image)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{image}: volume PR0001, owner PR0001L8; 2 files; {len(cartridge().raw)} bytes"
    assert lines[1].split() == ["FILE", "OFFSET", "BLOCKS", "BYTES", "DATA", "AT", "DSNAME", "CREATED", "RECFM/BLKSIZE"]
    assert lines[2].split()[:6] == [
        "1",
        str(cartridge().at["HDR1"]),
        "2",
        str(A_SIZE + B_SIZE),
        str(cartridge().at["A"]),
        "VTLFABRIC.F0001",
    ]
    [a] = [line.split() for line in lines if line.startswith(f"{cartridge().at['A']} ")]
    assert a == [str(cartridge().at["A"]), str(A_SIZE), "3", "BOR", "..", "EOR"]


def test_ls_of_a_damaged_image_lists_what_it_read_and_exits_1(image: Path) -> None:
    cart = cartridge()
    image.write_bytes(cart.flipped("HDR1.2", 3))
    done = cli("ls", image)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].startswith(f"{image}: offset {cart.at['HDR1.2']}: block header's length")
    assert "VTLFABRIC.F0001" in done.stdout


def test_tape_commands_load_no_trio(image: Path) -> None:
    check = (
        "import sys; from vtlfabric import cli; "
        f"rc = cli.main(['tape', 'verify', {str(image)!r}]); "
        "print(rc, *[m for m in ('trio', 'structlog', 'cryptography', 'sqlite3') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "0"
