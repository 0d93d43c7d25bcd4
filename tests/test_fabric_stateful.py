"""Random programs of backups, kills, picks, aux copies, suspends and resumes, and
data-aging runs against a small fabric on the virtual clock. After every step the
fabric's invariants must hold."""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.expect import job_files, restored_files
from tests.helpers import edit_config, open_fabric, write_fabric
from vtlfabric.catalog import queries
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import faults, running
from vtlfabric.jobs.aging import run_data_aging
from vtlfabric.jobs.auxcopy import SUSPENDED, run_copy
from vtlfabric.jobs.backup import BackupFailed, run_backup
from vtlfabric.jobs.restore import RestoreRequest, run_restore
from vtlfabric.vocab import CopyState

COPIES = ("P/dr", "P/vault")
SUBCLIENTS = (("IBMA", "ALLUSR"), ("IBMA", "IFS"), ("IBMB", "ALLUSR"))

VAULT = """
  [[policy.copy]]
  name = "vault"
  kind = "selective"
  frequency = "weekly"
  pick = "last"
  source = "dr"
  library = "dr/VAULT"
  retain_days = 20
  retain_cycles = 1
"""
VAULT_LIBRARY = """
[[library]]
name = "VAULT"
drives = 1
slots = 10
barcodes = "VA0001L8-VA0008L8"
capacity = "2MiB"
block_size = "32KiB"
robot_time = "100ms"
timing = false
"""

steps = st.one_of(
    st.tuples(st.just("backup"), st.sampled_from(SUBCLIENTS), st.sampled_from(["full", "incremental", "differential"])),
    st.tuples(st.just("kill"), st.sampled_from(SUBCLIENTS)),
    st.tuples(st.just("fail"), st.sampled_from(SUBCLIENTS)),
    st.tuples(st.just("pick"), st.integers(1, 30), st.sampled_from(COPIES)),
    st.tuples(st.just("do-not-copy"), st.integers(1, 30), st.sampled_from(COPIES)),
    st.tuples(st.just("auxcopy"), st.sampled_from(COPIES)),
    st.tuples(st.just("suspend-resume"), st.sampled_from(COPIES)),
    st.tuples(st.just("age")),
    st.tuples(st.just("sleep"), st.sampled_from([3600.0, 86400.0, 5 * 86400.0])),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=3, max_size=14))
def test_random_programs_keep_the_invariants(program):
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(_run_program, Path(tmp), program, clock=trio.testing.MockClock(autojump_threshold=0))


async def _run_program(root: Path, program: list[tuple]) -> None:
    path = write_fabric(root / "f", prod={"capacity": "1MiB", "cartridges": 30}, dr={"capacity": "1MiB", "cartridges": 30})
    edit_config(path, "primary = true", "primary = true\nretain_days = 3\nretain_cycles = 1")
    edit_config(path, "streams = 2", "streams = 2\nretain_days = 6\nretain_cycles = 2")
    path.write_text(path.read_text() + VAULT)
    (root / "f" / "dr.toml").write_text((root / "f" / "dr.toml").read_text() + VAULT_LIBRARY)
    async with open_fabric(path) as fabric:
        checked: set[tuple[int, str]] = set()
        for n, step in enumerate(program):
            await _do(fabric, step)
            await _check(fabric, root / f"restore{n}", checked)


async def _do(fabric: Fabric, step: tuple) -> None:
    kind = step[0]
    if kind == "backup":
        (client, sub), job_type = step[1], step[2]
        await run_backup(fabric, client, sub, job_type)
    elif kind == "kill":
        async with trio.open_nursery() as nursery:
            job_id = await nursery.start(_backup_ignoring_failure, fabric, step[1])
            await trio.sleep(0.15)
            running.registry().stop("backup", job_id, running.KILLED)
    elif kind == "fail":
        await faults.inject(fabric, f"client:{step[1][0]}", "fail-backup")
        await _backup_ignoring_failure(fabric, step[1])
    elif kind in ("pick", "do-not-copy"):
        if await fabric.catalog.call(queries.get_job, step[1]) is not None:
            try:
                await fabric.catalog.call(queries.manual_selection, step[1], step[2], kind, "tester", fabric.now())
            except queries.Refused:
                pass
    elif kind == "auxcopy":
        await run_copy(fabric, fabric.config.copy(step[1]), None)
    elif kind == "suspend-resume":
        await _suspend_then_resume(fabric, step[1])
    elif kind == "age":
        await run_data_aging(fabric)
    elif kind == "sleep":
        await trio.sleep(step[1])


async def _backup_ignoring_failure(fabric: Fabric, target: tuple[str, str], task_status=trio.TASK_STATUS_IGNORED) -> None:
    try:
        await run_backup(fabric, target[0], target[1], "full", task_status=task_status)
    except BackupFailed:
        pass


async def _suspend_then_resume(fabric: Fabric, copy_id: str) -> None:
    copy = fabric.config.copy(copy_id)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_copy, fabric, copy, None)
        await trio.sleep(1.0)  # somewhere in the run, or after it
        await fabric.catalog.call(queries.set_suspended, copy_id, True, "tester", fabric.now())
        running.registry().stop("auxcopy", copy_id, SUSPENDED)
    await fabric.catalog.call(queries.set_suspended, copy_id, False, "tester", fabric.now())
    await run_copy(fabric, copy, None)


async def _check(fabric: Fabric, scratch: Path, checked: set[tuple[int, str]]) -> None:
    catalog = fabric.catalog
    jobs = await catalog.call(queries.list_jobs)
    for job in jobs:
        for copy_id, state in job.copies.items():
            row = await catalog.call(queries.job_copy, job.id, copy_id)
            if state != CopyState.AVAILABLE:
                continue
            # No job on a copy it should not be on.
            assert job.valid, f"job {job.id} ({job.status}) is available on {copy_id}"
            rules = fabric.config.copy(copy_id).rules
            manual = row.reason.startswith(("pick", "recopy"))
            if rules.kind == "selective" and not manual:
                assert job.type == "full", f"{job.type} job {job.id} on selective {copy_id} without a pick"
            segments = await catalog.call(queries.segments, job.id, copy_id)
            assert sum(s.length for s in segments) == job.bytes, f"job {job.id} on {copy_id}: copied once, whole"
            # An available job always restores byte-exact.
            if (job.id, copy_id) not in checked:
                dest = scratch / f"{job.id}-{copy_id.replace('/', '_')}"
                await run_restore(fabric, RestoreRequest(job.client, dest, job_id=job.id, copy_id=copy_id))
                want = job_files(fabric.workloads[job.client], job.subclient, job.type, job.generation, job.base_generation)
                assert restored_files(dest) == want, f"job {job.id} from {copy_id}"
                checked.add((job.id, copy_id))
    # No cartridge holds live data while marked scratch.
    live = {(j.id, c) for j in jobs for c, s in j.copies.items() if s != CopyState.AGED}
    holding: dict[str, tuple[int, str]] = {}  # barcode -> a live job copy on it
    for job_id, copy_id in sorted(live):
        for seg in await catalog.call(queries.segments, job_id, copy_id):
            holding.setdefault(seg.barcode, (job_id, copy_id))
    for cart in await catalog.call(queries.cartridges):
        assert not (cart.state == "scratch" and cart.barcode in holding), (
            f"scratch cartridge {cart.barcode} holds job {holding[cart.barcode][0]} on {holding[cart.barcode][1]}"
        )
