"""The machine's ceiling for a safe copy: the work aux copy's safety properties need,
with as little else as Python allows.

Each stream copies one file in chunks through three threads, a bounded queue apart:
read a chunk and seal it (AES-256-GCM); open it, write it and make it durable
(``fdatasync``), then append a checkpoint of its end to a journal and make that durable
too, as the catalog's commit of each checkpoint is (SQLite, ``synchronous = FULL``);
read it back and hash it (SHA-256). Every call that
touches the bytes releases the GIL, and nothing else is done: no tape blocks, no WAN
model, no catalog, no event loop. What this moves per second is what a copy with
encryption, per-chunk checkpoints and read-back verification can move on this
machine and filesystem; aux copy's distance from it is what our own code costs. The
copy's digest is checked against the source's, so the figure is of a copy that worked.

No test uses it: it is a row of `make bench` (tests/bench.py).
"""

from __future__ import annotations

import hashlib
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.benchfigures import Figure

CHUNK = 4 * 2**20
Source = tuple[Path, int]  # a file, and how many bytes from its start to copy
DEPTH = 2  # chunks queued between two stages, as aux copy's read-ahead
_DONE = object()  # the end of a stage's output


def floor_name(streams: int) -> str:
    return f"safe copy floor, {streams} stream{'s' if streams > 1 else ''}"


def safe_copy_floor(streams: list[list[Source]], dest_dir: Path, chunk: int = CHUNK) -> Figure:
    """Copy what each stream is given, one source after another, to new files in
    ``dest_dir``, the streams at once; the figure of them all."""
    expected = [_digest(stream) for stream in streams]  # before the clock starts
    dests = [dest_dir / f"floor-{n}" for n in range(len(streams))]
    began = time.perf_counter()  # clock-ok: a benchmark measures wall time
    results = _run_all([_stream_stages(s, d, chunk) for s, d in zip(streams, dests, strict=True)])
    seconds = time.perf_counter() - began  # clock-ok
    for dest in dests:
        dest.unlink()
        _journal(dest).unlink()
    if results != expected:
        raise AssertionError("the floor's copy does not hash to its source")
    return Figure(floor_name(len(streams)), sum(n for stream in streams for _, n in stream), seconds)


def _journal(dest: Path) -> Path:
    return dest.with_name(dest.name + ".journal")


def _digest(stream: list[Source]) -> str:
    sha = hashlib.sha256()
    for path, n in stream:
        with path.open("rb") as f:
            sha.update(f.read(n))
    return sha.hexdigest()


def _stream_stages(stream: list[Source], dest: Path, chunk: int) -> tuple[list[Callable[[], None]], list[str]]:
    """One stream's three stages, and where its read-back digest will be put. Each stage
    ends its output with _DONE and drains its input to _DONE whatever happens, so one
    that fails ends the stream instead of leaving the others blocked."""
    key = os.urandom(32)
    sealer, opener = AESGCM(key), AESGCM(key)
    sealed: queue.Queue = queue.Queue(DEPTH)
    written: queue.Queue = queue.Queue(DEPTH)
    result: list[str] = []
    dest.write_bytes(b"")  # before any stage opens it

    def read_and_seal() -> None:
        n = to = 0  # records sealed; where the next goes in the copy
        try:
            for source, size in stream:
                with source.open("rb", buffering=0) as f:
                    for at in range(0, size, chunk):
                        nonce = n.to_bytes(12, "big")
                        data = os.pread(f.fileno(), min(chunk, size - at), at)
                        sealed.put((nonce, to, sealer.encrypt(nonce, data, None)))
                        n, to = n + 1, to + len(data)
        finally:
            sealed.put(_DONE)

    def open_write_sync() -> None:
        fd, item = os.open(dest, os.O_WRONLY), None
        journal = os.open(_journal(dest), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while (item := sealed.get()) is not _DONE:
                nonce, at, ciphertext = item
                data = opener.decrypt(nonce, ciphertext, None)
                os.pwrite(fd, data, at)
                os.fdatasync(fd)
                os.write(journal, (at + len(data)).to_bytes(8, "big"))
                os.fdatasync(journal)
                written.put((at, len(data)))
        finally:
            os.close(journal)
            os.close(fd)
            written.put(_DONE)
            _drain(sealed, item)

    def read_back() -> None:
        sha, item = hashlib.sha256(), None
        try:
            with dest.open("rb", buffering=0) as f:
                while (item := written.get()) is not _DONE:
                    at, n = item
                    sha.update(os.pread(f.fileno(), n, at))
            result.append(sha.hexdigest())
        finally:
            _drain(written, item)

    return [read_and_seal, open_write_sync, read_back], result


def _drain(q: queue.Queue, last: object) -> None:
    """Take what is left up to _DONE, unless the last item taken was it."""
    while last is not _DONE:
        last = q.get()


def _run_all(streams: list[tuple[list[Callable[[], None]], list[str]]]) -> list[str]:
    stages = [stage for stream, _ in streams for stage in stream]
    with ThreadPoolExecutor(len(stages), thread_name_prefix="floor") as pool:
        for done in [pool.submit(stage) for stage in stages]:
            done.result()  # a stage's error, raised here
    return [result[0] for _, result in streams]
