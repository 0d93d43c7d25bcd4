"""`ctl restore --site S` without --copy: the fabric chooses the policy's copy at that site."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.expect import expected_files, restored_files
from tests.helpers import VAULT_LIBRARY, open_fabric, write_fabric
from vtlfabric.catalog import queries
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import faults
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import BackupResult, run_backup
from vtlfabric.jobs.restore import RestoreError, RestoreRequest, run_restore

DR, VAULT = "P/dr", "P/vault"

# A second copy at the DR site (helpers.VAULT_LIBRARY): a selective vault fed from the DR copy, holding fulls only.
VAULT_COPY = """
  [[policy.copy]]
  name = "vault"
  kind = "selective"
  frequency = "all"
  source = "dr"
  library = "dr/VAULT"
"""


@pytest.fixture
async def fabric(tmp_path: Path) -> AsyncIterator[Fabric]:
    path = write_fabric(tmp_path / "fabric")
    (path.parent / "dr.toml").write_text((path.parent / "dr.toml").read_text() + VAULT_LIBRARY)
    path.write_text(path.read_text() + VAULT_COPY)
    async with open_fabric(path) as fab:
        yield fab


async def generation(fabric: Fabric, job_id: int) -> int:
    return (await fabric.catalog.call(queries.get_job, job_id)).generation


async def full_and_incremental_everywhere(fabric: Fabric) -> tuple[BackupResult, BackupResult]:
    """IBMA's ALLUSR: a full and an incremental, copied to DR; the vault takes the full."""
    full = await run_backup(fabric, "IBMA", "ALLUSR", "full")
    await trio.sleep(3 * 3600)  # the workload changes hourly
    incr = await run_backup(fabric, "IBMA", "ALLUSR", "incremental")
    assert (await run_auxcopy(fabric)).status == "completed"
    jobs = {j.id: j for j in await fabric.catalog.call(queries.list_jobs, "IBMA")}
    assert jobs[full.job_id].copies == {"P/primary": "available", DR: "available", VAULT: "available"}
    assert jobs[incr.job_id].copies == {"P/primary": "available", DR: "available"}, "the vault holds fulls only"
    return full, incr


async def test_site_alone_restores_the_latest_point_from_the_dr_copy(fabric, tmp_path, autojump_clock):
    full, incr = await full_and_incremental_everywhere(fabric)
    await faults.inject(fabric, "library:prod/PVTL", "offline")  # nothing may come from production

    dest = tmp_path / "latest"
    done = await run_restore(fabric, RestoreRequest("IBMA", dest, site="dr"))
    assert (done.copy, done.site) == (DR, "dr"), "the DR copy rebuilds a newer point than the vault"
    assert done.jobs == (full.job_id, incr.job_id)
    assert restored_files(dest) == expected_files(fabric, "IBMA", {"ALLUSR": await generation(fabric, incr.job_id)})

    both = await run_restore(fabric, RestoreRequest("IBMA", tmp_path / "job", job_id=full.job_id, site="dr"))
    assert both.copy == DR, "both copies at dr hold the full: the synchronous one is preferred"


async def test_site_alone_takes_the_copy_that_holds_what_is_asked(fabric, tmp_path, autojump_clock):
    full, _ = await full_and_incremental_everywhere(fabric)
    await fabric.catalog.call(queries.manual_selection, full.job_id, DR, "mark-bad", "test", fabric.now())

    job = await run_restore(fabric, RestoreRequest("IBMA", tmp_path / "job", job_id=full.job_id, site="dr"))
    assert job.copy == VAULT, "only the vault still holds the full at dr"
    latest = await run_restore(fabric, RestoreRequest("IBMA", tmp_path / "latest", site="dr"))
    assert (latest.copy, latest.jobs) == (VAULT, (full.job_id,)), "the DR copy cannot rebuild anything without its full"
    assert restored_files(tmp_path / "latest") == expected_files(
        fabric, "IBMA", {"ALLUSR": await generation(fabric, full.job_id)}
    )

    await trio.sleep(3 * 3600)
    later = await run_backup(fabric, "IBMA", "ALLUSR", "incremental")  # not copied yet
    with pytest.raises(
        RestoreError, match=rf"job {later.job_id} is not available on any copy at site dr \(P/dr: none; P/vault: none\)"
    ):
        await run_restore(fabric, RestoreRequest("IBMA", tmp_path / "none", job_id=later.job_id, site="dr"))


async def test_site_alone_prefers_a_copy_whose_library_works(fabric, tmp_path, autojump_clock):
    full, _ = await full_and_incremental_everywhere(fabric)
    await faults.inject(fabric, "library:dr/DVTL", "offline")
    done = await run_restore(fabric, RestoreRequest("IBMA", tmp_path / "out", site="dr"))
    assert (done.copy, done.jobs) == (VAULT, (full.job_id,))


async def test_site_errors_name_the_site_and_the_copies(fabric, tmp_path, autojump_clock):
    await full_and_incremental_everywhere(fabric)
    with pytest.raises(RestoreError, match=r"no copy at site dr2 \(its copies: P/primary at prod, P/dr at dr, P/vault at dr\)"):
        await run_restore(fabric, RestoreRequest("IBMA", tmp_path / "a", site="dr2"))
    with pytest.raises(RestoreError, match="copy P/dr keeps its media at site dr, not prod"):
        await run_restore(fabric, RestoreRequest("IBMA", tmp_path / "b", copy_id=DR, site="prod"))
    with pytest.raises(RestoreError, match=r"IBMB has no valid full backup available on any copy at site dr \(P/dr, P/vault\)"):
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "c", site="dr"))
