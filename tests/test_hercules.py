"""Our cartridges, read by Hercules' own tools: the proof that they are real AWSTAPE images.

Note that hetget exits 0 even when it fails to read a block, so every check
here compares bytes rather than trusting the exit status.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import helpers
from tests.helpers import hetget_argv, payload
from vtlfabric.tape import awstape
from vtlfabric.tape.image import MAX_BLOCK_SIZE, TapeImage

HETMAP = shutil.which("hetmap")
HETGET = shutil.which("hetget")

pytestmark = [
    pytest.mark.hercules,
    pytest.mark.skipif(
        HETMAP is None or HETGET is None,
        reason="Hercules' hetmap/hetget are not on PATH (install the 'hercules' package; CI does)",
    ),
]

BARCODE = "PR0042L8"
CAPACITY = 64 * 2**20


# Several files of different shapes; the last one is on the image's last bytes.
FILES = [
    [payload(1, 1000), payload(2, MAX_BLOCK_SIZE), payload(3, 1)],
    [payload(4, 80)],  # as long as a label, but data
    [],
    [payload(5, 4096) for _ in range(20)],
    [payload(6, MAX_BLOCK_SIZE), payload(7, MAX_BLOCK_SIZE - 1), payload(8, 12345)],
]


def write_image(path: Path, files: list[list[bytes]], *, chunk_size: int, close_last: bool = True) -> None:
    helpers.write_image(path, files, close_last=close_last, barcode=BARCODE, capacity=CAPACITY, chunk_size=chunk_size).close()


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False)


def hetget(image: Path, file_no: int, out: Path) -> bytes:
    done = run(*hetget_argv(image, out, file_no))
    assert done.returncode == 0, done.stderr
    assert "missing" not in done.stdout + done.stderr, done.stdout + done.stderr
    return out.read_bytes()


@pytest.fixture(params=[awstape.MAX_CHUNK, awstape.HERCULES_MIN_CHUNK], ids=["one-chunk", "4K-chunks"])
def image(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / f"{BARCODE}.aws"
    write_image(path, FILES, chunk_size=request.param)
    return path


def test_multi_chunk_blocks_are_really_on_the_image(tmp_path: Path) -> None:
    path = tmp_path / "chunks.aws"
    write_image(path, FILES, chunk_size=awstape.HERCULES_MIN_CHUNK)
    with path.open("rb") as f:
        assert max(r.chunks for r in awstape.iter_records(f)) == 16  # a 65535-byte block in 4K chunks


def test_hetmap_lists_every_data_set(image: Path) -> None:
    done = run(HETMAP, "-d", image)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"^vol=(\S+)", out, re.M).group(1) == BARCODE[:6]
    seqs = [int(s) for s in re.findall(r"^seq=(\d+)", out, re.M)]
    blocks = [int(b) for b in re.findall(r"blocks=(\d+)", out)]
    dsns = re.findall(r"^dsn=(\S+)", out, re.M)
    assert seqs == list(range(1, len(FILES) + 1))
    assert blocks == [len(f) for f in FILES]
    assert dsns == [f"VTLFABRIC.F{n:04d}" for n in seqs]


def test_hetmap_walks_the_whole_label_structure(image: Path) -> None:
    done = run(HETMAP, image)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "het_read() returned" not in out
    labels = re.findall(r"^Label\s*: '(\w+)'", out, re.M)
    assert labels == ["VOL1"] + ["HDR1", "HDR2", "EOF1", "EOF2"] * len(FILES)
    assert re.search(r"Volume Serial\s*: '(\w+)'", out).group(1) == BARCODE[:6]
    # Three tapemarks per tape file: after the header labels, the data and the trailer labels.
    physical = [int(n) for n in re.findall(r"^File #\s*: (\d+)", out, re.M)]
    assert physical == list(range(1, 3 * len(FILES) + 1))
    data_blocks = [int(n) for n in re.findall(r"^Blocks\s*: (\d+)", out, re.M)][1::3]
    assert data_blocks == [len(f) for f in FILES]


def test_hetget_extracts_each_file_byte_for_byte(image: Path, tmp_path: Path) -> None:
    for n, blocks in enumerate(FILES, 1):
        assert hetget(image, n, tmp_path / f"file{n}") == b"".join(blocks), f"tape file {n}"


def test_hetget_reads_the_open_last_file(tmp_path: Path) -> None:
    path = tmp_path / "open.aws"
    files = [[payload(10, 3000)], [payload(11, MAX_BLOCK_SIZE), payload(12, 7)]]
    write_image(path, files, chunk_size=awstape.MAX_CHUNK, close_last=False)
    assert hetget(path, 2, tmp_path / "out") == b"".join(files[1])
    assert hetget(path, 1, tmp_path / "out") == b"".join(files[0])


def test_hetget_reads_files_appended_after_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "appended.aws"
    write_image(path, FILES[:2], chunk_size=awstape.MAX_CHUNK, close_last=False)
    with TapeImage.open(path, CAPACITY) as image:
        assert image.begin_file() == 3  # closes file 2 first
        image.write_block(b"appended")
        image.end_file()
    assert hetget(path, 2, tmp_path / "out") == b"".join(FILES[1])
    assert hetget(path, 3, tmp_path / "out") == b"appended"


def test_hercules_cannot_read_a_block_over_65535_bytes(tmp_path: Path) -> None:
    """Why TapeImage refuses such blocks: Hercules' HETMAX_BLOCKSIZE is 65535."""
    path = tmp_path / "toolarge.aws"
    write_image(path, [[b"x"]], chunk_size=awstape.MAX_CHUNK, close_last=False)
    with TapeImage.open(path, CAPACITY) as image:
        end, prev = image.end_offset(), 1
    raw, _ = awstape.encode_block(bytes(MAX_BLOCK_SIZE + 1), prev)
    with path.open("r+b") as f:
        f.seek(end)
        f.write(raw)
    with TapeImage.open(path, CAPACITY) as image:
        assert list(map(len, image.read_file(1))) == [1, MAX_BLOCK_SIZE + 1]
    assert hetget(path, 1, tmp_path / "out") == b"x"  # stops at the big block, silently
    assert "het_read() returned -8" in run(HETMAP, path).stdout  # HETE_OVERFLOW


tape_files = st.lists(
    st.lists(st.builds(payload, st.integers(0, 2**32), st.integers(1, MAX_BLOCK_SIZE)), max_size=3),
    min_size=1,
    max_size=4,
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=tape_files, chunk_size=st.sampled_from([awstape.MAX_CHUNK, 4096, 30000]))
def test_hetget_agrees_with_random_images(files: list[list[bytes]], chunk_size: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "random.aws"
        write_image(path, files, chunk_size=chunk_size)
        for n, blocks in enumerate(files, 1):
            assert hetget(path, n, Path(d) / "out") == b"".join(blocks)
