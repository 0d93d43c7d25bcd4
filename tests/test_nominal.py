"""Nominal bytes: at data scale 1:N a job writes 1/N of its bytes, and every timing is
the one its nominal bytes take. Checked on the virtual clock against the LTO model's
own figures (vtlfabric/media.py), not against the code's."""

from __future__ import annotations

import random
import re
from functools import partial

import pytest
import trio

from tests.helpers import TEN_GIB_CLIENT, edit_config, open_fabric, write_fabric
from tests.test_wan import MB, timed_transfer
from vtlfabric import config as config_mod
from vtlfabric import media
from vtlfabric.catalog import queries
from vtlfabric.cliformat import render
from vtlfabric.config.reader import ConfigError
from vtlfabric.groups import first_leaf
from vtlfabric.jobs.auxcopy import run_copy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.copystatus import copy_statuses
from vtlfabric.net.linkspec import LinkSpec
from vtlfabric.net.wan import Link
from vtlfabric.service import daemon
from vtlfabric.service.commands import Commands
from vtlfabric.service.operations import Operations
from vtlfabric.vocab import CopyState

GiB, MiB = 2**30, 2**20
SCALE = 1024
ROBOT = 0.2  # the test sites' robot_time
WIDE_LINK = """
[[link]]
name = "wan"
sites = ["prod", "dr"]
bandwidth = "100GB"
latency = "0.1ms"
window = "1GiB"
"""


async def test_copying_a_nominal_10_gib_job_between_lto8_drives_takes_the_models_time(tmp_path, autojump_clock):
    sites = {"timing": True, "capacity": "64MiB", "drive_type": "LTO-8"}
    path = write_fabric(
        tmp_path / "f",
        prod={**sites, "clients": TEN_GIB_CLIENT},
        dr=sites,
        link=WIDE_LINK,
        extra_daemon=f"data_scale = {SCALE}",
        chunk="256KiB",
    )
    async with open_fabric(path) as fabric:
        job = await run_backup(fabric, "IBMA", "ALLUSR", "full")
        assert 10 * GiB / SCALE <= job.bytes < 10 * GiB / SCALE + MiB, "1/1024 of the nominal bytes is written"

        began, fabric_began = trio.current_time(), fabric.now()
        run = await run_copy(fabric, fabric.copy("P/dr"), 1)
        ended = trio.current_time()
        available = await fabric.catalog.call(queries.job_copy, job.job_id, "P/dr")
        assert run.status == "completed" and run.jobs_copied == 1

        lto8, l8 = media.DRIVES["LTO-8"], media.MEDIA["L8"]
        data = job.bytes * SCALE / lto8.transfer_rate(l8)  # 10 GiB at 360 MB/s: 29.8 s
        first_chunk = 256 * 1024 * SCALE / lto8.transfer_rate(l8)
        on_tape = job.bytes / (64 * MiB)  # how far along the tape the job ends
        mount = ROBOT + lto8.load
        # The source mounts, locates and reads its first chunk; the destination mounts when
        # it arrives and writes at the drive's rate while the source streams on, reading
        # each block back as it goes (read after write, as LTO drives do): no second pass.
        to_available = mount + lto8.base_locate + first_chunk + mount + lto8.base_locate + data
        unload = media.rewind_time(lto8, on_tape) + lto8.unload + ROBOT  # each drive, one after the other
        assert available.state == CopyState.AVAILABLE
        assert available.updated - fabric_began == pytest.approx(to_available, rel=0.01)
        assert ended - began == pytest.approx(to_available + 2 * unload, rel=0.01)
        assert 130 < ended - began < 145, "over two minutes, as the model says, not the 0.1 s the real bytes would take"

        dr = next(s for s in await copy_statuses(fabric) if s.id == "P/dr")
        assert dr.available_bytes == job.bytes * SCALE, "copies count nominal bytes"
        [shown] = await Commands(fabric, Operations(None), 0.0).cmd_jobs({"client": "IBMA"})  # type: ignore[arg-type]
        assert (shown["bytes"], shown["nominal_bytes"]) == (job.bytes, job.bytes * SCALE), "ctl jobs shows both"
        assert "10.0 GiB" in render("jobs", [shown]), "and its table the nominal size"


@pytest.mark.parametrize("scale", [1, 64, 4096])
async def test_a_link_at_scale_carries_real_bytes_in_the_time_their_nominal_bytes_take(scale, autojump_clock):
    """20 MiB nominal takes 20 MiB / bandwidth and one latency, whatever the scale."""
    for spec, expected in (
        (dict(bandwidth=10 * MB, latency=0.01, window=4 * MiB), 20 * MiB / (10 * MB) + 0.01),
        (dict(bandwidth=100 * MB, latency=0.05, window=64 * MiB), 20 * MiB / (100 * MB) + 0.05),
    ):
        link = Link(LinkSpec(name="wan", a="prod", b="dr", **spec), random.Random(1), scale=scale)
        (elapsed,) = await timed_transfer([link.open_stream("prod")], 20 * MiB // scale)
        assert elapsed == pytest.approx(expected, rel=0.02)
        assert link.stats.bytes_a_to_b == 20 * MiB, "the link counts nominal bytes"


def test_a_state_dir_keeps_the_scale_it_was_written_at(tmp_path):
    path = write_fabric(tmp_path / "f", extra_daemon="data_scale = 1024")
    (tmp_path / "f" / "state").mkdir()
    trio.run(_start_and_stop, config_mod.load(path))
    edit_config(path, "data_scale = 1024", "data_scale = 1")
    with pytest.raises(BaseExceptionGroup) as caught:  # from inside the daemon's nursery, as `run` meets it
        trio.run(_start_and_stop, config_mod.load(path))
    leaf = first_leaf(caught.value)
    assert isinstance(leaf, ConfigError)
    assert re.search(r"daemon.data_scale: is 1, but the state dir .* was written at 1024", str(leaf))


async def _start_and_stop(config) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(daemon.run, config))
        nursery.cancel_scope.cancel()
