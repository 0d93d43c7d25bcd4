"""Libraries, drives and media that behave like an LTO VTL: generations and compatibility,
WORM, each copy's scratch pool, labels checked at mount, and the drives' timing model."""

from __future__ import annotations

import pytest
import trio

from tests.expect import expected_files, restored_files
from tests.helpers import TEN_GIB_CLIENT, collect, edit_config, open_fabric, write_fabric
from vtlfabric import config, errors, media
from vtlfabric.catalog import queries
from vtlfabric.jobs import faults
from vtlfabric.jobs.aging import run_data_aging
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import BackupFailed, run_backup
from vtlfabric.jobs.restore import RestoreRequest, run_restore
from vtlfabric.service.commands import Commands
from vtlfabric.service.operations import Operations
from vtlfabric.tape.image import TapeImage
from vtlfabric.tape.library import CartridgeOutside, WrongCartridge
from vtlfabric.vocab import CopyState, DriveState

GiB = 2**30


@pytest.mark.parametrize(
    "drive, barcode, read, write",
    [
        ("LTO-9", "AB0001L9", True, True),
        ("LTO-9", "AB0001L8", True, True),
        ("LTO-9", "AB0001L7", False, False),
        ("LTO-8", "AB0001L8", True, True),
        ("LTO-8", "AB0001L7", True, True),
        ("LTO-8", "AB0001L9", False, False),
        ("LTO-7", "AB0001L8", False, False),
        ("LTO-8", "AB0001LX", True, True),  # WORM mounts like its generation
    ],
)
def test_lto_compatibility_decides_which_drive_mounts_which_cartridge(drive, barcode, read, write):
    kind = media.DRIVES[drive]
    for wanted, allowed in ((False, read), (True, write)):
        if allowed:
            media.check_mount(kind, barcode, wanted)
        else:
            with pytest.raises(media.Incompatible, match=f"{drive} drive cannot"):
                media.check_mount(kind, barcode, wanted)


def test_capacities_and_rates_are_the_generations_native_ones():
    assert [media.MEDIA[s].capacity for s in ("L7", "L8", "L9")] == [6 * 10**12, 12 * 10**12, 18 * 10**12]
    assert media.DRIVES["LTO-9"].transfer_rate(media.MEDIA["L8"]) == 360 * 10**6, "an L8 in an LTO-9 drive streams at L8 speed"


def test_a_library_whose_drives_cannot_read_its_cartridges_is_refused(tmp_path):
    path = write_fabric(tmp_path, prod={"drive_type": "LTO-9"})
    edit_config(tmp_path / "prod.toml", 'barcodes = "PR0001L8-PR0012L8"', 'barcodes = ["PR0001L7-PR0006L7", "PR0007L9-PR0012L9"]')
    with pytest.raises(config.ConfigError, match=r"library\[0\].barcodes: an LTO-9 drive cannot read L7"):
        config.load(path)


def test_an_unknown_media_suffix_is_refused(tmp_path):
    path = write_fabric(tmp_path)
    edit_config(tmp_path / "prod.toml", 'barcodes = "PR0001L8-PR0012L8"', 'barcodes = "PR0001A1-PR0012A1"')
    with pytest.raises(config.ConfigError, match="not an LTO media type"):
        config.load(path)


def test_a_librarys_drives_default_to_the_oldest_generation_that_writes_all_its_media(tmp_path):
    path = write_fabric(tmp_path)
    text = (tmp_path / "prod.toml").read_text().replace('drive_type = "LTO-8"\n', "")
    (tmp_path / "prod.toml").write_text(text)
    for ranges, drive in (
        (["PR0001L7-PR0006L7", "PR0007L8-PR0012L8"], "LTO-8"),
        (["PR0001L8-PR0006L8", "PR0007L9-PR0012L9"], "LTO-9"),
    ):
        edited = text.replace('barcodes = "PR0001L8-PR0012L8"', f"barcodes = {ranges!r}".replace("'", '"'))
        assert edited != text
        (tmp_path / "prod.toml").write_text(edited)
        assert config.load(path).library("prod/PVTL").drive_type == drive


async def test_worm_cartridges_are_never_recycled(tmp_path, autojump_clock):
    async def recycled(suffix: str) -> list[str]:
        root = tmp_path / suffix
        path = write_fabric(root)
        edit_config(root / "prod.toml", 'barcodes = "PR0001L8-PR0012L8"', f'barcodes = "PR0001{suffix}-PR0012{suffix}"')
        async with open_fabric(path) as fabric:
            await faults.inject(fabric, "client:IBMB", "fail-backup")
            with pytest.raises(BackupFailed):
                await run_backup(fabric, "IBMB", None, "full")  # its data on tape is never valid
            return list((await run_data_aging(fabric)).cartridges)

    assert await recycled("L8") == ["PR0001L8"], "a rewritable cartridge holding only invalid data goes back to scratch"
    assert await recycled("LX") == [], "a WORM cartridge is written once: never recycled"


async def test_a_copy_with_its_own_scratch_pool_writes_only_there(tmp_path, autojump_clock):
    path = write_fabric(tmp_path)
    edit_config(path, "streams = 2", 'streams = 2\nmedia = "DR0009L8-DR0012L8"')
    async with open_fabric(path) as fabric:
        done = [await run_backup(fabric, c, None, "full") for c in ("IBMA", "IBMB")]
        await run_auxcopy(fabric)
        for job in done:
            dr = {s.barcode for s in await fabric.catalog.call(queries.segments, job.job_id, "P/dr")}
            assert dr and dr <= {"DR0009L8", "DR0010L8", "DR0011L8", "DR0012L8"}


def test_a_scratch_pool_outside_the_copys_library_is_refused(tmp_path):
    path = write_fabric(tmp_path)
    edit_config(path, "streams = 2", 'streams = 2\nmedia = "PR0001L8-PR0002L8"')
    with pytest.raises(config.ConfigError, match=r"copy\[1\].media: PR0001L8 is not a cartridge of library dr/DVTL"):
        config.load(path)


async def test_a_cartridge_labelled_as_another_is_never_written_over(tmp_path, autojump_clock):
    async with open_fabric(write_fabric(tmp_path)) as fabric:
        library = fabric.libraries["prod/PVTL"]
        TapeImage.create(library.image_path("PR0001L8"), "XX0099L8", library.spec.capacity).close()  # the wrong volume
        async with library.drive() as drive:
            with pytest.raises(WrongCartridge, match="PR0001L8 in prod/PVTL is labelled XX0099L8"):
                await drive.load("PR0001L8")
            assert drive.state == DriveState.EMPTY and drive.barcode is None
        done = await run_backup(fabric, "IBMB", None, "full")  # set aside: the backup goes to the next one
        barcodes = {s.barcode for s in await fabric.catalog.call(queries.segments, done.job_id, "P/primary")}
        assert "PR0001L8" not in barcodes
        [bad] = [c for c in await fabric.catalog.call(queries.cartridges, "prod/PVTL") if c.barcode == "PR0001L8"]
        assert bad.state == "bad"
        assert TapeImage.open(library.image_path("PR0001L8"), library.spec.capacity).barcode == "XX0099L8", "untouched"
        await run_auxcopy(fabric)
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "out", job_id=done.job_id, copy_id="P/dr"))
        gen = (await fabric.catalog.call(queries.get_job, done.job_id)).generation
        assert restored_files(tmp_path / "out") == expected_files(fabric, "IBMB", {"ALLUSR": gen})


async def test_a_drive_takes_the_models_time_to_load_locate_move_data_rewind_and_unload(tmp_path, autojump_clock):
    """An LTO-8 drive and an L8 cartridge: 10 GiB at 360 MB/s, a locate to mid-tape,
    the load, the rewind from where the tape stopped, and the unload."""
    async with open_fabric(write_fabric(tmp_path, prod={"timing": True, "robot_time": "5s"})) as fabric:
        library = fabric.libraries["prod/PVTL"]
        kind = media.DRIVES["LTO-8"]
        async with library.drive() as drive:
            begin = trio.current_time()
            await drive.load("PR0001L8")
            assert trio.current_time() - begin == pytest.approx(5 + kind.load)
            begin = trio.current_time()
            await drive.locate(library.spec.capacity // 2)
            assert trio.current_time() - begin == pytest.approx(kind.base_locate + 0.5 * kind.full_locate)
            begin = trio.current_time()
            await drive.moved(10 * GiB)
            assert trio.current_time() - begin == pytest.approx(10 * GiB / (360 * 10**6))
            at = drive.position
            begin = trio.current_time()
            await drive.unload()
            assert trio.current_time() - begin == pytest.approx(at * kind.full_locate + kind.unload + 5)


async def test_the_robot_makes_one_move_at_a_time(tmp_path, autojump_clock):
    async with open_fabric(write_fabric(tmp_path, prod={"robot_time": "10s"})) as fabric:
        library = fabric.libraries["prod/PVTL"]
        begin = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(library.robot_move)
        assert trio.current_time() - begin == pytest.approx(30.0)


async def test_with_timing_on_a_copy_takes_at_least_the_drives_mechanical_time(tmp_path, autojump_clock):
    path = write_fabric(tmp_path, prod={"timing": True, "robot_time": "1s"}, dr={"timing": True, "robot_time": "1s"})
    async with open_fabric(path) as fabric:
        done = await run_backup(fabric, "IBMB", None, "full")
        kind = media.DRIVES["LTO-8"]
        begin = trio.current_time()
        result = await run_auxcopy(fabric)
        took = trio.current_time() - begin
        assert result.jobs_copied == 1
        # Each side: robot, load, a locate, the data at 360 MB/s, rewind and unload; the two
        # sides overlap, and the WAN and the read-back verify add their share.
        least = 1 + kind.load + kind.base_locate + done.bytes / kind.rate + kind.unload + 1
        assert least <= took <= 6 * least, took
        assert (await fabric.catalog.call(queries.get_job, done.job_id)).copies["P/dr"] == CopyState.AVAILABLE


def test_an_incompatible_mount_is_a_refusal_with_exit_1():
    with pytest.raises(errors.Refused):
        media.check_mount(media.DRIVES["LTO-7"], "AB0001L9", write=False)


async def test_an_exported_cartridge_fails_a_restore_naming_it_until_it_is_imported(tmp_path, autojump_clock):
    async with trio.open_nursery() as nursery, open_fabric(write_fabric(tmp_path)) as fabric:
        ctl = Commands(fabric, Operations(nursery), trio.current_time())
        done = await run_backup(fabric, "IBMB", None, "full")
        await run_auxcopy(fabric)
        [barcode] = {s.barcode for s in await fabric.catalog.call(queries.segments, done.job_id, "P/dr")}
        assert await ctl.cmd_export({"barcodes": [barcode]}) == {"exported": [barcode], "libraries": ["dr/DVTL"]}
        # It fails at once, never waits for the cartridge (no guard on the clock here: the
        # autojump clock moves while worker threads read the index).
        with pytest.raises(CartridgeOutside, match=f"{barcode} is outside library dr/DVTL: import it"):
            await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "a", job_id=done.job_id, copy_id="P/dr"))
        [vol] = [v for lib in await ctl.cmd_media({}) for v in lib["volumes"] if v["volume"] == barcode]
        assert (vol["status"], vol["location"]) == ("*EJECTED", "*OUTSIDE")
        with pytest.raises(errors.Refused, match="already outside"):
            await ctl.cmd_export({"barcodes": [barcode]})
        await ctl.cmd_import({"barcodes": [barcode]})
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "b", job_id=done.job_id, copy_id="P/dr"))
        gen = (await fabric.catalog.call(queries.get_job, done.job_id)).generation
        assert restored_files(tmp_path / "b") == expected_files(fabric, "IBMB", {"ALLUSR": gen})
        nursery.cancel_scope.cancel()


async def test_no_new_data_goes_to_an_exported_scratch_cartridge(tmp_path, autojump_clock):
    async with trio.open_nursery() as nursery, open_fabric(write_fabric(tmp_path)) as fabric:
        ctl = Commands(fabric, Operations(nursery), trio.current_time())
        await ctl.cmd_export({"barcodes": ["PR0001L8", "PR0002L8"]})
        done = await run_backup(fabric, "IBMB", None, "full")
        used = {s.barcode for s in await fabric.catalog.call(queries.segments, done.job_id, "P/primary")}
        assert not used & {"PR0001L8", "PR0002L8"}
        with pytest.raises(errors.NotFound, match="no cartridge 'XX0001L8'"):
            await ctl.cmd_export({"barcodes": ["XX0001L8"]})
        nursery.cancel_scope.cancel()


async def test_every_cartridges_location_is_in_the_catalog_and_survives_a_restart(tmp_path, autojump_clock):
    path = write_fabric(tmp_path)
    async with trio.open_nursery() as nursery, open_fabric(path) as fabric:
        await Commands(fabric, Operations(nursery), trio.current_time()).cmd_export({"barcodes": ["PR0012L8"]})
        library = fabric.libraries["prod/PVTL"]
        async with library.drive() as drive:
            await drive.load("PR0003L8")
            where = {c.barcode: (c.location, c.drive) for c in await fabric.catalog.call(queries.cartridges, "prod/PVTL")}
            assert where["PR0003L8"] == ("drive", drive.number) and where["PR0012L8"] == ("outside", None)
            media_now = await Commands(fabric, Operations(nursery), trio.current_time()).cmd_media({})
            [prod] = [m for m in media_now if m["library"] == "prod/PVTL"]
            assert prod["device"] == "TAPMLB01" and [r["resource"] for r in prod["resources"]] == ["TAP01", "TAP02"]
            assert {v["volume"]: v["location"] for v in prod["volumes"]}["PR0003L8"] in ("TAP01", "TAP02")
        nursery.cancel_scope.cancel()
    # A crash with a cartridge in a drive: the catalog still says so; a restart puts it home.
    async with open_fabric(path) as fabric:
        where = {c.barcode: c.location for c in await fabric.catalog.call(queries.cartridges, "prod/PVTL")}
        assert where["PR0003L8"] == "slot" and where["PR0012L8"] == "outside"
        with pytest.raises(CartridgeOutside):
            fabric.libraries["prod/PVTL"].check_inside("PR0012L8")


async def test_a_drive_that_fails_mid_copy_hands_the_job_to_another_drive_and_stays_out_until_repaired(tmp_path, autojump_clock):
    path = write_fabric(tmp_path, streams=1, dr={"timing": True})  # the DR side takes time: a failure lands mid-job
    async with open_fabric(path) as fabric:
        done = await run_backup(fabric, "IBMB", None, "full")
        dr = fabric.libraries["dr/DVTL"]
        results = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: collect(results, run_auxcopy(fabric)))
            while True:
                await trio.sleep(0.05)
                row = await fabric.catalog.call(queries.job_copy, done.job_id, "P/dr")
                if row is not None and row.bytes_done > 0:
                    break
            [busy] = [d for d in dr.drives() if d.barcode]
            await faults.inject(fabric, f"drive:{busy.name}", "fail")
        [result] = results
        assert result.jobs_copied == 1 and result.status == "completed"
        assert busy.state == DriveState.FAILED
        [other] = [d for d in dr.drives() if d is not busy]
        async with dr.drive("test") as drive:
            assert drive is other, "a failed drive is granted to no one"
        await faults.inject(fabric, f"drive:{busy.name}", "repair")
        assert busy.state == DriveState.EMPTY
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "out", job_id=done.job_id, copy_id="P/dr"))
        gen = (await fabric.catalog.call(queries.get_job, done.job_id)).generation
        assert restored_files(tmp_path / "out") == expected_files(fabric, "IBMB", {"ALLUSR": gen})


async def test_a_drive_that_fails_mid_backup_hands_the_job_to_another_drive_from_its_last_checkpoint(tmp_path, autojump_clock):
    # Timed drives and 10 GiB nominal (30 s on the drive, 10 MiB real), so a failure lands mid-job.
    path = write_fabric(
        tmp_path, prod={"timing": True, "clients": TEN_GIB_CLIENT}, chunk="64KiB", extra_daemon="data_scale = 1024"
    )
    async with open_fabric(path) as fabric:
        prod = fabric.libraries["prod/PVTL"]
        results = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: collect(results, run_backup(fabric, "IBMA", "ALLUSR", "full")))
            while True:  # fail the drive once a checkpoint is on tape
                await trio.sleep(0.1)
                written = await fabric.catalog.call(queries.segments, 1, "P/primary")
                if sum(s.length for s in written) > 0:
                    break
            [busy] = [d for d in prod.drives() if d.barcode]
            committed = sum(s.length for s in written)
            await faults.inject(fabric, f"drive:{busy.name}", "fail")
        [done] = results
        assert done.status == "completed", "the job went on on the other drive"
        segments = await fabric.catalog.call(queries.segments, done.job_id, "P/primary")
        assert len(segments) >= 2 and segments[1].offset >= committed > 0, "it resumed where the checkpoint was"
        assert sum(s.length for s in segments) == done.bytes, "no byte written twice, none missing"
        assert busy.state == DriveState.FAILED
        await faults.inject(fabric, f"drive:{busy.name}", "repair")
        await run_restore(fabric, RestoreRequest("IBMA", tmp_path / "out", job_id=done.job_id, copy_id="P/primary"))
        gen = (await fabric.catalog.call(queries.get_job, done.job_id)).generation
        assert restored_files(tmp_path / "out") == expected_files(fabric, "IBMA", {"ALLUSR": gen})


async def test_a_drive_fault_names_a_drive_that_exists(tmp_path, autojump_clock):
    async with open_fabric(write_fabric(tmp_path)) as fabric:
        with pytest.raises(errors.BadRequest, match=r"no drive named 'dr/DVTL#9' \(known: prod/PVTL#1"):
            await faults.inject(fabric, "drive:dr/DVTL#9", "fail")


async def test_ctl_drives_shows_a_failed_drive_as_failed(tmp_path, autojump_clock):
    async with trio.open_nursery() as nursery, open_fabric(write_fabric(tmp_path)) as fabric:
        await faults.inject(fabric, "drive:prod/PVTL#2", "fail")
        report = await Commands(fabric, Operations(nursery), trio.current_time()).cmd_drives({})
        [prod] = [lib for lib in report["libraries"] if lib["library"] == "prod/PVTL"]
        assert [d["state"] for d in prod["drives"]] == ["free", "failed"]
        nursery.cancel_scope.cancel()


async def test_ctl_media_reports_volumes_in_nominal_bytes(tmp_path, autojump_clock):
    path = write_fabric(tmp_path)
    edit_config(tmp_path / "prod.toml", 'capacity = "4MiB"', 'capacity = "4MiB"\nnominal_capacity = "12TB"')
    async with trio.open_nursery() as nursery, open_fabric(path) as fabric:
        await run_backup(fabric, "IBMB", None, "full")
        view = await Commands(fabric, Operations(nursery), trio.current_time()).cmd_media({})
        [prod] = [m for m in view if m["library"] == "prod/PVTL"]
        first = prod["volumes"][0]
        eod = {c.barcode: c.eod for c in await fabric.catalog.call(queries.cartridges, "prod/PVTL")}[first["volume"]]
        assert first["capacity"] == 12 * 10**12 and first["used"] == round(eod / (4 * 2**20) * 12 * 10**12) > 0
        [dr] = [m for m in view if m["library"] == "dr/DVTL"]
        assert dr["volumes"][0]["capacity"] == 12 * 10**12, "by default, the L8 media type's native capacity"
        nursery.cancel_scope.cancel()
