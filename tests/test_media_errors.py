"""Media errors and healing, through a whole in-process fabric on the virtual clock.

A block that cannot be read, a write that fails, a cartridge cut short: each test ends
with every valid job available on the copy, or marked there with why (and copied by
the next run where the copy can get it from its source).
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio
from structlog.testing import capture_logs

from tests.expect import expected_files, restored_files
from tests.helpers import edit_config, open_fabric, write_fabric
from vtlfabric import cli, cliformat
from vtlfabric.catalog import queries
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import faults
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.restore import RestoreError, RestoreRequest, run_restore
from vtlfabric.jobs.verify import VerifyFailed, run_verify
from vtlfabric.service.commands import Commands
from vtlfabric.service.operations import Operations
from vtlfabric.site.index import JobIndex
from vtlfabric.site.mediaagent import MediaAgent
from vtlfabric.tape import stream
from vtlfabric.tape.blockfaults import BlockFaults
from vtlfabric.tape.image import TapeImage
from vtlfabric.tape.library import MediaReadError
from vtlfabric.tape.stream import coverage_problem
from vtlfabric.vocab import CopyState

PRIMARY, DR = "P/primary", "P/dr"


async def segments(fabric: Fabric, job_id: int, copy_id: str):
    return await fabric.catalog.call(queries.segments, job_id, copy_id)


async def job_copy(fabric: Fabric, job_id: int, copy_id: str):
    return await fabric.catalog.call(queries.job_copy, job_id, copy_id)


async def copy_status(ctl: Commands, copy_id: str) -> dict:
    return next(c for c in await ctl.cmd_copies({}) if c["id"] == copy_id)


async def cartridge_states(fabric: Fabric, library: str) -> dict[str, str]:
    return {c.barcode: c.state for c in await fabric.catalog.call(queries.cartridges, library)}


def data_offset(fabric: Fabric, library: str, barcode: str, file_no: int) -> int:
    """Where tape file ``file_no``'s first data block starts in the cartridge's image."""
    lib = fabric.libraries[library]
    with TapeImage.open(lib.image_path(barcode), lib.spec.capacity) as image:
        return image.data_files()[file_no - 1].data_offset


async def restore_latest_is_exact(fabric: Fabric, client: str, dest: Path, copy_id: str = DR) -> tuple[int, ...]:
    """Restore the client's latest point at the copy, and check it is byte-exact."""
    result = await run_restore(fabric, RestoreRequest(client, dest, copy_id=copy_id))
    jobs = {j.id: j for j in await fabric.catalog.call(queries.list_jobs, client)}
    generations = {jobs[i].subclient: jobs[i].generation for i in result.jobs}
    assert restored_files(dest) == expected_files(fabric, client, generations)
    return result.jobs


async def generation(fabric: Fabric, job_id: int) -> int:
    return (await fabric.catalog.call(queries.get_job, job_id)).generation


async def with_ctl(fabric: Fabric, test) -> None:
    async with trio.open_nursery() as nursery:
        await test(Commands(fabric, Operations(nursery), trio.current_time()))
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- read errors at the source


@pytest.mark.parametrize("place", ["file.block", "offset"])
async def test_a_read_error_at_a_source_block_skips_that_job_until_the_fault_clears(tmp_path, place, autojump_clock):
    path = write_fabric(tmp_path / "f", streams=1)
    async with open_fabric(path) as fabric:

        async def test(ctl: Commands) -> None:
            done = [await run_backup(fabric, c, s, "full") for c, s in (("IBMA", "ALLUSR"), ("IBMA", "IFS"), ("IBMB", "ALLUSR"))]
            victim = done[1].job_id
            [seg] = await segments(fabric, victim, PRIMARY)
            first = data_offset(fabric, "prod/PVTL", seg.barcode, seg.file_no)
            where = f"{seg.file_no}.1" if place == "file.block" else str(first + 100)
            target = f"cartridge:{seg.barcode}"
            with capture_logs() as logs:
                set_fault = await ctl.cmd_fault({"target": target, "action": "read-error", "where": where})
                result = await run_auxcopy(fabric)
            assert set_fault["fault"].startswith("read-error at ")
            assert result.status == "failed" and result.jobs_copied == 2, "skip (the default): the stream goes on"
            [failure] = result.copies[0].failed
            assert failure.job_id == victim and f"cannot read file {seg.file_no} block 1" in failure.reason
            fired = [e for e in logs if e["event"] == "fault.fired"]
            assert fired and {(e["action"], e["job_id"], e["block"]) for e in fired} == {("read-error", victim, 1)}
            assert not [e for e in logs if e["event"] == "auxcopy.job_retry"], "a read error is not retried in the run"

            jobs = {j["id"]: j for j in await ctl.cmd_jobs({})}
            assert jobs[victim]["copies"] == {PRIMARY: "available", DR: "partially_copied"}, "the source keeps it"
            assert jobs[victim]["reasons"][DR] == failure.reason and failure.reason.startswith(f"cannot read it from {PRIMARY}: ")
            assert all(jobs[d.job_id]["copies"][DR] == "available" for d in done if d.job_id != victim)
            text = cliformat.render("jobs", list(jobs.values()))
            assert f"job {victim} on {DR}: partially_copied: cannot read it from {PRIMARY}" in text

            assert (await run_auxcopy(fabric)).jobs_copied == 0, "the fault holds until cleared"
            with capture_logs() as logs:
                cleared = await ctl.cmd_fault({"target": target, "action": "clear"})
            assert cleared["fault"] == f"cleared {set_fault['fault'].removesuffix(f' on {target}')} on {target}"
            [event] = [e for e in logs if e["event"] == "fault.healed"]
            assert event["target"] == target and event["cleared"] == [set_fault["fault"].removesuffix(f" on {target}")]
            again = await run_auxcopy(fabric)
            assert again.status == "completed" and again.jobs_copied == 1
            assert (await job_copy(fabric, victim, DR)).state == CopyState.AVAILABLE
            for client in ("IBMA", "IBMB"):
                await restore_latest_is_exact(fabric, client, tmp_path / client)

        await with_ctl(fabric, test)


async def test_on_read_error_stop_stops_the_stream_and_the_next_run_resumes(tmp_path, autojump_clock):
    path = write_fabric(tmp_path / "f", streams=1)
    edit_config(path, "streams = 1", 'streams = 1\non_read_error = "stop"')
    async with open_fabric(path) as fabric:
        done = [await run_backup(fabric, c, s, "full") for c, s in (("IBMB", "ALLUSR"), ("IBMA", "ALLUSR"), ("IBMA", "IFS"))]
        victim = done[0]  # the oldest: the stream's first job
        [seg] = await segments(fabric, victim.job_id, PRIMARY)
        await faults.inject(fabric, f"cartridge:{seg.barcode}", "read-error", f"{seg.file_no}.12")
        result = await run_auxcopy(fabric)
        assert result.status == "failed" and result.jobs_copied == 0
        assert "stream 1 stopped at job" in result.copies[0].reason
        row = await job_copy(fabric, victim.job_id, DR)
        assert row.state == CopyState.PARTIALLY_COPIED and 0 < row.bytes_done < victim.bytes, "what was read is kept"
        assert "cannot read file" in row.reason
        for d in done[1:]:
            assert (await job_copy(fabric, d.job_id, DR)).state == CopyState.TO_BE_COPIED, "the stopped stream took no more"

        await faults.inject(fabric, f"cartridge:{seg.barcode}", "clear")
        again = await run_auxcopy(fabric)
        assert again.status == "completed" and again.jobs_copied == 3
        assert again.bytes == sum(d.bytes for d in done) - row.bytes_done, "it resumed at its last checkpoint"
        for client in ("IBMA", "IBMB"):
            await restore_latest_is_exact(fabric, client, tmp_path / client)


async def test_a_damaged_source_cartridge_fails_only_the_jobs_on_it(fabric, tmp_path, autojump_clock):
    async with trio.open_nursery() as nursery:  # at once, so each writes its own cartridge
        for client in ("IBMA", "IBMB"):
            nursery.start_soon(run_backup, fabric, client, "ALLUSR", "full")
    a, b = sorted(await fabric.catalog.call(queries.list_jobs), key=lambda j: j.client)
    [seg_a], [seg_b] = await segments(fabric, a.id, PRIMARY), await segments(fabric, b.id, PRIMARY)
    assert seg_a.barcode != seg_b.barcode
    image = fabric.libraries["prod/PVTL"].image_path(seg_a.barcode)
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])  # cut in the middle of IBMA's job

    async def test(ctl: Commands) -> None:
        result = await run_auxcopy(fabric)
        assert result.status == "failed" and [f.job_id for f in result.copies[0].failed] == [a.id]
        assert (await job_copy(fabric, b.id, DR)).state == CopyState.AVAILABLE, "the other cartridge's job is copied"
        at_dr, at_source = await job_copy(fabric, a.id, DR), await job_copy(fabric, a.id, PRIMARY)
        assert at_dr.state == CopyState.PARTIALLY_COPIED and at_dr.reason.startswith(
            f"cannot read it from {PRIMARY}: job {a.id}: "
        )
        assert at_source.state == CopyState.DAMAGED and at_source.reason.startswith(f"aux copy to {DR}: job {a.id}: "), (
            "what was read shows damage"
        )
        primary = await copy_status(ctl, PRIMARY)
        assert primary["damaged"] == [f"job {a.id}: {at_source.reason}"]
        assert primary["heal"] == "the primary has no source to heal from"
        assert "DAMAGED: 1 job(s)" in cliformat.render("copies", await ctl.cmd_copies({}))

        assert (await run_auxcopy(fabric)).jobs_copied == 0, "nothing is copied from damaged data"
        assert (await job_copy(fabric, a.id, DR)).reason == at_dr.reason, "it stays marked, with why"
        await restore_latest_is_exact(fabric, "IBMB", tmp_path / "b")
        with pytest.raises(RestoreError, match=rf"no valid full backup available on copy {PRIMARY} \(job {a.id} .*damaged"):
            await run_restore(fabric, RestoreRequest("IBMA", tmp_path / "a", copy_id=PRIMARY))

    await with_ctl(fabric, test)


# ---------------------------------------------------------------- write errors


async def test_a_write_error_retires_the_cartridge_and_the_job_goes_on_from_its_checkpoint(tmp_path, monkeypatch, autojump_clock):
    # 32 KiB blocks, and chunks of whole blocks up to 80 KiB: two blocks a checkpoint. One
    # block a write, so the failing write (the 6th) leaves one block written since the last one.
    path = write_fabric(tmp_path / "f", chunk="80KiB")
    monkeypatch.setattr(stream, "WRITE_BATCH", 32 * 1024)
    async with open_fabric(path) as fabric:
        done = await run_backup(fabric, "IBMB", None, "full")
        dr_faults = fabric.libraries["dr/DVTL"].block_faults
        take_write, writes = BlockFaults.take_write, []

        def midway(self: BlockFaults, barcode: str) -> bool:  # as if `write-error` were set just before the 6th write
            if self is dr_faults:
                writes.append(barcode)
                if len(writes) == 6:
                    self.add_write(barcode)
            return take_write(self, barcode)

        monkeypatch.setattr(BlockFaults, "take_write", midway)
        with capture_logs() as logs:
            result = await run_auxcopy(fabric)
        assert result.status == "completed" and result.jobs_copied == 1
        assert [e["action"] for e in logs if e["event"] == "fault.fired"] == ["write-error"]
        assert not [e for e in logs if e["event"] == "auxcopy.job_retry"], "within the same attempt"
        assert (await cartridge_states(fabric, "dr/DVTL"))["DR0001L8"] == "bad"
        segs = await segments(fabric, done.job_id, DR)
        assert writes[:6] == ["DR0001L8"] * 6
        assert segs[0].barcode == "DR0001L8" and segs[0].length == 4 * 32 * 1024, "what was committed there stays"
        assert [e["bytes"] for e in logs if e["event"] == "job.rewriting"] == [32 * 1024], "the block since the checkpoint"
        assert "DR0001L8" not in {s.barcode for s in segs[1:]} and coverage_problem(segs, done.bytes) == ""
        await restore_latest_is_exact(fabric, "IBMB", tmp_path / "b")
        assert (await run_verify(fabric, DR)).jobs_verified == 1

        # A backup meets one too: its cartridge is retired, the job lands on another.
        [on_primary] = {s.barcode for s in await segments(fabric, done.job_id, PRIMARY)}
        await faults.inject(fabric, f"cartridge:{on_primary}", "write-error")
        ifs = await run_backup(fabric, "IBMA", "IFS", "full")
        assert (await cartridge_states(fabric, "prod/PVTL"))[on_primary] == "bad"
        assert {s.barcode for s in await segments(fabric, ifs.job_id, PRIMARY) if s.length} - {on_primary}
        assert (await run_auxcopy(fabric)).jobs_copied == 1
        assert "DR0001L8" not in {s.barcode for s in await segments(fabric, ifs.job_id, DR)}, "a bad cartridge is never claimed"
        await restore_latest_is_exact(fabric, "IBMA", tmp_path / "a")
        await restore_latest_is_exact(fabric, "IBMA", tmp_path / "a-prod", PRIMARY)
        assert (await run_verify(fabric)).jobs_verified == 4


# ---------------------------------------------------------------- damage found by reading, and healing


async def test_a_dr_cartridge_cut_short_is_found_marked_and_healed(tmp_path, autojump_clock):
    """The bug as a user met it: a DR cartridge cut short while the daemon was down. Verify
    failed, but the job stayed available at DR, `ctl copies` said ok, the next aux copy
    copied nothing, and a DR restore of the latest point failed."""
    path = write_fabric(tmp_path / "f")
    async with open_fabric(path) as fabric:
        full = await run_backup(fabric, "IBMB", None, "full")
        await run_auxcopy(fabric)
        await trio.sleep(2 * 3600)
        incr = await run_backup(fabric, "IBMB", None, "incremental")
        await run_auxcopy(fabric)
        [seg] = await segments(fabric, incr.job_id, DR)
        cut = data_offset(fabric, "dr/DVTL", seg.barcode, seg.file_no) + 1000
    image = fabric.libraries["dr/DVTL"].image_path(seg.barcode)
    with open(image, "r+b") as f:  # the daemon is down
        f.truncate(cut)

    async with open_fabric(path) as fabric:

        async def test(ctl: Commands) -> None:
            assert (await cartridge_states(fabric, "dr/DVTL"))[seg.barcode] == "bad", "never appended to again"
            with pytest.raises(VerifyFailed, match=rf"job {incr.job_id} on {DR}: cannot read it back.*marked damaged on {DR}"):
                await run_verify(fabric)
            row = await job_copy(fabric, incr.job_id, DR)
            assert row.state == CopyState.DAMAGED and row.reason.startswith("verify: cannot read it back")
            assert (await job_copy(fabric, full.job_id, DR)).state == CopyState.AVAILABLE
            assert (await job_copy(fabric, incr.job_id, PRIMARY)).state == CopyState.AVAILABLE, "only that copy's"

            dr = await copy_status(ctl, DR)
            assert dr["states"] == {"available": 1, "damaged": 1} and dr["to_copy"] == 1
            assert dr["damaged"] == [f"job {incr.job_id}: {row.reason}"] and "again from P/primary" in dr["heal"]
            assert "DAMAGED: 1 job(s), the next aux copy copies them again" in cliformat.render(
                "copies", await ctl.cmd_copies({})
            )
            jobs = {j["id"]: j for j in await ctl.cmd_jobs({})}
            assert jobs[incr.job_id]["reasons"][DR] == row.reason and jobs[full.job_id]["reasons"][DR] == "copied"

            older = await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "older", copy_id=DR))
            assert older.jobs == (full.job_id,) and older.newer_jobs_missing == (
                f"job {incr.job_id} (ALLUSR incremental): damaged",
            )
            assert restored_files(tmp_path / "older") == expected_files(
                fabric, "IBMB", {"ALLUSR": await generation(fabric, full.job_id)}
            )
            with pytest.raises(RestoreError, match=rf"not available on copy {DR} \(state: damaged: verify: "):
                await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "x", job_id=incr.job_id, copy_id=DR))

            healed = await run_auxcopy(fabric)
            assert healed.status == "completed" and healed.jobs_copied == 1
            assert (await job_copy(fabric, incr.job_id, DR)).state == CopyState.AVAILABLE
            assert seg.barcode not in {s.barcode for s in await segments(fabric, incr.job_id, DR)}
            assert await restore_latest_is_exact(fabric, "IBMB", tmp_path / "healed") == (full.job_id, incr.job_id)
            assert (await run_verify(fabric)).jobs_verified == 4
            assert (await copy_status(ctl, DR))["damaged"] == []

        await with_ctl(fabric, test)


async def test_a_restore_that_finds_damage_marks_it_and_without_heal_a_recopy_mends_it(tmp_path, autojump_clock):
    path = write_fabric(tmp_path / "f")
    edit_config(path, "streams = 2", "streams = 2\nheal = false")
    async with open_fabric(path) as fabric:

        async def test(ctl: Commands) -> None:
            done = await run_backup(fabric, "IBMB", None, "full")
            await run_auxcopy(fabric)
            [barcode] = {s.barcode for s in await segments(fabric, done.job_id, DR)}
            await faults.inject(fabric, f"cartridge:{barcode}", "read-error")  # every block
            with pytest.raises(MediaReadError):
                await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "x", copy_id=DR))
            row = await job_copy(fabric, done.job_id, DR)
            assert row.state == CopyState.DAMAGED and row.reason.startswith(f"restore: cartridge {barcode}")
            dr = await copy_status(ctl, DR)
            assert dr["heal"] == "heal is off: recopy them by hand" and dr["to_copy"] == 0

            assert (await run_auxcopy(fabric)).jobs_copied == 0, "heal = false: it waits for the operator"
            await faults.inject(fabric, f"cartridge:{barcode}", "clear")
            assert await fabric.catalog.call(queries.manual_selection, done.job_id, DR, "recopy", "tester", fabric.now())
            assert (await run_auxcopy(fabric)).jobs_copied == 1
            await restore_latest_is_exact(fabric, "IBMB", tmp_path / "b")

        await with_ctl(fabric, test)


async def test_damage_on_the_primary_is_only_marked_and_flagged(fabric, tmp_path, autojump_clock):
    full = await run_backup(fabric, "IBMB", None, "full")
    await run_auxcopy(fabric)
    await trio.sleep(2 * 3600)
    incr = await run_backup(fabric, "IBMB", None, "incremental")
    [seg] = await segments(fabric, incr.job_id, PRIMARY)
    image = fabric.libraries["prod/PVTL"].image_path(seg.barcode)
    raw = bytearray(image.read_bytes())
    raw[data_offset(fabric, "prod/PVTL", seg.barcode, seg.file_no) + 100] ^= 0x5A  # a bit flipped in its data
    image.write_bytes(bytes(raw))

    async def test(ctl: Commands) -> None:
        with pytest.raises(VerifyFailed, match=rf"job {incr.job_id} on {PRIMARY}: .*digest.*no source to heal from"):
            await run_verify(fabric, PRIMARY)
        assert (await job_copy(fabric, incr.job_id, PRIMARY)).state == CopyState.DAMAGED
        primary = await copy_status(ctl, PRIMARY)
        assert len(primary["damaged"]) == 1 and primary["to_copy"] == 0
        assert (await run_auxcopy(fabric)).jobs_copied == 0, "damaged data is never copied"
        assert (await fabric.catalog.call(queries.get_job, incr.job_id)).copies == {PRIMARY: "damaged"}
        latest = await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "p", copy_id=PRIMARY))
        assert latest.jobs == (full.job_id,) and "damaged" in latest.newer_jobs_missing[0]
        assert restored_files(tmp_path / "p") == expected_files(fabric, "IBMB", {"ALLUSR": await generation(fabric, full.job_id)})
        await restore_latest_is_exact(fabric, "IBMB", tmp_path / "dr")

    await with_ctl(fabric, test)


async def test_a_bit_flipped_in_the_source_is_blamed_on_the_source_not_the_copy(fabric, tmp_path, autojump_clock):
    """Only the receiver hashes a job as it copies it; when that does not match, the
    sender hashes its source, so rot there marks the source damaged instead of retrying."""
    full = await run_backup(fabric, "IBMB", None, "full")
    [seg] = await segments(fabric, full.job_id, PRIMARY)
    image = fabric.libraries["prod/PVTL"].image_path(seg.barcode)
    raw = bytearray(image.read_bytes())
    raw[data_offset(fabric, "prod/PVTL", seg.barcode, seg.file_no) + 100] ^= 0x5A
    image.write_bytes(bytes(raw))

    with capture_logs() as logs:
        result = await run_auxcopy(fabric)
    assert result.status == "failed" and [f.job_id for f in result.copies[0].failed] == [full.job_id]
    assert not [e for e in logs if e["event"] == "auxcopy.job_retry"], "the same media would read the same"
    at_source, at_dr = await job_copy(fabric, full.job_id, PRIMARY), await job_copy(fabric, full.job_id, DR)
    assert at_source.state == CopyState.DAMAGED
    assert at_source.reason == f"aux copy to {DR}: job {full.job_id}: the data does not match the backup's digest"
    assert at_dr.state != CopyState.AVAILABLE and at_dr.reason.startswith(f"cannot read it from {PRIMARY}: ")
    assert (await run_auxcopy(fabric)).jobs_copied == 0, "damaged data is never copied"


async def test_a_restore_hashes_the_stream_when_its_objects_do_not_cover_it(fabric, tmp_path, monkeypatch, autojump_clock):
    """Objects back to back over the whole stream, each matching its digest, vouch for
    the stream. An index that leaves bytes outside every object (here: it lacks the
    first one) has the stream's own digest checked, so damage there is still found."""
    full = await run_backup(fabric, "IBMB", None, "full")
    index_for = MediaAgent.index_for

    async def without_first(self: MediaAgent, job_id: int, copy_id: str, is_primary: bool) -> JobIndex:
        index = await index_for(self, job_id, copy_id, is_primary)
        return attrs.evolve(index, entries=tuple(e for e in index.entries if e.offset > 0))

    monkeypatch.setattr(MediaAgent, "index_for", without_first)
    restored = await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "intact", copy_id=PRIMARY))
    assert restored.objects == full.objects - 1, "the bytes outside the listed objects are intact"

    [seg] = await segments(fabric, full.job_id, PRIMARY)
    image = fabric.libraries["prod/PVTL"].image_path(seg.barcode)
    raw = bytearray(image.read_bytes())
    raw[data_offset(fabric, "prod/PVTL", seg.barcode, seg.file_no) + 100] ^= 0x5A  # in the first object
    image.write_bytes(bytes(raw))
    with pytest.raises(RestoreError, match=rf"job {full.job_id}: stream digest does not match the index"):
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "rotten", copy_id=PRIMARY))
    assert (await job_copy(fabric, full.job_id, PRIMARY)).state == CopyState.DAMAGED


# ---------------------------------------------------------------- the fault actions


async def test_block_fault_places_are_checked_and_clear_says_what_it_cleared(fabric, autojump_clock):
    target = "cartridge:PR0001L8"
    with pytest.raises(faults.FaultError, match="not a place on a cartridge"):
        await faults.inject(fabric, target, "read-error", "block 3")
    with pytest.raises(faults.FaultError, match="count from 1"):
        await faults.inject(fabric, target, "read-error", "0.3")
    with pytest.raises(faults.FaultError, match="write-error takes no place"):
        await faults.inject(fabric, target, "write-error", "2.3")
    assert await faults.inject(fabric, target, "read-error", "2.3") == f"read-error at file 2 block 3 on {target}"
    assert await faults.inject(fabric, target, "read-error", "4096") == f"read-error at the block at offset 4096 on {target}"
    await faults.inject(fabric, target, "write-error")
    assert await faults.inject(fabric, target, "clear") == (
        f"cleared read-error at file 2 block 3, read-error at the block at offset 4096, write-error on {target}"
    )
    assert await faults.inject(fabric, target, "clear") == f"cleared nothing on {target}"
    args = cli._parser().parse_args(["ctl", "fault", target, "read-error", "2.3"])
    assert args.build(args) == {"cmd": "fault", "target": target, "action": "read-error", "where": "2.3"}


async def test_a_copy_whose_media_do_not_read_back_as_written_never_counts(tmp_path, monkeypatch, autojump_clock):
    """The destination reads each committed range back behind its writer: a byte that
    changed on its way to the media fails the job's digest, and it is copied again."""
    path = write_fabric(tmp_path / "f")
    async with open_fabric(path) as fabric:
        done = await run_backup(fabric, "IBMB", None, "full")
        write_then_sync, garbled = stream._write_then_sync, []

        def garbling(image: TapeImage, blocks: list, *rest) -> tuple[int, int | None]:
            start = image.end_offset()
            written, eod = write_then_sync(image, blocks, *rest)
            if not garbled and image.barcode.startswith("DR"):  # the DR copy's first write, one byte flipped
                with image.path.open("r+b") as f:
                    f.seek(start + 100)
                    byte = f.read(1)[0]
                    f.seek(start + 100)
                    f.write(bytes([byte ^ 0xFF]))
                garbled.append(image.barcode)
            return written, eod

        monkeypatch.setattr(stream, "_write_then_sync", garbling)
        with capture_logs() as logs:
            result = await run_auxcopy(fabric)
        assert garbled and result.status == "completed" and result.jobs_copied == 1
        [retry] = [e for e in logs if e["event"] == "auxcopy.job_retry"]
        assert retry["job_id"] == done.job_id and "does not match the source" in retry["error"]
        assert (await fabric.catalog.call(queries.job_copy, done.job_id, DR)).state == CopyState.AVAILABLE
        await restore_latest_is_exact(fabric, "IBMB", tmp_path / "b")
        assert (await run_verify(fabric, DR)).jobs_verified == 1
