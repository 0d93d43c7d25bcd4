"""DR drills (check mode): restore and verify every client at DR alone, touching nothing in production."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
import trio

from tests.helpers import check_every_copy
from vtlfabric.catalog import queries
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.drill import DrillRunning, run_drill
from vtlfabric.tojson import jsonable


def production_state(fabric) -> tuple:
    """Everything of production a drill must not touch: catalog rows of the primary, cartridge bytes."""
    db = sqlite3.connect(fabric.catalog.path)
    rows = (
        db.execute("SELECT * FROM jobs ORDER BY id").fetchall(),
        db.execute("SELECT * FROM job_copies WHERE copy_id = 'P/primary' ORDER BY job_id").fetchall(),
        db.execute("SELECT * FROM segments WHERE copy_id = 'P/primary' ORDER BY job_id, seq").fetchall(),
        db.execute("SELECT * FROM cartridges WHERE library = 'prod/PVTL' ORDER BY barcode").fetchall(),
    )
    root = fabric.libraries["prod/PVTL"].root
    images = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob("*.aws"))}
    return rows, images


async def test_a_check_drill_restores_every_client_at_dr_and_touches_no_production_state(fabric, autojump_clock):
    await run_backup(fabric, "IBMA", "ALLUSR", "full")
    await run_backup(fabric, "IBMA", "IFS", "full")
    await run_backup(fabric, "IBMB", None, "full")
    await run_auxcopy(fabric)
    await trio.sleep(3600)
    late = await run_backup(fabric, "IBMB", None, "incremental")  # not at DR yet: IBMB's RPO
    await trio.sleep(600)
    before = production_state(fabric)
    report = await run_drill(fabric, "check", "test")
    assert production_state(fabric) == before
    assert report.passed and report.objects_verified > 0 and report.bytes_verified > 0
    clients = {c.client: c for c in report.clients}
    assert set(clients) == {"IBMA", "IBMB"} and all(c.site == "dr" and c.passed for c in clients.values())
    assert clients["IBMA"].rpo == 0
    job = await fabric.catalog.call(queries.get_job, late.job_id)
    assert clients["IBMB"].rpo == pytest.approx(fabric.now() - job.started, abs=5)
    assert all(c.rto > 0 for c in clients.values())
    drills = fabric.config.daemon.state_dir / "drills"
    assert json.loads((drills / f"{report.id}.json").read_text()) == jsonable(report)
    assert "passed" in (drills / f"{report.id}.txt").read_text()
    assert not (drills / f"{report.id}.restore").exists(), "the scratch restore is cleaned up"
    [row] = await fabric.catalog.call(queries.drills)
    assert row["status"] == "passed" and row["report"].endswith(f"{report.id}.json")


async def test_a_corrupted_dr_cartridge_fails_the_drill_naming_client_and_object(fabric, autojump_clock):
    await run_backup(fabric, "IBMB", None, "full")
    await run_backup(fabric, "IBMA", "IFS", "full")
    await run_auxcopy(fabric)
    segs = await fabric.catalog.call(queries.segments, 1, "P/dr")
    image = fabric.libraries["dr/DVTL"].image_path(segs[0].barcode)
    raw = bytearray(image.read_bytes())
    raw[len(raw) // 3] ^= 0x01
    image.write_bytes(bytes(raw))
    report = await run_drill(fabric, "check", "test")
    assert not report.passed and "FAILED" in report.summary
    clients = {c.client: c for c in report.clients}
    assert not clients["IBMB"].passed and "ALLUSR:/QSYS.LIB/GL.LIB/OBJ" in clients["IBMB"].failure
    assert clients["IBMA"].passed, "one client's bad media fails that client only"


async def test_drills_never_overlap(fabric, autojump_clock):
    await run_backup(fabric, "IBMB", None, "full")
    await run_auxcopy(fabric)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_drill, fabric, "check", "first")
        await trio.sleep(0.01)
        with pytest.raises(DrillRunning):
            await run_drill(fabric, "check", "second")
    assert len(await fabric.catalog.call(queries.drills)) == 1


async def test_a_failover_drill_promotes_backs_up_restores_and_fails_back(fabric, tmp_path, autojump_clock):
    await run_backup(fabric, "IBMA", "ALLUSR", "full")
    await run_backup(fabric, "IBMB", None, "full")
    await run_auxcopy(fabric)
    await trio.sleep(3600)
    late = await run_backup(fabric, "IBMB", None, "incremental")  # the drill's sync step copies it first
    await trio.sleep(600)
    report = await run_drill(fabric, "failover", "test")
    assert report.passed, report.summary
    assert [s.step for s in report.steps] == ["promote", "repair", "fail back", "repair"]
    assert "1 job(s) copied to P/dr first" in report.steps[0].detail, "a planned failover is brought in sync first"
    clients = {c.client: c for c in report.clients}
    assert set(clients) == {"IBMA", "IBMB"} and all(c.passed and c.site == "dr" and c.jobs for c in clients.values())
    assert clients["IBMB"].rpo >= 600 and clients["IBMA"].rpo == 0

    # Failed back: production is primary and usable, DR is usable, and each drill backup
    # (written at DR while it was primary) is on both copies.
    assert fabric.primary_of("P").id == "P/primary"
    assert not fabric.inoperative(fabric.copy("P/primary")) and not fabric.inoperative(fabric.copy("P/dr"))
    drill_jobs = [j for c in clients.values() for j in c.jobs]
    assert len(drill_jobs) == 2 and late.job_id not in drill_jobs
    for job_id in drill_jobs:
        job = await fabric.catalog.call(queries.get_job, job_id)
        assert job.copies == {"P/primary": "available", "P/dr": "available"}
        assert all(s.barcode.startswith("DR") for s in await fabric.catalog.call(queries.segments, job_id, "P/dr"))
    await check_every_copy(fabric, tmp_path / "all")
    after = await run_backup(fabric, "IBMB", None, "incremental")
    assert after.type == "incremental", "a lossless failover forces no full"
    assert all(s.barcode.startswith("PR") for s in await fabric.catalog.call(queries.segments, after.job_id, "P/primary"))


async def test_a_failover_drill_refuses_while_the_primary_is_down(fabric, autojump_clock):
    from vtlfabric.jobs import faults

    await run_backup(fabric, "IBMB", None, "full")
    await faults.inject(fabric, "mediaagent:prod", "unreachable")
    report = await run_drill(fabric, "failover", "test")
    assert not report.passed and "disaster, not a drill" in report.steps[0].detail
    assert fabric.primary_of("P").id == "P/primary", "nothing was promoted"
