"""What tests share: small fabrics written as real config files and loaded the way the
daemon loads them, a checked way to edit those files, doubles, and time helpers.

Tests import from here (or from expect.py, daemon.py, soak.py, bench.py), never from
conftest.py or from each other.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import trio
import trio.testing

from tests.expect import job_files, restored_files, subclient_files, workload_of
from vtlfabric import config as config_mod
from vtlfabric.catalog import queries
from vtlfabric.catalog.db import Catalog
from vtlfabric.fabric import Fabric, build
from vtlfabric.jobs.restore import RestoreRequest, run_restore
from vtlfabric.jobs.running import Work
from vtlfabric.sim.clock import FabricClock
from vtlfabric.tape.image import TapeImage
from vtlfabric.vocab import VIRTUAL_EPOCH, CopyState

T = TypeVar("T")

EPOCH = VIRTUAL_EPOCH  # in-process fabrics start where a new virtual-clock daemon does

# ------------------------------------------------------------------ fabric configs


# A one-drive vault library, for a second copy at the DR site.
VAULT_LIBRARY = """
[[library]]
name = "VAULT"
drives = 1
slots = 8
barcodes = "VA0001L8-VA0006L8"
capacity = "8MiB"
block_size = "32KiB"
robot_time = "200ms"
timing = false
"""


def site_toml(
    name: str,
    ma: str,
    library: str,
    prefix: str,
    *,
    clients: str = "",
    drives: int = 2,
    capacity: str = "4MiB",
    block_size: str = "32KiB",
    cartridges: int = 12,
    robot_time: str = "200ms",
    timing: bool = False,
    drive_type: str = "LTO-8",
) -> str:
    return (
        textwrap.dedent(f"""\
        name = "{name}"

        [mediaagent]
        name = "{ma}"

        [[library]]
        name = "{library}"
        drives = {drives}
        slots = {cartridges + 4}
        barcodes = "{prefix}0001L8-{prefix}{cartridges:04d}L8"
        capacity = "{capacity}"
        block_size = "{block_size}"
        robot_time = "{robot_time}"
        timing = {str(timing).lower()}
        drive_type = "{drive_type}"
        """)
        + clients
    )


CLIENTS = """
[[client]]
name = "IBMA"
seed = 11
change_every = "1h"
change_rate = 0.3

  [[client.subclient]]
  name = "ALLUSR"
  content = ["LIB:PAYROLL", "LIB:ORDERS"]
  objects = 6
  min_size = "2KiB"
  max_size = "200KiB"

  [[client.subclient]]
  name = "IFS"
  content = ["IFS:/home/app"]
  objects = 4
  min_size = "1KiB"
  max_size = "64KiB"

[[client]]
name = "IBMB"
seed = 22
change_every = "1h"
change_rate = 0.5

  [[client.subclient]]
  name = "ALLUSR"
  content = ["LIB:GL"]
  objects = 10
  min_size = "10KiB"
  max_size = "300KiB"
"""


# IBMA with ten objects of 1 GiB nominal (10 GiB a full), and a small IBMB: with a
# data_scale, a job that takes the drives real time while it writes little.
TEN_GIB_CLIENT = """
[[client]]
name = "IBMA"
seed = 11
change_every = "1h"
change_rate = 0.3

  [[client.subclient]]
  name = "ALLUSR"
  content = ["LIB:PAYROLL"]
  objects = 10
  min_size = "1GiB"
  max_size = "1GiB"

""" + CLIENTS[CLIENTS.index('[[client]]\nname = "IBMB"') :]


def fabric_toml(*, streams: int = 2, link: str = "", schedules: str = "", chunk: str = "256KiB", extra_daemon: str = "") -> str:
    link = (
        link
        or """
[[link]]
name = "wan"
sites = ["prod", "dr"]
bandwidth = "50MB"
latency = "20ms"
jitter = "2ms"
loss = 0.001
window = "1MiB"
stall_timeout = "20s"
"""
    )
    return (
        textwrap.dedent(f"""\
        sites = ["prod.toml", "dr.toml"]

        [daemon]
        state_dir = "state"
        seed = 7
        {extra_daemon}

        [encryption]
        chunk_size = "{chunk}"
        """)
        + link
        + textwrap.dedent(f"""
        [[policy]]
        name = "P"
        clients = ["IBMA", "IBMB"]

          [[policy.copy]]
          name = "primary"
          primary = true
          library = "prod/PVTL"

          [[policy.copy]]
          name = "dr"
          source = "primary"
          library = "dr/DVTL"
          streams = {streams}
        """)
        + schedules
    )


def write_fabric(root: Path, *, prod: dict[str, Any] | None = None, dr: dict[str, Any] | None = None, **fabric: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "prod.toml").write_text(site_toml("prod", "prodma", "PVTL", "PR", **{"clients": CLIENTS, **(prod or {})}))
    (root / "dr.toml").write_text(site_toml("dr", "drma", "DVTL", "DR", **(dr or {})))
    path = root / "fabric.toml"
    path.write_text(fabric_toml(**fabric))
    return path


def edited(text: str, anchor: str, replacement: str, *, count: int = 1, where: object = "config text") -> str:
    """``text`` with the first ``count`` occurrences of ``anchor`` replaced. An anchor that
    is not there (say, a default that changed) fails the test, naming ``where`` and the
    anchor, rather than leaving the config silently as it was."""
    found = text.count(anchor)
    if found < count:
        raise AssertionError(f"{where}: expected {count} of {anchor!r} to edit, found {found}")
    return text.replace(anchor, replacement, count)


def edit_config(path: Path, anchor: str, replacement: str, count: int = 1) -> None:
    """Edit a config file in place: replace ``anchor``, which must be in it (see ``edited``)."""
    path.write_text(edited(path.read_text(), anchor, replacement, count=count, where=path))


@asynccontextmanager
async def open_fabric(path: Path, seed: int | None = None) -> AsyncIterator[Fabric]:
    """A fabric in this process, on whatever clock the test runs."""
    cfg = config_mod.load(path)
    cfg.daemon.state_dir.mkdir(parents=True, exist_ok=True)
    catalog = await Catalog.open(cfg.daemon.state_dir / "catalog.db")
    try:
        yield await build(cfg, catalog, FabricClock.starting_at(EPOCH), random.Random(cfg.daemon.seed if seed is None else seed))
    finally:
        await catalog.aclose()


# ------------------------------------------------------------------ what restores must give


def expected(config: Path, client: str, subclient: str, generation: int) -> dict[Path, bytes]:
    """A subclient's files at ``generation``, rebuilt from the client's workload in ``config``."""
    return subclient_files(workload_of(config, client), subclient, generation)


async def check_every_copy(fabric: Fabric, root: Path) -> int:
    """Every job restores byte-exact from every copy that holds it."""
    checked = 0
    for job in await fabric.catalog.call(queries.list_jobs):
        for copy_id, state in job.copies.items():
            if state != CopyState.AVAILABLE:
                continue
            dest = root / f"{job.id}-{copy_id.replace('/', '_')}"
            await run_restore(fabric, RestoreRequest(job.client, dest, job_id=job.id, copy_id=copy_id))
            want = job_files(fabric.workloads[job.client], job.subclient, job.type, job.generation, job.base_generation)
            assert restored_files(dest) == want, f"job {job.id} from {copy_id}"
            checked += 1
    return checked


# ------------------------------------------------------------------ tapes


def payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def write_image(
    path: Path, files: list[list[bytes]], *, close_last: bool = True, barcode: str = "PR0001L8", **kwargs: Any
) -> TapeImage:
    """A cartridge image holding ``files`` (lists of blocks), left open for the test to read."""
    image = TapeImage.create(path, barcode, kwargs.pop("capacity", 64 * 2**20), **kwargs)
    for n, blocks in enumerate(files, 1):
        assert image.begin_file() == n
        assert image.write_blocks(blocks) == len(blocks)
        if close_last or n < len(files):
            image.end_file()
    image.flush()
    return image


def hetget_argv(image: Path, out: Path, file_no: int) -> list[str]:
    """The command that copies tape file ``file_no`` out of a cartridge, bytes unchanged.

    No DCB arguments and no ``-n``: hetget reads VOL1, skips 3 tapemarks per
    earlier file, takes RECFM=U from HDR2 and, without ``-a``/``-u``, writes
    every block exactly as it is on tape.
    """
    return [shutil.which("hetget") or "hetget", str(image), str(out), str(file_no)]


# ------------------------------------------------------------------ doubles


class RecordingOps:
    """Stands in for Operations: records what the scheduler starts, and when, running nothing."""

    def __init__(self) -> None:
        self.started: list[tuple[int, str]] = []
        self.began = trio.current_time()

    async def start(self, kind, fn, *args, reports_id=False):
        self.started.append((round((trio.current_time() - self.began) / 60), args[1]))
        op = Work(kind, str(len(self.started)))
        op.done.set()
        return op


# ------------------------------------------------------------------ time


def cached_bytes(paths: list[Path]) -> int:
    """How many of the files' bytes the kernel holds in its page cache (util-linux's fincore)."""
    argv = ["fincore", "--bytes", "--noheadings", "--output", "RES", *map(str, paths)]
    return sum(int(n) for n in subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split())


def page_cache_skip(directory: Path) -> str:
    """Why a test of what stays in the page cache cannot run in ``directory`` ('' if it
    can): no fincore, or a filesystem that keeps a page it was told to drop (tmpfs)."""
    if shutil.which("fincore") is None or not hasattr(os, "posix_fadvise"):
        return "fincore (util-linux) or posix_fadvise is missing here"
    probe = directory / "page-cache-probe"
    try:
        with probe.open("wb") as f:
            f.write(b"x" * 2**20)
            f.flush()
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        kept = cached_bytes([probe])
    finally:
        probe.unlink()
    return f"this filesystem kept {kept} bytes it was told to drop (tmpfs?)" if kept else ""


async def minutes(clock: trio.testing.MockClock, n: int) -> None:
    """Move a manual mock clock on a minute at a time, letting what wakes run: an autojump
    clock would leap ahead while the reload waits for the catalog's thread."""
    for _ in range(n):
        clock.jump(60)
        await trio.testing.wait_all_tasks_blocked()


def wait_for(
    what: str,
    check: Callable[[], T],
    *,
    timeout: float = 60.0,
    interval: float = 0.2,
    explain: Callable[[], object] | None = None,
) -> T:
    """Poll ``check`` in real time (a real daemon) until it returns something true, and return that;
    fail naming ``what`` (and what ``explain`` says, e.g. the daemon's log) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout  # clock-ok: a real daemon, real time
    while time.monotonic() < deadline:  # clock-ok
        found = check()
        if found:
            return found
        time.sleep(interval)  # clock-ok
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{explain()}" if explain else ""))


async def collect(results: list, awaitable: Any) -> None:
    """Await ``awaitable`` and keep its result: for a job started with nursery.start_soon."""
    results.append(await awaitable)
