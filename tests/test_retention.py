"""Retention and data aging: the rule as hypothesis properties, then a whole fabric."""

from __future__ import annotations

import trio
from hypothesis import given
from hypothesis import strategies as st

from tests.expect import expected_files, restored_files
from tests.helpers import edit_config, open_fabric, write_fabric
from vtlfabric.catalog import queries
from vtlfabric.catalog.records import JobRecord
from vtlfabric.config import CopySpec
from vtlfabric.jobs.aging import AgedJob, run_data_aging
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.restore import RestoreRequest, run_restore
from vtlfabric.jobs.retention import DAY, cycles, to_age
from vtlfabric.vocab import PENDING_STATES, CopyState

A, B = "P/primary", "P/dr"


@st.composite
def histories(draw):
    jobs, t = [], 0.0
    for i in range(1, draw(st.integers(0, 30)) + 1):
        t += draw(st.floats(0.1, 3.0)) * DAY
        held = {A: CopyState.AVAILABLE} if draw(st.integers(0, 9)) else {}
        on_dr = draw(st.sampled_from([None, CopyState.AVAILABLE, CopyState.AVAILABLE, *PENDING_STATES]))
        if on_dr:
            held[B] = on_dr
        kind = draw(st.sampled_from(["full", "incremental", "incremental", "differential"]))
        jobs.append(
            JobRecord(
                i, "C", draw(st.sampled_from(["X", "Y"])), "P", kind, kind, "completed", "", 1, None, t, t + 60, 1, 1, "d", held
            )
        )
    return jobs, t


def copy(name: str, days: float, cycles_: int) -> CopySpec:
    source = None if name == "primary" else "primary"
    return CopySpec("P", name, name == "primary", "l/l", source, "synchronous", 1, retain_days=days, retain_cycles=cycles_)


retention = st.tuples(st.sampled_from([0.0, 1.0, 5.0]), st.integers(0, 3))


@given(histories(), retention, retention, st.floats(0, 20 * DAY))
def test_whole_cycles_age_only_past_both_limits(history, ra, rb, later):
    jobs, last = history
    now = last + later
    copies = [copy("primary", *ra), copy("dr", *rb)]
    aged = set(to_age(jobs, copies, now))
    for spec in copies:
        held = [j for j in jobs if j.copies.get(spec.id) == CopyState.AVAILABLE]
        for sub in {"X", "Y"}:
            cuts = cycles(j for j in held if j.subclient == sub)
            for age, cycle in enumerate(reversed(cuts)):
                states = {(j.id, spec.id) in aged for j in cycle}
                assert len(states) == 1, "a cycle ages whole"
                if True in states:
                    assert spec.retain_days or spec.retain_cycles, "no retention set: keep everything"
                    assert age >= spec.retain_cycles
                    assert now - max(j.ended for j in cycle) >= spec.retain_days * DAY
                    if age == 0:
                        assert all(any(s == CopyState.AVAILABLE for c, s in j.copies.items() if c != spec.id) for j in cycle), (
                            "the newest cycle is never aged from the only copy holding it"
                        )
                    if spec.id == A:  # DR is a synchronous copy of it: aged from A once DR has it
                        assert all(j.copies.get(B) == CopyState.AVAILABLE for j in cycle), (
                            "a job the DR copy has yet to copy is never aged from its source"
                        )


async def test_data_aging_ages_old_cycles_and_recycles_their_cartridges(tmp_path, autojump_clock):
    path = write_fabric(
        tmp_path / "f", prod={"capacity": "512KiB", "cartridges": 20}, dr={"capacity": "512KiB", "cartridges": 20}
    )
    edit_config(path, "primary = true", "primary = true\nretain_days = 1\nretain_cycles = 1")
    edit_config(path, "streams = 2", "streams = 2\nretain_days = 3\nretain_cycles = 2")
    async with open_fabric(path) as fabric:
        fulls = []
        for _ in range(3):  # three weekly cycles: a full and an incremental each
            fulls.append((await run_backup(fabric, "IBMB", None, "full")).job_id)
            await trio.sleep(DAY)
            await run_backup(fabric, "IBMB", None, "incremental")
            await run_auxcopy(fabric)
            await trio.sleep(6 * DAY)
        scratch_before = sum(c.state == "scratch" for c in await fabric.catalog.call(queries.cartridges, "prod/PVTL"))
        result = await run_data_aging(fabric)
        jobs = {j.id: j for j in await fabric.catalog.call(queries.list_jobs)}
        on_primary = sorted(j for j, job in jobs.items() if job.copies["P/primary"] == "aged")
        on_dr = sorted(j for j, job in jobs.items() if job.copies["P/dr"] == "aged")
        assert on_primary == [fulls[0], fulls[0] + 1, fulls[1], fulls[1] + 1], "all but the newest cycle"
        assert on_dr == [fulls[0], fulls[0] + 1], "the DR copy keeps two cycles"
        assert result.cartridges, "cartridges that held only aged data are scratch again"
        carts = await fabric.catalog.call(queries.cartridges, "prod/PVTL")
        assert sum(c.state == "scratch" for c in carts) > scratch_before
        live = [s.barcode for j in jobs for c in (A, B) for s in await fabric.catalog.call(queries.segments, j, c)]
        assert not set(result.cartridges) & set(live), "no recycled cartridge is still referenced"
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "dr", copy_id=B))
        gen = jobs[fulls[2] + 1].generation
        assert restored_files(tmp_path / "dr") == expected_files(fabric, "IBMB", {"ALLUSR": gen})
        again = await run_backup(fabric, "IBMB", None, "full")  # recycled cartridges take new data
        await run_restore(fabric, RestoreRequest("IBMB", tmp_path / "new", job_id=again.job_id))
        gen = (await fabric.catalog.call(queries.get_job, again.job_id)).generation
        assert restored_files(tmp_path / "new") == expected_files(fabric, "IBMB", {"ALLUSR": gen})
        later = await run_data_aging(fabric)  # a new full: the cycle before it is past both limits now
        assert later.aged == (AgedJob(fulls[2], A), AgedJob(fulls[2] + 1, A))
