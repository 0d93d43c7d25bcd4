"""The catalog: WAL, versioned schema, one transaction per change."""

from __future__ import annotations

import sqlite3

import pytest

from vtlfabric.catalog import queries
from vtlfabric.catalog.db import Catalog
from vtlfabric.catalog.records import CopyRecord
from vtlfabric.catalog.schema import MIGRATIONS

COPIES = [CopyRecord("P/primary", "P", "prod/L", None, True), CopyRecord("P/dr", "P", "dr/L", "P/primary", False)]


async def new_job(catalog: Catalog, status: str = "completed") -> int:
    job_id = await catalog.call(
        lambda c: queries.create_job(
            c,
            client="C",
            subclient="S",
            policy="P",
            job_type="full",
            requested_type="full",
            generation=1,
            base_generation=None,
            now=10.0,
        )
    )
    if status != "running":
        await catalog.call(
            lambda c: queries.finish_job(
                c, job_id, status=status, reason="", now=20.0, objects=1, nbytes=100, digest="d", primary="P/primary"
            )
        )
        await catalog.call(queries.register_jobs, "P/dr", [job_id] if status == "completed" else [], "rule", 20.0)
    return job_id


@pytest.fixture
async def catalog(tmp_path):
    cat = await Catalog.open(tmp_path / "catalog.db")
    await cat.call(queries.sync_copies, COPIES)
    yield cat
    await cat.aclose()


async def test_wal_and_schema_version(catalog, tmp_path):
    conn = sqlite3.connect(tmp_path / "catalog.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    again = await Catalog.open(tmp_path / "catalog.db")  # migrating twice is a no-op
    await again.aclose()


async def test_only_a_completed_job_is_available_on_the_primary(catalog):
    ok, failed, killed = await new_job(catalog), await new_job(catalog, "failed"), await new_job(catalog, "killed")
    jobs = {j.id: j for j in await catalog.call(queries.list_jobs)}
    assert jobs[ok].copies == {"P/primary": "available", "P/dr": "to_be_copied"}
    assert jobs[failed].copies == {} and jobs[killed].copies == {}


async def test_interrupted_jobs_fail_on_recovery(catalog):
    running = await new_job(catalog, "running")
    assert await catalog.call(queries.fail_interrupted_jobs, 30.0, "crash") == [running]
    job = await catalog.call(queries.get_job, running)
    assert job.status == "failed" and job.reason == "crash" and not job.valid


async def test_a_checkpoint_commits_segment_cartridge_and_progress_together(catalog):
    job_id = await new_job(catalog)
    await catalog.call(queries.add_cartridges, "dr/L", ["DR0001L8"])
    cart = await catalog.call(queries.claim_cartridge, "dr/L", "P/dr", ())
    seq = await catalog.call(queries.open_segment, job_id, "P/dr", cart.barcode, 1, 0, 80)
    with pytest.raises(ZeroDivisionError):  # a failure inside the transaction changes nothing
        await catalog.call(
            lambda c: (
                queries.checkpoint(
                    c,
                    job_id=job_id,
                    copy_id="P/dr",
                    seq=seq,
                    length=50,
                    blocks=1,
                    barcode=cart.barcode,
                    eod=200,
                    bytes_done=50,
                    now=1.0,
                ),
                1 / 0,
            )
        )
    assert (await catalog.call(queries.job_copy, job_id, "P/dr")).bytes_done == 0
    await catalog.call(
        lambda c: queries.checkpoint(
            c, job_id=job_id, copy_id="P/dr", seq=seq, length=50, blocks=1, barcode=cart.barcode, eod=200, bytes_done=50, now=1.0
        )
    )
    row = await catalog.call(queries.job_copy, job_id, "P/dr")
    assert (row.state, row.bytes_done) == ("partially_copied", 50)
    assert (await catalog.call(queries.cartridges, "dr/L"))[0].eod == 200
    await catalog.call(queries.reset_job_copy, job_id, "P/dr", "digest mismatch", 2.0)
    row = await catalog.call(queries.job_copy, job_id, "P/dr")
    assert (row.state, row.bytes_done) == ("to_be_copied", 0)
    assert await catalog.call(queries.segments, job_id, "P/dr") == []


async def test_claim_skips_busy_and_other_copies_cartridges(catalog):
    await catalog.call(queries.add_cartridges, "dr/L", ["A", "B", "C"])
    a = await catalog.call(queries.claim_cartridge, "dr/L", "P/dr", ())
    b = await catalog.call(queries.claim_cartridge, "dr/L", "P/dr", (a.barcode,))
    assert a.barcode != b.barcode
    c = await catalog.call(queries.claim_cartridge, "dr/L", "P/other", (a.barcode, b.barcode))
    assert c.barcode == "C"
    assert await catalog.call(queries.claim_cartridge, "dr/L", "P/other", ("C",)) is None


async def test_manual_choices_are_recorded_with_who_and_when(catalog):
    job_id = await new_job(catalog)
    assert await catalog.call(queries.manual_selection, job_id, "P/dr", "do-not-copy", "alice", 30.0) == "do_not_copy"
    await catalog.call(queries.register_jobs, "P/dr", [job_id], "rule", 31.0)  # the rules never overrule it
    assert (await catalog.call(queries.job_copy, job_id, "P/dr")).state == "do_not_copy"
    assert await catalog.call(queries.manual_selection, job_id, "P/dr", "pick", "bob", 32.0) == "to_be_copied"
    with pytest.raises(queries.Refused, match="already"):
        await catalog.call(queries.manual_selection, job_id, "P/dr", "pick", "bob", 33.0)
    failed = await new_job(catalog, "failed")
    with pytest.raises(queries.Refused, match="failed"):
        await catalog.call(queries.manual_selection, failed, "P/dr", "pick", "bob", 34.0)
    rows = (
        sqlite3.connect(catalog.path)
        .execute("SELECT time, event, detail FROM history WHERE job_id = ? AND event LIKE 'copy.%' ORDER BY id", (job_id,))
        .fetchall()
    )
    assert [(t, e) for t, e, _ in rows] == [(20.0, "copy.to_be_copied"), (30.0, "copy.do_not_copy"), (32.0, "copy.to_be_copied")]
    assert '"who": "bob"' in rows[-1][2]
