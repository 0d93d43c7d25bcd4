"""Backup, auxiliary copy and restore through a whole in-process fabric, on the virtual clock."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys

import pytest
import trio
from structlog.testing import capture_logs

from tests.bench import write_bench_fabric
from tests.expect import expected_files, restored_files
from tests.helpers import cached_bytes, open_fabric, page_cache_skip, write_fabric
from vtlfabric import errors
from vtlfabric.catalog import queries
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import faults, partials, restore, running
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import BackupFailed, run_backup
from vtlfabric.jobs.restore import RestoreError, RestoreRequest, run_restore
from vtlfabric.site.index import IndexFormatError
from vtlfabric.tape.image import TapeImage
from vtlfabric.tape.library import LibraryOffline
from vtlfabric.tape.stream import JobWriter
from vtlfabric.vocab import PENDING_STATES, CopyState

DR = "P/dr"


async def job(fabric: Fabric, job_id: int):
    return await fabric.catalog.call(queries.get_job, job_id)


ORPHAN = """
[[client]]
name = "IBMX"
seed = 33

  [[client.subclient]]
  name = "ALLUSR"
  content = ["LIB:X"]
"""


async def test_a_client_in_no_policy_is_a_bad_request_naming_it(tmp_path, autojump_clock):
    """It was a StopIteration inside the coroutine: 'internal error: RuntimeError'."""
    path = write_fabric(tmp_path / "f")
    prod = tmp_path / "f" / "prod.toml"
    prod.write_text(prod.read_text() + ORPHAN)  # appended: no anchor to miss
    async with open_fabric(path) as fabric:
        with pytest.raises(errors.NotFound, match="client 'IBMX' belongs to no storage policy") as info:
            await run_backup(fabric, "IBMX", None, "full")
        assert errors.exit_code(info.value) == errors.EXIT_BAD
        with pytest.raises(RestoreError, match="IBMX"):
            await run_restore(fabric, RestoreRequest("IBMX", tmp_path / "out"))


async def test_backup_copy_restore_at_dr_is_byte_exact(fabric, tmp_path, autojump_clock):
    full = await run_backup(fabric, "IBMA", "ALLUSR", "incremental")
    assert full.type == "full", "the first backup of a subclient runs as a full"
    await trio.sleep(3 * 3600)  # the workload changes hourly
    incr = await run_backup(fabric, "IBMA", "ALLUSR", "incremental")
    assert incr.type == "incremental" and 0 < incr.objects < full.objects
    ifs = await run_backup(fabric, "IBMA", "IFS", "full")

    result = await run_auxcopy(fabric)
    assert result.status == "completed" and result.jobs_copied == 3
    for job_id in (full.job_id, incr.job_id, ifs.job_id):
        assert (await job(fabric, job_id)).copies == {"P/primary": "available", DR: "available"}

    dest = tmp_path / "restore"
    restored = await run_restore(fabric, RestoreRequest("IBMA", dest, copy_id=DR, site="dr"))
    assert restored.jobs == (full.job_id, incr.job_id, ifs.job_id)
    gens = {"ALLUSR": (await job(fabric, incr.job_id)).generation, "IFS": (await job(fabric, ifs.job_id)).generation}
    assert restored_files(dest) == expected_files(fabric, "IBMA", gens)


async def test_what_drives_wrote_or_read_does_not_stay_in_the_page_cache(tmp_path, autojump_clock):
    """A drive streams past its data, and a restore hands its objects to the client:
    backups, copies and restores do not grow the page cache by every job (on a VM, fresh
    pages for them cost more than the writes). The bench's fabric, 64 MiB, so reads build
    the kernel's largest folios. One stream: with two, a read of one job could read ahead
    into a job the other stream copied already."""
    if why := page_cache_skip(tmp_path):
        pytest.skip(why)

    def cached_images(site: str) -> dict[str, int]:
        images = sorted(tmp_path.glob(f"state/sites/{site}/**/*.aws"))
        return {image.name: cached_bytes([image]) for image in images if image.stat().st_size > 2**20}

    async with open_fabric(write_bench_fabric(tmp_path, 64 * 2**20)) as fabric:
        for client in ("IBMA", "IBMB"):
            await run_backup(fabric, client, "ALLUSR", "full")
        written = cached_images("prod")  # the backups' images: synced, then given back
        result = await run_auxcopy(fabric)  # read from them, written and read back at DR
        copied, read = cached_images("dr"), cached_images("prod")
        done = await run_restore(fabric, RestoreRequest("IBMA", tmp_path / "out", copy_id=DR, site="dr"))
        restored = cached_images("dr")
    assert result.jobs_copied == 2 and result.bytes > 60 * 2**20
    # Labels and tapemarks outside any job's data may stay: a few KiB an image.
    for when, cached in (("backup", written), ("aux copy", copied), ("aux copy", read), ("restore", restored)):
        assert cached and all(n <= 64 * 1024 for n in cached.values()), f"after the {when}: {cached}"
    objects = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert done.bytes > 30 * 2**20 and len(objects) == done.objects
    assert cached_bytes(objects) == 0, "the restored objects are the client's: synced, and their pages given back"


async def test_a_library_lost_as_a_checkpoint_commits_cuts_nothing_the_catalog_counts(fabric, autojump_clock, monkeypatch):
    """The writer records a checkpoint as soon as the catalog has it: an abort right
    after (a library going offline, a cancelled copy) must not cut the image back before
    it. Releasing the pages in a trip of its own between the two once did."""
    done = await run_backup(fabric, "IBMA", "ALLUSR", "full")
    library = fabric.libraries["dr/DVTL"]
    async with library.drive() as drive:
        writer = JobWriter(library, drive, fabric.catalog, fabric.now, done.job_id, DR)  # no read-back: a resumed copy
        await writer.write(b"a" * 100_000)
        await writer.commit()
        checkpoint = queries.checkpoint

        def then_offline(*args, **kwargs):
            checkpoint(*args, **kwargs)
            library.offline = True

        monkeypatch.setattr(queries, "checkpoint", then_offline)
        await writer.write(b"b" * 100_000)
        with contextlib.suppress(LibraryOffline):
            await writer.commit()
        await writer.abort()  # as the receiver does on any error
        image, barcode = drive.image, drive.barcode
        library.offline = False
    [cartridge] = [c for c in await fabric.catalog.call(queries.cartridges, "dr/DVTL") if c.barcode == barcode]
    assert image.end_offset() == cartridge.eod, "the abort cut data the catalog had committed"


async def test_dr_restore_needs_nothing_from_production(fabric, tmp_path, autojump_clock):
    done = await run_backup(fabric, "IBMB", None, "full")
    await run_auxcopy(fabric)
    # Production is gone: its library is offline and its index cache deleted.
    await faults.inject(fabric, "library:prod/PVTL", "offline")
    for f in (fabric.mediaagents["prod"].index_cache.root).rglob("*.json"):
        f.unlink()
    dest = tmp_path / "dr-restore"
    await run_restore(fabric, RestoreRequest("IBMB", dest, job_id=done.job_id, copy_id=DR, site="dr"))
    gen = (await job(fabric, done.job_id)).generation
    assert restored_files(dest) == expected_files(fabric, "IBMB", {"ALLUSR": gen})
    with pytest.raises((IndexFormatError, LibraryOffline), match=r"no index|offline"):
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "prod", job_id=done.job_id))


@pytest.mark.parametrize("fault", ["library:prod/PVTL offline", "mediaagent:prod unreachable"])
async def test_a_backup_with_nothing_to_write_still_fails_on_a_dead_library(fabric, fault, autojump_clock):
    await run_backup(fabric, "IBMA", "ALLUSR", "full")
    await faults.inject(fabric, *fault.split())
    with pytest.raises(BackupFailed, match=r"offline|unreachable"):
        await run_backup(fabric, "IBMA", "ALLUSR", "incremental")  # the workload has not changed: no objects
    jobs = await fabric.catalog.call(queries.list_jobs)
    assert [j.status for j in jobs] == ["completed", "failed"]


@pytest.mark.parametrize("fabric_files", [{"timing": True}], indirect=True)
async def test_killed_and_failed_jobs_are_never_copied(fabric, autojump_clock):
    good = await run_backup(fabric, "IBMA", "ALLUSR", "full")
    await faults.inject(fabric, "client:IBMB", "fail-backup")
    with pytest.raises(BackupFailed):
        await run_backup(fabric, "IBMB", None, "full")

    async with trio.open_nursery() as nursery:
        killed_id = await nursery.start(_backup_expecting_failure, fabric)
        await trio.sleep(0.5)  # mid-job: on timed drives, the robot is still loading
        assert running.registry().stop("backup", killed_id, running.KILLED)

    jobs = {j.id: j for j in await fabric.catalog.call(queries.list_jobs)}
    assert sorted(j.status for j in jobs.values()) == ["completed", "failed", "killed"]
    result = await run_auxcopy(fabric)
    assert result.jobs_copied == 1
    jobs = {j.id: j for j in await fabric.catalog.call(queries.list_jobs)}
    for j in jobs.values():
        assert (j.copies.get(DR) == "available") == (j.id == good.job_id)
        assert (await fabric.catalog.call(queries.segments, j.id, DR) != []) == (j.id == good.job_id)


async def _backup_expecting_failure(fabric: Fabric, task_status=trio.TASK_STATUS_IGNORED) -> None:
    with pytest.raises(BackupFailed, match="killed"):
        await run_backup(fabric, "IBMB", None, "full", task_status=task_status)


async def test_an_available_job_is_never_copied_twice(fabric, autojump_clock):
    await run_backup(fabric, "IBMA", "ALLUSR", "full")
    await run_backup(fabric, "IBMB", None, "full")
    first = await run_auxcopy(fabric, streams=2)
    assert first.jobs_copied == 2
    carts_before = await fabric.catalog.call(queries.cartridges, "dr/DVTL")
    again = await run_auxcopy(fabric, streams=2)
    assert again.jobs_copied == 0 and again.bytes == 0
    assert await fabric.catalog.call(queries.cartridges, "dr/DVTL") == carts_before


async def test_a_job_spans_cartridges_and_restores(tmp_path, autojump_clock):
    path = write_fabric(tmp_path / "f", prod={"capacity": "512KiB"}, dr={"capacity": "384KiB"})
    async with open_fabric(path) as fabric:
        catalog = fabric.catalog
        done = await run_backup(fabric, "IBMB", None, "full")
        assert done.bytes > 512 * 1024
        assert len({s.barcode for s in await catalog.call(queries.segments, done.job_id, "P/primary")}) >= 2
        await run_auxcopy(fabric)
        assert len({s.barcode for s in await catalog.call(queries.segments, done.job_id, DR)}) >= 3
        dest = tmp_path / "out"
        await run_restore(fabric, RestoreRequest("IBMB", dest, job_id=done.job_id, copy_id=DR))
        gen = (await catalog.call(queries.get_job, done.job_id)).generation
        assert restored_files(dest) == expected_files(fabric, "IBMB", {"ALLUSR": gen})


async def test_a_cartridge_with_less_room_than_one_block_is_retired_not_fatal(tmp_path, autojump_clock):
    """Found by the crash soak: a cartridge left with room for a tiny block but not a
    whole one was claimed again and again, and every backup with data failed on it."""
    path = write_fabric(tmp_path / "f", prod={"capacity": "4MiB", "block_size": "32KiB"})
    async with open_fabric(path) as fabric:
        library = fabric.libraries["prod/PVTL"]
        first = await run_backup(fabric, "IBMA", "IFS", "full")
        [tight] = {s.barcode for s in await fabric.catalog.call(queries.segments, first.job_id, "P/primary")}
        image = TapeImage.open(library.image_path(tight), library.spec.capacity)
        image.begin_file()  # another writer's file, filling the cartridge to ~16 KiB short of its end
        while library.spec.capacity - image.end_offset() > 17 * 1024:
            image.write_block(b"x" * 1024)
        image.end_file()
        await fabric.catalog.call(queries.set_cartridge_state, tight, "appendable", image.flush())
        image.close()

        done = await run_backup(fabric, "IBMB", None, "full")
        barcodes = {s.barcode for s in await fabric.catalog.call(queries.segments, done.job_id, "P/primary")}
        assert tight not in barcodes
        states = {c.barcode: c.state for c in await fabric.catalog.call(queries.cartridges, "prod/PVTL")}
        assert states[tight] == "full"
        dest = tmp_path / "out"
        await run_restore(fabric, RestoreRequest("IBMB", dest, job_id=done.job_id))
        gen = (await fabric.catalog.call(queries.get_job, done.job_id)).generation
        assert restored_files(dest) == expected_files(fabric, "IBMB", {"ALLUSR": gen})


async def test_nothing_readable_crosses_the_wan(fabric, autojump_clock):
    carried = bytearray()
    fabric.links["wan"].add_tap(lambda direction, data: carried.extend(data))
    done = await run_backup(fabric, "IBMB", None, "full")
    await run_auxcopy(fabric)
    assert len(carried) > done.bytes
    workload = fabric.workloads["IBMB"]
    gen = (await job(fabric, done.job_id)).generation
    wire = bytes(carried)
    for obj in workload.objects("ALLUSR", gen):
        data = workload.content(obj)
        for start in range(0, len(data) - 32, 4096):
            assert data[start : start + 32] not in wire
    for text in (b"QSYS.LIB", b"ALLUSR", b"IBMB"):
        assert text not in wire, "not even the index's names"


async def test_a_flipped_byte_on_the_wan_fails_the_attempt_never_the_data(fabric, tmp_path, autojump_clock):
    done = await run_backup(fabric, "IBMB", None, "full")
    link = fabric.links["wan"]
    carried = [0]

    def corrupt_mid_job(direction: str, data: bytes) -> None:
        # One flip in the handshake, one in the middle of the job's data.
        carried[0] += len(data)
        if carried[0] > done.bytes // 2 and link.stats.corrupted == 1:
            link.corrupt_next(1)

    link.add_tap(corrupt_mid_job)
    link.corrupt_next(1)
    result = await run_auxcopy(fabric)
    assert result.status == "completed" and result.jobs_copied == 1
    assert link.stats.corrupted == 2
    dest = tmp_path / "out"
    await run_restore(fabric, RestoreRequest("IBMB", dest, job_id=done.job_id, copy_id=DR))
    gen = (await job(fabric, done.job_id)).generation
    assert restored_files(dest) == expected_files(fabric, "IBMB", {"ALLUSR": gen})


async def test_a_job_that_never_gets_through_clean_is_never_available(fabric, tmp_path, autojump_clock):
    done = await run_backup(fabric, "IBMB", None, "full")
    fabric.links["wan"].corrupt_next(10_000)
    result = await run_auxcopy(fabric)
    assert result.status == "failed" and result.jobs_copied == 0
    assert (await job(fabric, done.job_id)).copies[DR] in (CopyState.TO_BE_COPIED, CopyState.PARTIALLY_COPIED)
    assert not list(fabric.mediaagents["dr"].disk_library.root.rglob("*.json"))
    with pytest.raises(RestoreError, match="not available"):
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "out", job_id=done.job_id, copy_id=DR))


async def test_a_partition_interrupts_and_the_next_run_resumes(tmp_path, autojump_clock):
    path = write_fabric(tmp_path / "f", chunk="64KiB")
    async with open_fabric(path) as fabric:
        catalog = fabric.catalog
        done = await run_backup(fabric, "IBMB", None, "full")
        link = fabric.links["wan"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_auxcopy, fabric)
            while True:  # partition once part of the job has landed at DR
                await trio.sleep(0.001)
                row = await catalog.call(queries.job_copy, done.job_id, DR)
                if row is not None and row.bytes_done > 0:
                    break
            link.partition("both")
        row = await catalog.call(queries.job_copy, done.job_id, DR)
        assert row.state == CopyState.PARTIALLY_COPIED and 0 < row.bytes_done < done.bytes
        link.heal()
        sent_before = link.stats.bytes_a_to_b
        result = await run_auxcopy(fabric)
        assert result.jobs_copied == 1
        assert link.stats.bytes_a_to_b - sent_before < done.bytes, "it resumed instead of starting over"
        dest = tmp_path / "out"
        await run_restore(fabric, RestoreRequest("IBMB", dest, job_id=done.job_id, copy_id=DR))
        gen = (await catalog.call(queries.get_job, done.job_id)).generation
        assert restored_files(dest) == expected_files(fabric, "IBMB", {"ALLUSR": gen})


async def test_restore_reports_the_object_that_does_not_verify(fabric, tmp_path, autojump_clock):
    done = await run_backup(fabric, "IBMA", "IFS", "full")
    await run_auxcopy(fabric)
    index_file = next((fabric.mediaagents["dr"].disk_library.root).rglob(f"{done.job_id}.json"))
    text = index_file.read_text()
    index = __import__("json").loads(text)
    victim = index["entries"][1]
    victim["sha256"] = "0" * 64
    index_file.write_text(__import__("json").dumps(index))
    with pytest.raises(RestoreError, match=victim["path"].lstrip("/").split("/")[-1]):
        await run_restore(fabric, RestoreRequest("IBMA", tmp_path / "out", job_id=done.job_id, copy_id=DR))


async def test_a_restore_that_fails_writing_leaves_no_part_of_an_object(fabric, tmp_path, monkeypatch, autojump_clock):
    """The disk fills (here: the third object's sync fails). The objects before it are
    whole, and the third is not there at all: not under its name, nor half-written
    under another."""
    done = await run_backup(fabric, "IBMB", "ALLUSR", "full")
    synced = []

    def sync_until_full(fd: int) -> None:
        synced.append(fd)
        if len(synced) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(restore, "SYNC_FROM", 0)  # every object durable, so every one syncs
    monkeypatch.setattr(restore, "sync_data", sync_until_full)
    dest = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        await run_restore(fabric, RestoreRequest("IBMB", dest, job_id=done.job_id))
    expected = expected_files(fabric, "IBMB", {"ALLUSR": (await job(fabric, done.job_id)).generation})
    found = {p.relative_to(dest): p for p in dest.rglob("*") if not p.is_dir()}
    assert len(found) == 2 and all(p.read_bytes() == expected[name] for name, p in found.items())


async def test_a_later_job_that_fails_writing_leaves_the_earlier_version_whole(fabric, tmp_path, monkeypatch, autojump_clock):
    full = await run_backup(fabric, "IBMA", "ALLUSR", "full")
    await trio.sleep(3 * 3600)  # the workload changes hourly
    incr = await run_backup(fabric, "IBMA", "ALLUSR", "incremental")
    assert incr.objects, "the incremental rewrites objects the full restored"
    synced = []

    def sync_until_full(fd: int) -> None:
        synced.append(fd)
        if len(synced) > full.objects:  # the incremental's first object
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(restore, "SYNC_FROM", 0)
    monkeypatch.setattr(restore, "sync_data", sync_until_full)
    dest = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        await run_restore(fabric, RestoreRequest("IBMA", dest))  # the latest point: the full, then the incremental
    assert restored_files(dest) == expected_files(fabric, "IBMA", {"ALLUSR": (await job(fabric, full.job_id)).generation})


def test_a_restored_object_is_never_written_through_a_link_planted_beside_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    target = tmp_path / "dest" / "OBJ.FILE"
    target.parent.mkdir()
    partials.partial_name(target).symlink_to(victim)
    restore._put(target, [memoryview(b"restored")], durable=True)
    assert victim.read_bytes() == b"keep"
    assert [p.name for p in target.parent.iterdir()] == ["OBJ.FILE"] and target.read_bytes() == b"restored"


async def test_a_restore_removes_the_partial_files_killed_restores_left_and_no_running_one_s(fabric, tmp_path, autojump_clock):
    done = await run_backup(fabric, "IBMA", "ALLUSR", "full")
    expected = expected_files(fabric, "IBMA", {"ALLUSR": (await job(fabric, done.job_id)).generation})
    dest = tmp_path / "out"
    directory = dest / next(iter(expected)).parent
    directory.mkdir(parents=True)
    killed = directory / f".{_a_gone_pid()}-7{partials.SUFFIX}"
    older = directory / f".8{partials.SUFFIX}"  # the release before named no process
    alive = directory / f".{os.getppid()}-9{partials.SUFFIX}"  # a restore in a process still running
    for path in (killed, older, alive):
        path.write_bytes(b"half an object")
    with capture_logs() as logs:
        await run_restore(fabric, RestoreRequest("IBMA", dest, job_id=done.job_id))
    assert not killed.exists() and not older.exists()
    assert {e["path"] for e in logs if e["event"] == "restore.partial_removed"} == {str(killed), str(older)}
    assert alive.read_bytes() == b"half an object"
    alive.unlink()
    assert restored_files(dest) == expected


def test_only_files_named_as_a_gone_process_s_partial_are_removed(tmp_path):
    gone = _a_gone_pid()
    stale = tmp_path / f".{gone}-1{partials.SUFFIX}"
    kept = [f"{gone}-1{partials.SUFFIX}", f".{gone}-x{partials.SUFFIX}", f".{gone}-1{partials.SUFFIX}.txt"]
    kept += [f".{os.getpid()}-1{partials.SUFFIX}"]  # this process's: another thread is writing it
    for name in [stale.name, *kept]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / f".{gone}-2{partials.SUFFIX}").mkdir()  # not a file restore wrote
    assert partials.remove_stale(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, f".{gone}-2{partials.SUFFIX}"])
    assert partials.remove_stale(tmp_path / "none") == []


def _a_gone_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    return gone.pid


async def test_concurrent_backups_never_share_a_cartridge(fabric, tmp_path, autojump_clock):
    async with trio.open_nursery() as nursery:
        for client, sub in (("IBMA", "ALLUSR"), ("IBMA", "IFS"), ("IBMB", "ALLUSR")):
            nursery.start_soon(run_backup, fabric, client, sub, "full")
    files = set()
    for j in await fabric.catalog.call(queries.list_jobs):
        for seg in await fabric.catalog.call(queries.segments, j.id, "P/primary"):
            assert (seg.barcode, seg.file_no) not in files
            files.add((seg.barcode, seg.file_no))
    for client in ("IBMA", "IBMB"):
        dest = tmp_path / client
        await run_restore(fabric, RestoreRequest(client, dest))
        gens = {j.subclient: j.generation for j in await fabric.catalog.call(queries.list_jobs, client)}
        assert restored_files(dest) == expected_files(fabric, client, gens)


def _rot(raw: bytearray) -> bytes:
    raw[len(raw) // 2] ^= 0x5A  # a bit flipped in the middle of the job's data
    return bytes(raw)


def _scramble_headers(raw: bytearray) -> bytes:
    for i in range(len(raw) // 3, len(raw) // 3 + 4096):  # block headers and data alike
        raw[i] ^= 0xFF
    return bytes(raw)


@pytest.mark.parametrize(
    "damage, reason", [(_rot, "digest"), (_scramble_headers, ""), (lambda raw: bytes(raw[: len(raw) // 2]), "")]
)
async def test_a_damaged_source_cartridge_fails_the_copy_and_lands_nothing(fabric, damage, reason, autojump_clock):
    done = await run_backup(fabric, "IBMB", None, "full")
    seg = (await fabric.catalog.call(queries.segments, done.job_id, "P/primary"))[0]
    image = fabric.libraries["prod/PVTL"].image_path(seg.barcode)
    image.write_bytes(damage(bytearray(image.read_bytes())))
    result = await run_auxcopy(fabric)
    assert result.status == "failed" and reason in result.copies[0].failed[0].reason
    assert (await job(fabric, done.job_id)).copies[DR] in PENDING_STATES
    assert not list(fabric.mediaagents["dr"].disk_library.root.rglob("*.json"))


async def test_latest_at_dr_is_the_latest_point_dr_holds(fabric, tmp_path, autojump_clock):
    full = await run_backup(fabric, "IBMB", None, "full")
    await run_auxcopy(fabric)
    await trio.sleep(2 * 3600)
    incr = await run_backup(fabric, "IBMB", None, "incremental")  # not yet at DR
    at_dr = await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "dr", copy_id=DR))
    at_prod = await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "prod"))
    assert at_dr.jobs == (full.job_id,) and at_prod.jobs == (full.job_id, incr.job_id)
    gen = {j.id: j.generation for j in await fabric.catalog.call(queries.list_jobs)}
    assert restored_files(tmp_path / "dr") == expected_files(fabric, "IBMB", {"ALLUSR": gen[full.job_id]})
    assert restored_files(tmp_path / "prod") == expected_files(fabric, "IBMB", {"ALLUSR": gen[incr.job_id]})


async def test_data_verification_reads_every_job_back_and_names_a_damaged_one(fabric, autojump_clock):
    from vtlfabric.jobs.verify import VerifyFailed, run_verify

    first = await run_backup(fabric, "IBMB", None, "full")
    await run_backup(fabric, "IBMA", "IFS", "full")
    await run_auxcopy(fabric)
    done = await run_verify(fabric)
    assert done.jobs_verified == 4 and all(c.status == "completed" for c in done.copies)

    [seg] = [s for s in await fabric.catalog.call(queries.segments, first.job_id, "P/dr")][:1]
    image = fabric.libraries["dr/DVTL"].image_path(seg.barcode)
    data = bytearray(image.read_bytes())
    data[-70_000] ^= 0xFF  # one flipped byte inside the last data file on that DR cartridge
    image.write_bytes(bytes(data))
    on_it = [
        s
        for j in await fabric.catalog.call(queries.list_jobs)
        for s in await fabric.catalog.call(queries.segments, j.id, "P/dr")
        if s.barcode == seg.barcode
    ]
    damaged = max(on_it, key=lambda s: s.file_no).job_id
    with pytest.raises(VerifyFailed, match=rf"^1 job copy\(ies\) failed verification: job {damaged} on P/dr"):
        await run_verify(fabric, "P/dr")
    assert (await run_verify(fabric, "P/primary")).jobs_verified == 2, "production is fine"
    healthy = next(j for j in await fabric.catalog.call(queries.list_jobs) if j.copies[DR] == CopyState.AVAILABLE)
    [held] = await fabric.catalog.call(queries.segments, healthy.id, DR)
    await faults.inject(fabric, f"cartridge:{held.barcode}", "fail")
    with pytest.raises(VerifyFailed, match="has failed"):  # an inoperative copy is read too: failed media is the point
        await run_verify(fabric, "P/dr")
