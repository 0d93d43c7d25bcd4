"""The machine's ceiling for a safe copy: the work aux copy's safety properties need,
with as little else as Python allows.

Each stream copies its files in chunks: read a chunk and seal it (AES-256-GCM); open
it, write it and make it durable (``fdatasync``), then append a checkpoint of its end to
a journal and make that durable too, as the catalog's commit of each checkpoint is
(SQLite, ``synchronous = FULL``); read it back and hash it (SHA-256). What it has read,
it gives back to the kernel, as aux copy's drives do. Every call that
touches the bytes releases the GIL, and nothing else is done: no tape blocks, no WAN
model, no catalog, no event loop. The copy's digest is checked against the source's,
so a figure is of a copy that worked.

Pipelined (as aux copy is), the three steps run in three threads a bounded queue
apart, so one stream may use every core. ``serial``, one thread does them one after
another, so a stream uses at most one core and waits for each sync. The pipelined
figure is the most a copy with our encryption, checkpoints and read-back can move on
this machine and filesystem; aux copy's distance from it is what our own code costs.
How either scales from one stream to two shows what two streams can gain here at all.
"""

from __future__ import annotations

import hashlib
import os
import queue
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.benchfigures import Figure
from vtlfabric.files import release_pages

CHUNK = 4 * 2**20
Source = tuple[Path, int]  # a file, and how many bytes from its start to copy
DEPTH = 2  # chunks queued between two stages, as aux copy's read-ahead
_DONE = object()  # the end of a stage's output


def floor_name(streams: int, *, serial: bool = False) -> str:
    return f"safe copy floor, {streams} stream{'s' if streams > 1 else ''}{', serial' if serial else ''}"


def safe_copy_floor(streams: list[list[Source]], dest_dir: Path, chunk: int = CHUNK, *, serial: bool = False) -> Figure:
    """Copy what each stream is given, one source after another, to new files in
    ``dest_dir``, the streams at once; the figure of them all. ``serial``: each stream
    does its steps one after another in one thread, rather than in three at once."""
    expected = [_digest(stream) for stream in streams]  # before the clock starts
    dests = [dest_dir / f"floor-{n}" for n in range(len(streams))]
    stages = _serial_stage if serial else _pipelined_stages
    began = time.perf_counter()  # clock-ok: a benchmark measures wall time
    results = _run_all([stages(_Steps.open(d), s, chunk) for s, d in zip(streams, dests, strict=True)])
    seconds = time.perf_counter() - began  # clock-ok
    for dest in dests:
        dest.unlink()
        _journal(dest).unlink()
    if results != expected:
        raise AssertionError("the floor's copy does not hash to its source")
    nbytes = sum(n for stream in streams for _, n in stream)
    return Figure(floor_name(len(streams), serial=serial), nbytes, seconds)


def _journal(dest: Path) -> Path:
    return dest.with_name(dest.name + ".journal")


def _digest(stream: list[Source]) -> str:
    sha = hashlib.sha256()
    for path, n in stream:
        with path.open("rb") as f:
            sha.update(f.read(n))
    return sha.hexdigest()


@attrs.define
class _Steps:
    """One stream's work on each chunk, whichever thread does it."""

    dest: Path
    sealer: AESGCM
    opener: AESGCM
    sha: Any = attrs.Factory(hashlib.sha256)
    sealed: int = 0  # records sealed: the next one's nonce

    @classmethod
    def open(cls, dest: Path) -> _Steps:
        dest.write_bytes(b"")  # before any stage opens it
        key = os.urandom(32)
        return cls(dest, AESGCM(key), AESGCM(key))

    def chunks(self, stream: list[Source], chunk: int) -> Iterator[tuple[bytes, int, bytes]]:
        """Read and seal each chunk: (nonce, where it goes in the copy, ciphertext)."""
        to = 0
        for source, size in stream:
            with source.open("rb", buffering=0) as f:
                for at in range(0, size, chunk):
                    nonce, self.sealed = self.sealed.to_bytes(12, "big"), self.sealed + 1
                    data = os.pread(f.fileno(), min(chunk, size - at), at)
                    release_pages(f.fileno(), at, at + len(data))
                    yield nonce, to, self.sealer.encrypt(nonce, data, None)
                    to += len(data)

    def land(self, fd: int, journal: int, nonce: bytes, at: int, ciphertext: bytes) -> tuple[int, int]:
        """Open a chunk, write it and make it durable, then its checkpoint: (where, how long)."""
        data = self.opener.decrypt(nonce, ciphertext, None)
        os.pwrite(fd, data, at)
        os.fdatasync(fd)
        os.write(journal, (at + len(data)).to_bytes(8, "big"))
        os.fdatasync(journal)
        return at, len(data)

    def check(self, fd: int, at: int, n: int) -> None:
        """Read a landed chunk back and hash it."""
        self.sha.update(os.pread(fd, n, at))
        release_pages(fd, at, at + n)

    @contextmanager
    def files(self) -> Iterator[tuple[int, int]]:
        fd = os.open(self.dest, os.O_RDWR)
        journal = os.open(_journal(self.dest), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            yield fd, journal
        finally:
            os.close(journal)
            os.close(fd)


Stages = tuple[list[Callable[[], None]], list[str]]  # a stream's threads, and where its digest goes


def _serial_stage(steps: _Steps, stream: list[Source], chunk: int) -> Stages:
    result: list[str] = []

    def copy() -> None:
        with steps.files() as (fd, journal):
            for nonce, at, ciphertext in steps.chunks(stream, chunk):
                steps.check(fd, *steps.land(fd, journal, nonce, at, ciphertext))
        result.append(steps.sha.hexdigest())

    return [copy], result


def _pipelined_stages(steps: _Steps, stream: list[Source], chunk: int) -> Stages:
    """Three stages a bounded queue apart. Each ends its output with _DONE and drains its
    input to _DONE whatever happens, so one that fails ends the stream instead of
    leaving the others blocked."""
    sealed: queue.Queue = queue.Queue(DEPTH)
    landed: queue.Queue = queue.Queue(DEPTH)
    result: list[str] = []

    def read_and_seal() -> None:
        try:
            for item in steps.chunks(stream, chunk):
                sealed.put(item)
        finally:
            sealed.put(_DONE)

    def open_write_sync() -> None:
        item = None
        try:
            with steps.files() as (fd, journal):
                while (item := sealed.get()) is not _DONE:
                    landed.put(steps.land(fd, journal, *item))
        finally:
            landed.put(_DONE)
            _drain(sealed, item)

    def read_back() -> None:
        item = None
        try:
            with steps.files() as (fd, _):
                while (item := landed.get()) is not _DONE:
                    steps.check(fd, *item)
            result.append(steps.sha.hexdigest())
        finally:
            _drain(landed, item)

    return [read_and_seal, open_write_sync, read_back], result


def _drain(q: queue.Queue, last: object) -> None:
    """Take what is left up to _DONE, unless the last item taken was it."""
    while last is not _DONE:
        last = q.get()


def _run_all(streams: list[Stages]) -> list[str]:
    stages = [stage for stream, _ in streams for stage in stream]
    with ThreadPoolExecutor(len(stages), thread_name_prefix="floor") as pool:
        for done in [pool.submit(stage) for stage in stages]:
            done.result()  # a stage's error, raised here
    return [result[0] for _, result in streams]
