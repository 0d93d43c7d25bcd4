"""Promotion of the DR copy when production fails, backups and restores at DR, and fail-back."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.expect import job_files, restored_files
from vtlfabric.catalog import queries
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.restore import RestoreRequest, run_restore
from vtlfabric.service.commands import Commands, Failed
from vtlfabric.service.operations import Operations
from vtlfabric.sim import faults

PRIMARY, DR = "P/primary", "P/dr"


async def check_every_copy(fabric: Fabric, root: Path) -> int:
    """Every job restores byte-exact from every copy that holds it."""
    checked = 0
    for job in await fabric.catalog.call(queries.list_jobs):
        for copy_id, state in job.copies.items():
            if state != queries.AVAILABLE:
                continue
            dest = root / f"{job.id}-{copy_id.replace('/', '_')}"
            await run_restore(fabric, RestoreRequest(job.client, dest, job_id=job.id, copy_id=copy_id))
            want = job_files(fabric.workloads[job.client], job.subclient, job.type, job.generation, job.base_generation)
            assert restored_files(dest) == want, f"job {job.id} from {copy_id}"
            checked += 1
    return checked


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

        faults.inject(fabric, "library:prod/PVTL", "offline")  # the disaster
        promoted = await ctl.cmd_promote({"copy": DR, "who": "ops"})  # at once: the old primary is down
        assert promoted["promoted"] and promoted["lost_jobs"] == [lost["job_id"]] and "offline" in promoted["old_primary_state"]
        assert fabric.primary_of("P").id == DR and fabric.inoperative(fabric.copy(PRIMARY))

        # Operations go on at DR; out of sync, so each subclient's next backup is a full.
        at_dr = await run_backup(fabric, "IBMB", None, "incremental")
        assert at_dr["type"] == "full"
        segs = await fabric.catalog.call(queries.segments, at_dr["job_id"], DR)
        assert segs and all(s.barcode.startswith("DR") for s in segs), "written to the new primary's library"
        again = await run_backup(fabric, "IBMB", None, "incremental")
        assert again["type"] == "incremental", "one full is enough"
        assert (await run_backup(fabric, "IBMA", "IFS", "incremental"))["type"] == "full"
        aux = await run_auxcopy(fabric, PRIMARY)
        assert aux["copies"][0]["status"] == "inoperative", "nothing goes to a broken copy"
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "dr-latest", site="dr"))

        # Repair production, bring it up to date, promote it back.
        with pytest.raises(Failed, match="offline"):
            await ctl.cmd_repair({"copy": PRIMARY})
        faults.inject(fabric, "library:prod/PVTL", "online")
        await ctl.cmd_repair({"copy": PRIMARY})
        back = await run_auxcopy(fabric, PRIMARY)
        assert back["status"] == "completed" and back["jobs_copied"] == 3
        failback = await ctl.cmd_promote({"copy": PRIMARY, "yes": True})
        assert failback["lost_jobs"] == [], "production holds everything again"
        await ctl.cmd_repair({"copy": DR})
        assert fabric.primary_of("P").id == PRIMARY
        assert (await run_auxcopy(fabric, DR))["jobs_copied"] == 1, "the job lost at DR is copied there at last"

        jobs = await fabric.catalog.call(queries.list_jobs)
        assert all(j.copies == {PRIMARY: "available", DR: "available"} for j in jobs if j.valid)
        assert await check_every_copy(fabric, tmp_path / "all") == 2 * len(jobs)
        nursery.cancel_scope.cancel()
