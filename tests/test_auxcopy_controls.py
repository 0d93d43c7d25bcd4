"""Streams, throttle, suspend and resume of an aux copy, on the virtual clock."""

from __future__ import annotations

import attrs
import trio

from tests.expect import expected_files, restored_files
from tests.helpers import collect, edit_config, open_fabric, write_fabric
from vtlfabric.catalog import queries
from vtlfabric.jobs import running
from vtlfabric.jobs.auxcopy import SUSPENDED, plan_streams, run_auxcopy, run_copy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.restore import RestoreRequest, run_restore
from vtlfabric.service.commands import Commands
from vtlfabric.service.operations import Operations
from vtlfabric.vocab import CopyState

DR = "P/dr"


def test_stream_count_follows_the_copy_the_override_and_the_drives(fabric_files):
    async def check() -> None:
        async with open_fabric(fabric_files) as fabric:
            copy = fabric.config.copy(DR)
            assert plan_streams(fabric, copy, None, 10) == 2
            assert plan_streams(fabric, copy, 5, 10) == 5, "an override wins"
            assert plan_streams(fabric, copy, None, 1) == 1, "never more streams than jobs"
            assert plan_streams(fabric, attrs.evolve(copy, streams=0), None, 10) == 2, "max: drives on both sides"
            assert plan_streams(fabric, attrs.evolve(copy, streams=0, combine_streams=1), None, 10) == 1

    trio.run(check)


async def test_a_throttle_holds_the_copy_to_its_hourly_rate(tmp_path, autojump_clock):
    path = write_fabric(tmp_path / "f")
    edit_config(path, "streams = 2", 'streams = 2\nthrottle = "36MB"')  # 10 kB/s
    async with open_fabric(path) as fabric:
        done = await run_backup(fabric, "IBMB", None, "full")
        start = trio.current_time()
        await run_auxcopy(fabric)
        took = trio.current_time() - start
        chunk = fabric.config.encryption.chunk_size  # the throttle lets one chunk go ahead of its budget
        assert took >= (done.bytes - chunk) / 10_000, f"{done.bytes} bytes in {took:.0f}s is faster than 10 kB/s"
        assert took < done.bytes / 10_000 * 1.5


async def test_suspend_stops_at_a_checkpoint_and_resume_goes_on_from_there(tmp_path, autojump_clock):
    path = write_fabric(tmp_path / "f", chunk="64KiB")
    async with open_fabric(path) as fabric:
        catalog = fabric.catalog
        done = await run_backup(fabric, "IBMB", None, "full")
        copy = fabric.config.copy(DR)
        results = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: collect(results, run_copy(fabric, copy, None)))
            while True:
                await trio.sleep(0.05)
                row = await catalog.call(queries.job_copy, done.job_id, DR)
                if row is not None and row.bytes_done > 0:
                    break
            await catalog.call(queries.set_suspended, DR, True, "test", fabric.now())
            assert running.registry().stop("auxcopy", DR, SUSPENDED)
        assert results[0].status == "suspended"
        row = await catalog.call(queries.job_copy, done.job_id, DR)
        assert row.state == CopyState.PARTIALLY_COPIED and 0 < row.bytes_done < done.bytes
        skipped = await run_copy(fabric, copy, None)
        assert skipped.status == "suspended" and skipped.jobs_copied == 0, "no run while suspended"
        await catalog.call(queries.set_suspended, DR, False, "test", fabric.now())
        sent = fabric.links["wan"].stats.bytes_a_to_b
        resumed = await run_copy(fabric, copy, None)
        assert resumed.status == "completed" and resumed.jobs_copied == 1
        assert fabric.links["wan"].stats.bytes_a_to_b - sent < done.bytes, "it went on from the checkpoint"
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "out", job_id=done.job_id, copy_id=DR))
        gen = (await catalog.call(queries.get_job, done.job_id)).generation
        assert restored_files(tmp_path / "out") == expected_files(fabric, "IBMB", {"ALLUSR": gen})


async def test_lag_and_fallen_behind(tmp_path, autojump_clock):
    path = write_fabric(tmp_path / "f")
    edit_config(path, "streams = 2", 'streams = 2\nfallen_behind_bytes = "10KiB"\nfallen_behind_age = "1h"')
    async with open_fabric(path) as fabric, trio.open_nursery() as nursery:
        commands = Commands(fabric, Operations(nursery), trio.current_time())
        done = await run_backup(fabric, "IBMA", "IFS", "full")
        await trio.sleep(2 * 3600)
        dr = next(c for c in await commands.cmd_copies({}) if c["id"] == DR)
        assert dr["to_copy"] == 1 and dr["bytes_to_copy"] == done.bytes and dr["last_auxcopy"] == ""
        assert dr["oldest_uncopied_age"] >= 2 * 3600
        assert len(dr["fallen_behind"]) == 2, dr["fallen_behind"]
        await run_auxcopy(fabric)
        dr = next(c for c in await commands.cmd_copies({}) if c["id"] == DR)
        assert (dr["to_copy"], dr["bytes_to_copy"], dr["oldest_uncopied_age"], dr["fallen_behind"]) == (0, 0, None, [])
        assert dr["last_auxcopy"] and dr["states"] == {"available": 1}
        nursery.cancel_scope.cancel()
