"""Promotion of the DR copy when production fails, backups and restores at DR, and fail-back."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.helpers import CLIENTS, RecordingOps, check_every_copy, minutes, open_fabric, site_toml, write_fabric
from vtlfabric.catalog import queries
from vtlfabric.jobs import faults
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.restore import RestoreRequest, run_restore
from vtlfabric.service.commands import Commands, Failed
from vtlfabric.service.operations import Operations
from vtlfabric.service.scheduler import Scheduler

PRIMARY, DR = "P/primary", "P/dr"


async def test_promote_back_up_at_dr_and_fail_back(fabric, tmp_path, autojump_clock):
    async with trio.open_nursery() as nursery:
        ctl = Commands(fabric, Operations(nursery), trio.current_time())
        await run_backup(fabric, "IBMA", "ALLUSR", "full")
        await run_backup(fabric, "IBMB", None, "full")
        await run_auxcopy(fabric)
        await trio.sleep(3 * 3600)
        lost = await run_backup(fabric, "IBMB", None, "incremental")  # never reaches DR before the disaster

        with pytest.raises(Failed, match=r"loses 1 job.*--yes"):
            await ctl.cmd_promote({"copy": DR})  # production still works: only a report
        assert fabric.primary_of("P").id == PRIMARY

        await faults.inject(fabric, "library:prod/PVTL", "offline")  # the disaster
        promoted = await ctl.cmd_promote({"copy": DR, "who": "ops"})  # at once: the old primary is down
        assert promoted["promoted"] and promoted["lost_jobs"] == [lost.job_id] and "offline" in promoted["old_primary_state"]
        assert fabric.primary_of("P").id == DR and fabric.inoperative(fabric.copy(PRIMARY))

        # Operations go on at DR; out of sync, so each subclient's next backup is a full.
        at_dr = await run_backup(fabric, "IBMB", None, "incremental")
        assert at_dr.type == "full"
        segs = await fabric.catalog.call(queries.segments, at_dr.job_id, DR)
        assert segs and all(s.barcode.startswith("DR") for s in segs), "written to the new primary's library"
        again = await run_backup(fabric, "IBMB", None, "incremental")
        assert again.type == "incremental", "one full is enough"
        assert (await run_backup(fabric, "IBMA", "IFS", "incremental")).type == "full"
        aux = await run_auxcopy(fabric, PRIMARY)
        assert aux.copies[0].status == "inoperative", "nothing goes to a broken copy"
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "dr-latest", site="dr"))

        # Repair production, bring it up to date, promote it back.
        with pytest.raises(Failed, match="offline"):
            await ctl.cmd_repair({"copy": PRIMARY})
        await faults.inject(fabric, "library:prod/PVTL", "online")
        await ctl.cmd_repair({"copy": PRIMARY})
        back = await run_auxcopy(fabric, PRIMARY)
        assert back.status == "completed" and back.jobs_copied == 3
        failback = await ctl.cmd_promote({"copy": PRIMARY, "yes": True})
        assert failback["lost_jobs"] == [], "production holds everything again"
        await ctl.cmd_repair({"copy": DR})
        assert fabric.primary_of("P").id == PRIMARY
        assert (await run_auxcopy(fabric, DR)).jobs_copied == 1, "the job lost at DR is copied there at last"

        jobs = await fabric.catalog.call(queries.list_jobs)
        assert all(j.copies == {PRIMARY: "available", DR: "available"} for j in jobs if j.valid)
        assert await check_every_copy(fabric, tmp_path / "all") == 2 * len(jobs)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "target, fault, cured, why",
    [
        ("library:prod/PVTL", "offline", "online", "library prod/PVTL is offline"),
        ("mediaagent:prod", "unreachable", "reachable", "MediaAgent of prod/PVTL is unreachable"),
        ("link:wan", "partition", "heal", "WAN to site prod is partitioned"),
        ("cartridge:PR0001L8", "fail", "repair", "cartridge PR0001L8 has failed"),
    ],
)
async def test_each_fault_makes_the_primary_inoperative_so_promotion_proceeds_at_once(
    fabric, target, fault, cured, why, autojump_clock
):
    async with trio.open_nursery() as nursery:
        ctl = Commands(fabric, Operations(nursery), trio.current_time())
        await run_backup(fabric, "IBMB", None, "full")  # on PR0001L8
        primary = fabric.copy(PRIMARY)
        assert fabric.inoperative(primary) == ""
        await ctl.cmd_fault({"target": target, "action": fault})
        assert why in fabric.inoperative(primary)
        assert [c["inoperative"] for c in await ctl.cmd_copies({}) if c["id"] == PRIMARY] == [fabric.inoperative(primary)]
        promoted = await ctl.cmd_promote({"copy": DR})  # no --yes needed: production is down
        assert why in promoted["old_primary_state"] and promoted["lost_jobs"]
        with pytest.raises(Failed, match="clear that first"):
            await ctl.cmd_repair({"copy": PRIMARY})
        await ctl.cmd_fault({"target": target, "action": cured})
        await ctl.cmd_repair({"copy": PRIMARY})
        assert fabric.inoperative(fabric.copy(PRIMARY)) == ""
        nursery.cancel_scope.cancel()


async def test_a_failed_cartridge_fails_reads_and_is_never_written_again(fabric, tmp_path, autojump_clock):
    first = await run_backup(fabric, "IBMB", None, "full")
    await faults.inject(fabric, "cartridge:PR0001L8", "fail")
    with pytest.raises(Exception, match="PR0001L8 in prod/PVTL has failed"):
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "r", job_id=first.job_id))
    second = await run_backup(fabric, "IBMA", "IFS", "full")
    assert all(s.barcode != "PR0001L8" for s in await fabric.catalog.call(queries.segments, second.job_id, PRIMARY))
    with pytest.raises(faults.FaultError, match="no cartridge"):
        await faults.inject(fabric, "cartridge:NOPE01", "fail")


def three_sites(root: Path, *, dr_to_dr2: bool) -> Path:
    root.mkdir(parents=True)
    (root / "prod.toml").write_text(site_toml("prod", "prodma", "PVTL", "PR", clients=CLIENTS))
    (root / "dr.toml").write_text(site_toml("dr", "drma", "DVTL", "DR"))
    (root / "dr2.toml").write_text(site_toml("dr2", "dr2ma", "EVTL", "EE"))
    links = [("prod", "dr"), ("prod", "dr2")] + ([("dr", "dr2")] if dr_to_dr2 else [])
    text = 'sites = ["prod.toml", "dr.toml", "dr2.toml"]\n[daemon]\nstate_dir = "state"\nseed = 3\n'
    for a, b in links:
        text += f'[[link]]\nname = "{a}-{b}"\nsites = ["{a}", "{b}"]\nbandwidth = "50MB"\nlatency = "10ms"\n'
    text += '[[policy]]\nname = "P"\nclients = ["IBMA", "IBMB"]\n'
    for name, lib in (("primary", "prod/PVTL"), ("dr", "dr/DVTL"), ("dr2", "dr2/EVTL")):
        text += f'[[policy.copy]]\nname = "{name}"\nlibrary = "{lib}"\n' + ("primary = true\n" if name == "primary" else "")
    path = root / "fabric.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("dr_to_dr2", [True, False])
async def test_copies_fed_by_the_primary_follow_a_promotion_where_the_wan_reaches(tmp_path, dr_to_dr2, autojump_clock):
    async with open_fabric(three_sites(tmp_path / "f", dr_to_dr2=dr_to_dr2)) as fabric, trio.open_nursery() as nursery:
        ctl = Commands(fabric, Operations(nursery), trio.current_time())
        await run_backup(fabric, "IBMB", None, "full")
        await run_auxcopy(fabric)
        await ctl.cmd_fault({"target": "library:prod/PVTL", "action": "offline"})
        await ctl.cmd_promote({"copy": DR})
        at_dr = await run_backup(fabric, "IBMB", None, "incremental")
        dr2 = fabric.copy("P/dr2")
        if dr_to_dr2:
            assert dr2.source == "dr"
            assert (await run_auxcopy(fabric, "P/dr2")).jobs_copied == 1
            job = await fabric.catalog.call(queries.get_job, at_dr.job_id)
            assert job.copies["P/dr2"] == "available"
        else:
            assert dr2.source == "primary", "no WAN from dr to dr2: it waits for the old primary"
            assert (await run_auxcopy(fabric, "P/dr2")).copies[0].status == "inoperative"
        await ctl.cmd_fault({"target": "library:prod/PVTL", "action": "online"})
        await ctl.cmd_repair({"copy": PRIMARY})
        await run_auxcopy(fabric, PRIMARY)
        await ctl.cmd_promote({"copy": PRIMARY, "yes": True})
        assert fabric.copy("P/dr2").source == "primary" and fabric.copy("P/dr").source == "primary"
        nursery.cancel_scope.cancel()


async def test_a_backup_running_when_a_promotion_starts_finishes_first_and_is_counted(fabric, autojump_clock):
    async with trio.open_nursery() as nursery:
        ctl = Commands(fabric, Operations(nursery), trio.current_time())
        await run_backup(fabric, "IBMB", None, "full")
        await run_auxcopy(fabric)
        running = await nursery.start(run_backup, fabric, "IBMA", "ALLUSR", "full")
        promoted = await ctl.cmd_promote({"copy": DR, "yes": True})
        job = await fabric.catalog.call(queries.get_job, running)
        assert job.status == "completed" and job.copies == {PRIMARY: "available"}, "finished on the old primary"
        assert promoted["lost_jobs"] == [running], "and the promotion counted it"
        after = await run_backup(fabric, "IBMA", "ALLUSR", "incremental")
        assert after.type == "full" and (await fabric.catalog.call(queries.get_job, after.job_id)).copies == {DR: "available"}
        nursery.cancel_scope.cancel()


async def test_a_planned_promotion_catches_up_first_and_loses_nothing(fabric, autojump_clock):
    async with trio.open_nursery() as nursery:
        ctl = Commands(fabric, Operations(nursery), trio.current_time())
        await run_backup(fabric, "IBMB", None, "full")
        late = await run_backup(fabric, "IBMA", "IFS", "full")  # not on DR yet
        promoted = await ctl.cmd_promote({"copy": DR, "planned": True})
        assert promoted["caught_up"] == 2 and promoted["lost_jobs"] == []
        assert (await fabric.catalog.call(queries.get_job, late.job_id)).copies[DR] == "available"
        assert (await run_backup(fabric, "IBMA", "IFS", "incremental")).type == "incremental", "in sync: no full forced"
        await ctl.cmd_repair({"copy": PRIMARY})
        await ctl.cmd_fault({"target": "link:wan", "action": "partition"})
        with pytest.raises(Failed, match="does not hold jobs"):
            await ctl.cmd_promote({"copy": PRIMARY, "planned": True})  # it cannot catch up over a cut WAN
        assert fabric.primary_of("P").id == DR, "a refused planned promotion changes nothing"
        nursery.cancel_scope.cancel()


async def test_an_aux_copy_schedule_naming_a_promoted_copy_runs_the_old_primary_instead(tmp_path, mock_clock):
    schedule = '\n[[schedule]]\nname = "copies"\nauxcopy = ["P/dr"]\nstart = "1m"\nevery = "10m"\n'
    async with open_fabric(write_fabric(tmp_path / "f", schedules=schedule)) as fabric, trio.open_nursery() as nursery:
        ops = RecordingOps()
        await nursery.start(Scheduler(fabric, ops).run)
        await minutes(mock_clock, 2)
        await faults.inject(fabric, "library:prod/PVTL", "offline")
        await Commands(fabric, Operations(nursery), trio.current_time()).cmd_promote({"copy": DR})
        await minutes(mock_clock, 10)
        # P/dr is primary now, with nothing to copy into it; P/primary, fed from it, is copied instead.
        assert ops.started == [(1, DR), (11, PRIMARY)]
        nursery.cancel_scope.cancel()
