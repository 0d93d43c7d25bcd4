"""A cartridge left in a drive its holder has finished with is not a lock.

Two aux copy streams each hold a pair of drives and leave the last cartridge they used
in each. The chaos sweep (seed 958557) found them waiting for each other for good:
stream 2, reading its job back, wanted the cartridge stream 1 had written on and left
in its drive, while stream 1, reading its next job, wanted the source cartridge
stream 2 had left in its own. A drill restore then queued behind both. Drives come
whole from the broker; cartridges must not bring the hold-and-wait back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.helpers import open_fabric, write_fabric
from vtlfabric.catalog import queries
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.backup import run_backup
from vtlfabric.tape.library import Library, reserve_drives
from vtlfabric.tape.stream import read_segments

PVTL, DVTL = "prod/PVTL", "dr/DVTL"


async def two_jobs_on_two_cartridges(fabric: Fabric) -> list[tuple[int, str]]:
    """Two fulls at once: each backup claims a cartridge of its own."""
    ids: list[int] = []

    async def backup(client: str) -> None:
        ids.append((await run_backup(fabric, client, "ALLUSR", "full")).job_id)

    async with trio.open_nursery() as nursery:
        for client in ("IBMA", "IBMB"):
            nursery.start_soon(backup, client)
    placed = []
    for job_id in sorted(ids):
        (segment,) = await fabric.catalog.call(queries.segments, job_id, "P/primary")
        placed.append((job_id, segment.barcode))
    assert placed[0][1] != placed[1][1], placed
    return placed


async def read_job(fabric: Fabric, library: Library, drive, job_id: int) -> int:
    segments = await fabric.catalog.call(queries.segments, job_id, "P/primary")
    return sum([len(data) async for data in read_segments(library, drive, segments)])


async def test_streams_that_each_left_a_cartridge_the_other_wants_both_go_on(tmp_path: Path, autojump_clock) -> None:
    async with open_fabric(write_fabric(tmp_path / "f", prod={"drives": 4})) as fabric:
        (job_x, cart_x), (job_y, cart_y) = await two_jobs_on_two_cartridges(fabric)
        library = fabric.libraries[PVTL]
        read: dict[str, int] = {}
        both_left_one = trio.Event()
        left: list[str] = []

        async def stream(name: str, first: int, then: int) -> None:
            async with reserve_drives(library, library, holder=name) as (one, two):
                read[f"{name} first"] = await read_job(fabric, library, one, first)
                left.append(name)
                if len(left) == 2:
                    both_left_one.set()
                await both_left_one.wait()  # each stream's first cartridge now sits in its drive
                read[f"{name} then"] = await read_job(fabric, library, two, then)

        with trio.fail_after(3600):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream, "A", job_x, job_y)
                nursery.start_soon(stream, "B", job_y, job_x)

        jobs = {j.id: j for j in await fabric.catalog.call(queries.list_jobs)}
        assert read == {
            "A first": jobs[job_x].bytes,
            "B first": jobs[job_y].bytes,
            "A then": jobs[job_y].bytes,
            "B then": jobs[job_x].bytes,
        }
        assert {cart_x, cart_y}.isdisjoint(d.barcode for d in library.drives()), "every drive unloaded on the way out"


async def test_a_cartridge_being_read_is_not_taken_from_its_reader(tmp_path: Path, autojump_clock) -> None:
    async with open_fabric(write_fabric(tmp_path / "f", chunk="64KiB", prod={"drives": 2})) as fabric:
        (job_x, cart_x), _ = await two_jobs_on_two_cartridges(fabric)
        library = fabric.libraries[PVTL]
        segments = await fabric.catalog.call(queries.segments, job_x, "P/primary")
        seen: list[tuple[str, float]] = []

        async def reader(name: str, pause: float) -> None:
            async with reserve_drives(library, holder=name) as (drive,):
                async for _ in read_segments(library, drive, segments, batch=64 << 10):
                    seen.append((name, trio.current_time()))
                    await trio.sleep(pause)  # a slow consumer: the cartridge is in use throughout
                assert drive.barcode == cart_x

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader, "slow", 10.0)
            await trio.sleep(1)
            nursery.start_soon(reader, "second", 0.0)

        slow = [t for name, t in seen if name == "slow"]
        second = [t for name, t in seen if name == "second"]
        assert len(slow) > 1 and len(second) == len(slow)
        assert min(second) > max(slow), "the second reader got the cartridge only once the first was done with it"


async def test_a_stream_already_waiting_for_a_cartridge_has_it_once_it_is_left(tmp_path: Path, autojump_clock) -> None:
    """Stream 1, mid-job (its writer's cartridge in use), waits for the source cartridge
    stream 2 is still reading; stream 2 then leaves it and waits for stream 1's."""
    fabric_toml = write_fabric(tmp_path / "f", chunk="64KiB", prod={"drives": 4}, dr={"drives": 4})
    async with open_fabric(fabric_toml) as fabric:
        (job_x, _), _ = await two_jobs_on_two_cartridges(fabric)
        src, dst = fabric.libraries[PVTL], fabric.libraries[DVTL]
        written_on, other = sorted(dst.spec.barcodes)[:2]
        segments = await fabric.catalog.call(queries.segments, job_x, "P/primary")
        reading, waiting = trio.Event(), trio.Event()
        done: list[str] = []

        async def stream_1() -> None:
            async with reserve_drives(src, dst, holder="1") as (source, destination):
                await destination.mount_for_read(written_on)  # in use: not left
                await reading.wait()
                waiting.set()
                async for _ in read_segments(src, source, segments, batch=64 << 10):
                    pass
                destination.leave()
                done.append("1")

        async def stream_2() -> None:
            async with reserve_drives(src, dst, holder="2") as (source, destination):
                await destination.mount_for_read(other)
                async for _ in read_segments(src, source, segments, batch=64 << 10):
                    reading.set()
                    await trio.sleep(5)
                assert waiting.is_set()
                await destination.mount_for_read(written_on)
                done.append("2")

        with trio.fail_after(24 * 3600):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream_1)
                nursery.start_soon(stream_2)
        assert done == ["1", "2"]


async def test_a_load_that_fails_in_the_drive_unloads_before_it_lets_go(tmp_path: Path, autojump_clock) -> None:
    async with open_fabric(write_fabric(tmp_path / "f", prod={"drives": 4})) as fabric:
        (_, cart_x), _ = await two_jobs_on_two_cartridges(fabric)
        library = fabric.libraries[PVTL]
        async with reserve_drives(library, library) as (one, two):
            fabric.catalog.full = True  # the state dir is full: recording where it is fails
            with pytest.raises(OSError):
                await one.mount_for_read(cart_x)
            fabric.catalog.full = False
            assert one.barcode is None, "not left in the drive it failed in"
            await two.mount_for_read(cart_x)
            assert [d.number for d in library.drives() if d.barcode == cart_x] == [two.number]
