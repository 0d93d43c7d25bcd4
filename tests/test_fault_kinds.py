"""The fault kinds beyond drives, media, partitions and failed backups: a killed backup,
a degraded link, a robot that fails its picks, a cartridge that reads as another volume,
a full disk library, and a MediaAgent's crash and restart. Each through a whole
in-process fabric on the virtual clock, judged by what the catalog and a restore say."""

from __future__ import annotations

import pytest
import trio

from tests.expect import expected_files, restored_files
from tests.helpers import TEN_GIB_CLIENT, open_fabric, write_fabric
from vtlfabric.catalog import queries
from vtlfabric.errors import Refused
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import faults
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import BackupFailed, run_backup
from vtlfabric.jobs.restore import RestoreRequest, run_restore

DR = "P/dr"
TIMED = pytest.mark.parametrize("fabric_files", [{"timing": True}], indirect=True)


async def statuses(fabric: Fabric) -> dict[int, str]:
    return {j.id: j.status for j in await fabric.catalog.call(queries.list_jobs)}


async def copy_state(fabric: Fabric, job_id: int, copy_id: str = DR) -> str | None:
    return (await fabric.catalog.call(queries.get_job, job_id)).copies.get(copy_id)


async def restores_exact(fabric: Fabric, tmp_path, client: str, job_id: int) -> bool:
    dest = tmp_path / f"restore-{job_id}"
    await run_restore(fabric, RestoreRequest(client, dest, job_id=job_id, copy_id=DR, site="dr"))
    job = await fabric.catalog.call(queries.get_job, job_id)
    return restored_files(dest) == expected_files(fabric, client, {job.subclient: job.generation})


async def test_kill_backup_kills_the_next_backup_part_way_and_it_is_never_copied(fabric, autojump_clock):
    await faults.inject(fabric, "client:IBMA", "kill-backup")
    with pytest.raises(BackupFailed, match="killed by operator"):
        await run_backup(fabric, "IBMA", "ALLUSR", "full")
    good = await run_backup(fabric, "IBMA", "ALLUSR", "full")  # the fault is used up
    assert sorted((await statuses(fabric)).values()) == ["completed", "killed"]
    assert (await run_auxcopy(fabric)).jobs_copied == 1
    assert await copy_state(fabric, good.job_id) == "available"


@TIMED
async def test_kill_backup_kills_a_running_backup(fabric, autojump_clock):
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_expect_killed, fabric)
        await trio.sleep(1.0)  # the robot is loading its drive
        await faults.inject(fabric, "client:IBMB", "kill-backup")
    assert list((await statuses(fabric)).values()) == ["killed"]


async def _expect_killed(fabric: Fabric) -> None:
    with pytest.raises(BackupFailed, match="killed"):
        await run_backup(fabric, "IBMB", None, "full")


async def _copy_seconds(fabric: Fabric) -> float:
    began = trio.current_time()
    assert (await run_auxcopy(fabric)).status == "completed"
    return trio.current_time() - began


async def test_a_degraded_link_copies_slower_and_restore_brings_it_back(tmp_path, autojump_clock):
    async with open_fabric(write_fabric(tmp_path / "f")) as fabric:
        await run_backup(fabric, "IBMB", None, "full")
        normal = await _copy_seconds(fabric)
        done = await faults.inject(fabric, "link:wan", "degrade", "bandwidth=100kB,latency=200ms")
        assert "100000 B/s, 200 ms" in done
        await trio.sleep(3600)
        await run_backup(fabric, "IBMB", None, "full")
        degraded = await _copy_seconds(fabric)
        await faults.inject(fabric, "link:wan", "restore")
        await trio.sleep(3600)
        await run_backup(fabric, "IBMB", None, "full")
        restored = await _copy_seconds(fabric)
    assert degraded > 5 * normal  # a five-hundredth of the bandwidth, ten times the latency
    assert restored < 2 * normal


@pytest.mark.parametrize(
    ("where", "says"),
    [("speed=3", "give \\[bandwidth"), ("loss=0.9", "loss from 0 to 0.5"), ("latency=soon", "latency")],
)
async def test_a_bad_degradation_is_refused_naming_it(fabric, where, says, autojump_clock):
    with pytest.raises(faults.FaultError, match=says):
        await faults.inject(fabric, "link:wan", "degrade", where)
    assert fabric.links["wan"].degraded == {}


async def test_a_failing_robot_fails_backups_until_repaired(fabric, autojump_clock):
    await faults.inject(fabric, "library:prod/PVTL", "robot-fail")
    with pytest.raises(BackupFailed, match="robot of library prod/PVTL failed to pick"):
        await run_backup(fabric, "IBMB", None, "full")
    await faults.inject(fabric, "library:prod/PVTL", "robot-repair")
    await run_backup(fabric, "IBMB", None, "full")
    assert sorted((await statuses(fabric)).values()) == ["completed", "failed"]


async def test_a_failing_robot_at_dr_holds_the_copy_back_and_loses_nothing(fabric, tmp_path, autojump_clock):
    done = await run_backup(fabric, "IBMB", None, "full")
    await faults.inject(fabric, "library:dr/DVTL", "robot-fail")
    assert (await run_auxcopy(fabric)).jobs_copied == 0
    assert await copy_state(fabric, done.job_id) in ("to_be_copied", "partially_copied")
    await faults.inject(fabric, "library:dr/DVTL", "robot-repair")
    assert (await run_auxcopy(fabric)).jobs_copied == 1
    assert await restores_exact(fabric, tmp_path, "IBMB", done.job_id)


async def test_a_mislabelled_cartridge_is_set_aside_and_keeps_its_data(fabric, tmp_path, autojump_clock):
    first = await run_backup(fabric, "IBMB", None, "full")
    await run_auxcopy(fabric)
    (seg,) = await fabric.catalog.call(queries.segments, first.job_id, DR)
    before = {c.barcode: c for c in await fabric.catalog.call(queries.cartridges, "dr/DVTL")}[seg.barcode]
    assert before.state == "appendable"

    done = await faults.inject(fabric, f"cartridge:{seg.barcode}", "wrong-label")
    assert "wrong-label (" in done
    await trio.sleep(3600)
    second = await run_backup(fabric, "IBMB", None, "full")
    assert (await run_auxcopy(fabric)).jobs_copied == 1  # on another cartridge
    after = {c.barcode: c for c in await fabric.catalog.call(queries.cartridges, "dr/DVTL")}[seg.barcode]
    assert (after.state, after.eod) == ("bad", before.eod), "set aside, with what it holds still committed"
    (seg2,) = await fabric.catalog.call(queries.segments, second.job_id, DR)
    assert seg2.barcode != seg.barcode

    await faults.inject(fabric, f"cartridge:{seg.barcode}", "clear")
    for library in fabric.libraries.values():
        await library.reload()  # as a restart would: the first job's data must still be there
    assert await restores_exact(fabric, tmp_path, "IBMB", first.job_id)
    assert await restores_exact(fabric, tmp_path, "IBMB", second.job_id)


async def test_a_full_disk_library_holds_jobs_back_until_freed(fabric, tmp_path, autojump_clock):
    done = await run_backup(fabric, "IBMB", None, "full")
    await faults.inject(fabric, "mediaagent:dr", "disk-full")
    result = await run_auxcopy(fabric)
    assert result.jobs_copied == 0 and "no space left" in result.copies[0].failed[0].reason
    assert await copy_state(fabric, done.job_id) == "partially_copied", "its data is on tape, its index is not saved"
    await faults.inject(fabric, "mediaagent:dr", "disk-freed")
    assert (await run_auxcopy(fabric)).jobs_copied == 1
    segments = await fabric.catalog.call(queries.segments, done.job_id, DR)
    assert sum(s.length for s in segments) == done.bytes, "the resumed job wrote nothing twice"
    assert await restores_exact(fabric, tmp_path, "IBMB", done.job_id)


@TIMED
async def test_a_mediaagent_crash_stops_its_backup_and_restart_reloads_it(fabric, autojump_clock):
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_expect_crashed, fabric)
        await trio.sleep(1.0)
        done = await faults.inject(fabric, "mediaagent:prod", "crash")
        assert done.startswith("crashed prodma: stopped backup:1")
    assert list((await statuses(fabric)).values()) == ["failed"]
    with pytest.raises(BackupFailed, match="crashed"):  # down until restarted
        await run_backup(fabric, "IBMA", "ALLUSR", "full")
    assert await faults.inject(fabric, "mediaagent:prod", "restart") == "restarted prodma"
    await run_backup(fabric, "IBMA", "ALLUSR", "full")
    assert sorted((await statuses(fabric)).values()) == ["completed", "failed", "failed"]


async def _expect_crashed(fabric: Fabric) -> None:
    with pytest.raises(BackupFailed, match="MediaAgent prodma of site prod crashed"):
        await run_backup(fabric, "IBMB", None, "full")


async def test_a_crash_mid_copy_resumes_from_its_checkpoint_after_restart(tmp_path, autojump_clock):
    timed = {"timing": True, "capacity": "64MiB"}
    path = write_fabric(
        tmp_path / "f", prod={**timed, "clients": TEN_GIB_CLIENT}, dr=timed, chunk="64KiB", extra_daemon="data_scale = 1024"
    )
    async with open_fabric(path) as fabric:
        await _crash_mid_copy(fabric, tmp_path)


async def _crash_mid_copy(fabric: Fabric, tmp_path) -> None:
    done = await run_backup(fabric, "IBMA", "ALLUSR", "full")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_copy_expecting, fabric, "interrupted")
        while not (await fabric.catalog.call(queries.segments, done.job_id, DR)):
            await trio.sleep(0.5)  # until the copy has committed a chunk
        await faults.inject(fabric, "mediaagent:dr", "crash")
    assert await copy_state(fabric, done.job_id) == "partially_copied"
    assert (await run_auxcopy(fabric)).copies[0].status == "inoperative"
    await faults.inject(fabric, "mediaagent:dr", "restart")
    assert (await run_auxcopy(fabric)).jobs_copied == 1
    assert await copy_state(fabric, done.job_id) == "available"
    segments = await fabric.catalog.call(queries.segments, done.job_id, DR)
    assert sum(s.length for s in segments) == done.bytes, "resumed at its checkpoint: nothing written twice"
    assert await restores_exact(fabric, tmp_path, "IBMA", done.job_id)


async def _copy_expecting(fabric: Fabric, status: str) -> None:
    result = await run_auxcopy(fabric)
    assert result.copies[0].status == status, result


async def test_a_skewed_site_clock_stamps_its_jobs_and_the_drill_report_shows_it(fabric, autojump_clock):
    from vtlfabric.jobs.drill import run_drill

    await run_backup(fabric, "IBMA", "ALLUSR", "full")
    await run_backup(fabric, "IBMA", "IFS", "full")
    await run_backup(fabric, "IBMB", None, "full")
    await run_auxcopy(fabric)
    await trio.sleep(3 * 3600)  # the workload changes
    assert await faults.inject(fabric, "site:prod", "skew", "+2h") == "clock of site prod ahead by 7200s"
    late = await run_backup(fabric, "IBMB", None, "incremental")  # not copied yet
    job = await fabric.catalog.call(queries.get_job, late.job_id)
    assert job.started == pytest.approx(fabric.now() + 7200, abs=60), "stamped by production's clock"

    skewed = await run_drill(fabric, "check", "test")
    assert skewed.clock_skew == {"prod": 7200.0} and "clock skew: prod +7200s" in skewed.summary
    assert [c.rpo for c in skewed.clients] == [0.0, 0.0], "DR's clock says the job is still to come: the RPO is misjudged"

    assert await faults.inject(fabric, "site:prod", "sync") == "clock of site prod in sync"
    await trio.sleep(3 * 3600)
    synced = await run_drill(fabric, "check", "test")
    assert synced.clock_skew == {} and "clock skew" not in synced.summary
    assert [c.rpo > 3600 for c in synced.clients] == [False, True], "with the clocks in sync, the missing job shows"


async def test_a_bad_skew_is_refused_naming_it(fabric, autojump_clock):
    with pytest.raises(faults.FaultError, match="skew 'soon'"):
        await faults.inject(fabric, "site:prod", "skew", "soon")
    with pytest.raises(faults.FaultError, match="no site named 'moon'"):
        await faults.inject(fabric, "site:moon", "skew")
    assert fabric.skews == {}


async def test_a_full_state_dir_refuses_changes_and_loses_nothing_once_freed(fabric, tmp_path, autojump_clock):
    first = await run_backup(fabric, "IBMB", None, "full")
    assert "full" in await faults.inject(fabric, "daemon:self", "state-full")
    with pytest.raises(OSError, match="database or disk is full"):
        await run_backup(fabric, "IBMA", "ALLUSR", "full")  # not even its job can be recorded
    with pytest.raises(OSError, match="database or disk is full"):
        await run_auxcopy(fabric)
    assert await fabric.catalog.call(queries.status_counts) == {"completed": 1}, "reads go on; nothing half-written"
    await faults.inject(fabric, "daemon:self", "state-freed")
    assert (await run_auxcopy(fabric)).jobs_copied == 1
    assert await restores_exact(fabric, tmp_path, "IBMB", first.job_id)


@TIMED
async def test_a_state_dir_that_fills_under_a_backup_fails_it_and_its_data_is_never_copied(fabric, autojump_clock):
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_expect_no_space, fabric)
        await trio.sleep(1.0)
        await faults.inject(fabric, "daemon:self", "state-full")
        await trio.sleep(600)
        assert [j.status for j in await fabric.catalog.call(queries.list_jobs)] == ["running"], "nothing can be recorded"
        await faults.inject(fabric, "daemon:self", "state-freed")
    (job,) = await fabric.catalog.call(queries.list_jobs)
    assert job.status == "failed" and "disk is full" in job.reason, "recorded once there was room"
    assert (await run_auxcopy(fabric)).jobs_copied == 0
    good = await run_backup(fabric, "IBMB", None, "full")
    assert (await run_auxcopy(fabric)).jobs_copied == 1 and await copy_state(fabric, good.job_id) == "available"


async def _expect_no_space(fabric: Fabric) -> None:
    with pytest.raises((BackupFailed, OSError), match=r"no space|disk is full"):
        await run_backup(fabric, "IBMB", None, "full")


async def test_the_faults_in_force_are_listed_until_they_heal(fabric, autojump_clock):
    await run_backup(fabric, "IBMB", None, "full")
    (seg,) = await fabric.catalog.call(queries.segments, 1, "P/primary")
    setting = [
        ("link:wan", "degrade", "latency=1s"),
        ("link:wan", "partition-a-b", None),
        ("library:dr/DVTL", "robot-fail", None),
        ("mediaagent:dr", "disk-full", None),
        ("mediaagent:prod", "crash", None),
        ("site:dr", "skew", "-90s"),
        ("daemon:self", "state-full", None),
        ("client:IBMA", "kill-backup", None),
        (f"cartridge:{seg.barcode}", "wrong-label", None),
        ("drive:dr/DVTL#1", "offline", None),
    ]
    for target, action, where in setting:
        await faults.inject(fabric, target, action, where)
    held = faults.in_force(fabric)
    assert held == [
        "link:wan partition (a->b)",
        "link:wan degrade (latency 1)",
        f"cartridge:{seg.barcode} wrong-label (reads PR0002L8)",
        "library:dr/DVTL robot-fail",
        "drive:dr/DVTL#1 offline (offline by fault injection)",
        "mediaagent:prod crash",
        "mediaagent:dr disk-full",
        "site:dr skew (-90s)",
        "daemon:self state-full",
        "client:IBMA kill-backup (armed)",
    ]
    for target, action in [
        ("link:wan", "restore"),
        ("link:wan", "heal"),
        ("library:dr/DVTL", "robot-repair"),
        ("mediaagent:dr", "disk-freed"),
        ("mediaagent:prod", "restart"),
        ("site:dr", "sync"),
        ("daemon:self", "state-freed"),
        (f"cartridge:{seg.barcode}", "clear"),
        ("drive:dr/DVTL#1", "online"),
    ]:
        await faults.inject(fabric, target, action)
    assert faults.in_force(fabric) == ["client:IBMA kill-backup (armed)"], "armed until a backup of IBMA uses it"


@TIMED
async def test_a_restart_while_the_state_disk_is_full_is_refused_and_the_mediaagent_stays_down(fabric, autojump_clock):
    """Found by the chaos sweep (seed 401112): the restart's reload could not bring the
    crashed backup's cartridge home in the catalog, and its error ended the daemon."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_expect_crashed, fabric)  # it records its end once the state disk has room
        await trio.sleep(30.0)  # the backup's cartridge is in a drive, and the catalog says so
        await faults.inject(fabric, "daemon:self", "state-full")
        await faults.inject(fabric, "mediaagent:prod", "crash")
        with pytest.raises(Refused, match=r"cannot restart prodma of site prod, it stays down: .*database or disk is full"):
            await faults.inject(fabric, "mediaagent:prod", "restart")
        await faults.inject(fabric, "daemon:self", "state-freed")
    with pytest.raises(BackupFailed, match="crashed"):  # still down: the refused restart changed nothing
        await run_backup(fabric, "IBMA", "ALLUSR", "full")
    assert await faults.inject(fabric, "mediaagent:prod", "restart") == "restarted prodma"
    done = await run_backup(fabric, "IBMA", "ALLUSR", "full")
    assert (await statuses(fabric))[done.job_id] == "completed"
