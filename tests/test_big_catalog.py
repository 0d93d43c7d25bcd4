"""A site with years of jobs: status, copies, selection and ctl jobs read only what they
need (aggregates, candidate rows, pages), and say exactly what the whole table says.

The catalog is filled with SQL straight away, many thousands of jobs in a second; the
oracle is the old way, every job loaded and the pure rules run over them all."""

from __future__ import annotations

import random
import sqlite3

import pytest
import trio

from tests.helpers import EPOCH, VAULT_LIBRARY, open_fabric, write_fabric
from vtlfabric.catalog import queries
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.auxcopy import candidates, recent_window, register_selected
from vtlfabric.jobs.copystatus import copy_statuses
from vtlfabric.jobs.damage import heals
from vtlfabric.jobs.selection import due_states, jobs_to_copy, to_register
from vtlfabric.service.commands import Commands
from vtlfabric.service.operations import Operations
from vtlfabric.vocab import CopyState

PRIMARY, DR, VAULT = "P/primary", "P/dr", "P/vault"
VAULT_COPY = """
  [[policy.copy]]
  name = "vault"
  kind = "selective"
  frequency = "weekly"
  pick = "first"
  source = "dr"
  library = "dr/VAULT"
"""
HOUR = 3600.0
SUBCLIENTS = (("IBMA", "ALLUSR"), ("IBMA", "IFS"), ("IBMB", "ALLUSR"))
DR_STATES = (*[CopyState.AVAILABLE] * 6, CopyState.TO_BE_COPIED, CopyState.PARTIALLY_COPIED, CopyState.DAMAGED, None)


def fill(conn: sqlite3.Connection, n: int, seed: int, now: float, backlog: int | None = None) -> None:
    """``n`` hourly jobs per subclient round, ending just before ``now``: a full a week,
    some failed, and states on the DR and vault copies drawn at random; or, with
    ``backlog``, as a healthy site has them: all copied but the newest ``backlog`` jobs."""
    rng = random.Random(seed)
    jobs, rows = [], []
    for i in range(n):
        client, sub = SUBCLIENTS[i % len(SUBCLIENTS)]
        started = now - (n - i) * HOUR / len(SUBCLIENTS)
        kind = "full" if (i // len(SUBCLIENTS)) % 168 == 0 else "incremental"
        status = rng.choice(["completed"] * 18 + ["failed", "killed"])
        jobs.append((i + 1, client, sub, "P", kind, kind, status, i, started, started + 60, rng.randrange(1, 10**9)))
        if status != "completed":
            continue
        rows.append((i + 1, PRIMARY, CopyState.AVAILABLE, started + 60))
        state = rng.choice(DR_STATES) if backlog is None else (CopyState.AVAILABLE if i < n - backlog else None)
        if state is not None:
            rows.append((i + 1, DR, state, started + 600))
        if kind == "full" and state == CopyState.AVAILABLE and rng.random() < 0.5:
            rows.append((i + 1, VAULT, rng.choice([CopyState.AVAILABLE, CopyState.TO_BE_COPIED]), started + 900))
    conn.executemany(
        "INSERT INTO jobs (id, client, subclient, policy, type, requested_type, status, generation, started, ended, bytes) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        jobs,
    )
    conn.executemany("INSERT INTO job_copies (job_id, copy_id, state, updated) VALUES (?, ?, ?, ?)", rows)


def oracle(fabric: Fabric, jobs: list, copy_id: str) -> tuple[int, int, float | None, dict[str, int], int]:
    """What a copy's status said when every job was loaded: the old computation."""
    copy = fabric.copy(copy_id)
    due = [j for j in jobs if j.copies.get(copy_id) in due_states(heals(copy))]
    if not copy.primary:
        due += to_register(jobs, copy.rules, copy.id, fabric.source_of(copy).id, fabric.now())
    states = {s.value: sum(1 for j in jobs if j.copies.get(copy_id) == s) for s in CopyState}
    held = sum(j.bytes for j in jobs if j.copies.get(copy_id) == CopyState.AVAILABLE)
    oldest = min((j.started for j in due), default=None)
    return len(due), sum(j.bytes for j in due), oldest, {k: v for k, v in states.items() if v}, held


@pytest.fixture
async def fabric(tmp_path):
    path = write_fabric(tmp_path / "f")
    (path.parent / "dr.toml").write_text((path.parent / "dr.toml").read_text() + VAULT_LIBRARY)
    path.write_text(path.read_text() + VAULT_COPY)
    async with open_fabric(path) as fab:
        yield fab


@pytest.mark.parametrize(("n", "seed"), [(3_000, 1), (3_000, 2), (60_000, 3)])
async def test_status_and_selection_from_the_indexes_say_what_the_whole_table_says(fabric, n, seed, autojump_clock):
    await fabric.catalog.call(fill, n, seed, EPOCH)
    jobs = await fabric.catalog.call(queries.list_jobs)
    assert len(jobs) == n
    statuses = {s.id: s for s in await copy_statuses(fabric)}
    for copy_id in (PRIMARY, DR, VAULT):
        status, (to_copy, nbytes, oldest, states, held) = statuses[copy_id], oracle(fabric, jobs, copy_id)
        assert (status.to_copy, status.bytes_to_copy, status.states, status.available_bytes) == (to_copy, nbytes, states, held)
        assert status.oldest_uncopied_age == (round(fabric.now() - oldest, 1) if oldest is not None else None)
        if copy_id != PRIMARY:
            copy = fabric.copy(copy_id)
            source = fabric.source_of(copy).id
            everything = to_register(jobs, copy.rules, copy.id, source, fabric.now())
            assert to_register(await candidates(fabric, copy), copy.rules, copy.id, source, fabric.now()) == everything
            due = await fabric.catalog.call(queries.due_jobs, copy.id, due_states(heals(copy)), source)
            assert jobs_to_copy(due, copy.id, source, heals(copy)) == jobs_to_copy(jobs, copy.id, source, heals(copy))
    assert sum((await fabric.catalog.call(queries.job_counts)).values()) == n


@pytest.mark.parametrize("seed", [4, 5])
async def test_the_running_totals_stay_equal_to_a_recount_whatever_changes(fabric, seed, autojump_clock):
    await fabric.catalog.call(fill, 3_000, seed, EPOCH)
    await fabric.catalog.call(_churn, random.Random(seed))
    assert await fabric.catalog.call(queries.job_counts) == await fabric.catalog.call(_recount_jobs)
    assert await fabric.catalog.call(queries.state_counts) == await fabric.catalog.call(_recount_states)
    assert await fabric.catalog.call(queries.valid_bytes) == await fabric.catalog.call(_recount_valid_bytes)
    assert await fabric.catalog.call(queries.run_summary) == await fabric.catalog.call(_recount_runs)


def _churn(conn: sqlite3.Connection, rng: random.Random) -> None:
    """Every kind of change the totals follow: states, statuses, bytes, rows gone, runs."""
    states = [s.value for s in CopyState]
    for job_id in rng.sample(range(1, 3_001), 600):
        conn.execute("UPDATE job_copies SET state = ? WHERE job_id = ? AND copy_id = ?", (rng.choice(states), job_id, DR))
        conn.execute(
            "UPDATE jobs SET status = ?, bytes = ? WHERE id = ?",
            (rng.choice(["completed", "failed"]), rng.randrange(10**6), job_id),
        )
    for job_id in rng.sample(range(1, 3_001), 50):
        conn.execute("DELETE FROM job_copies WHERE job_id = ?", (job_id,))
        conn.execute("DELETE FROM segments WHERE job_id = ?", (job_id,))
        conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    for n in range(40):
        copy_id = rng.choice([DR, VAULT])
        run = conn.execute(
            "INSERT INTO auxcopy_runs (copy_id, streams, status, started, bytes) VALUES (?, 2, 'running', ?, 0)", (copy_id, n)
        ).lastrowid
        if rng.random() < 0.8:
            status = rng.choice(["completed", "failed", "interrupted"])
            conn.execute(
                "UPDATE auxcopy_runs SET status = ?, ended = ?, bytes = ? WHERE id = ?",
                (status, n + 1, rng.randrange(10**6), run),
            )


def _recount_jobs(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    return {(r[0], r[1]): r[2] for r in conn.execute("SELECT type, status, COUNT(*) FROM jobs GROUP BY type, status")}


def _recount_states(conn: sqlite3.Connection) -> dict[str, dict[str, tuple[int, int]]]:
    out: dict[str, dict[str, tuple[int, int]]] = {}
    rows = conn.execute(
        "SELECT copy_id, state, COUNT(*), SUM(j.bytes) FROM job_copies JOIN jobs j ON j.id = job_id GROUP BY copy_id, state"
    )
    for copy_id, state, jobs, nbytes in rows:
        out.setdefault(copy_id, {})[state] = (jobs, nbytes)
    return out


def _recount_valid_bytes(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT policy, SUM(bytes) FROM jobs WHERE status = 'completed' GROUP BY policy").fetchall())


def _recount_runs(conn: sqlite3.Connection) -> dict[str, tuple[int, int, float | None]]:
    rows = conn.execute(
        "SELECT copy_id, COALESCE(SUM(CASE WHEN status != 'running' THEN bytes END), 0), "
        "COALESCE(SUM(CASE WHEN status = 'running' THEN streams END), 0), "
        "MAX(CASE WHEN status = 'completed' THEN ended END) FROM auxcopy_runs GROUP BY copy_id"
    )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def test_ctl_jobs_pages_through_every_job_once_and_filters_by_client_status_and_copy_state(fabric, autojump_clock):
    await fabric.catalog.call(fill, 5_000, 4, EPOCH)
    jobs = await fabric.catalog.call(queries.list_jobs)
    ctl = Commands(fabric, Operations(None), 0.0)  # type: ignore[arg-type]
    for request, wanted in (
        ({}, jobs),
        ({"client": "IBMB"}, [j for j in jobs if j.client == "IBMB"]),
        ({"status": "failed"}, [j for j in jobs if j.status == "failed"]),
        ({"copy": DR, "state": "damaged"}, [j for j in jobs if j.copies.get(DR) == CopyState.DAMAGED]),
        ({"copy": VAULT, "client": "IBMA"}, [j for j in jobs if VAULT in j.copies and j.client == "IBMA"]),
    ):
        seen, after = [], 0
        while page := await ctl.cmd_jobs({**request, "after": after, "limit": 700}):
            assert len(page) <= 700
            seen += page
            after = page[-1]["id"]
        assert [j["id"] for j in seen] == [j.id for j in wanted], request
    with pytest.raises(Exception, match="status: 'lost' is not one of"):
        await ctl.cmd_jobs({"status": "lost"})
    with pytest.raises(Exception, match="state: give it with copy"):
        await ctl.cmd_jobs({"state": "damaged"})
    with pytest.raises(Exception, match="no copy"):
        await ctl.cmd_jobs({"copy": "P/nowhere"})


async def test_after_a_registration_only_what_changed_since_is_read_and_nothing_is_missed(fabric, autojump_clock):
    await fabric.catalog.call(fill, 3_000, 5, EPOCH - 10 * 86400.0, 100)
    late = [j.id for j in await fabric.catalog.call(queries.list_jobs) if j.status == "completed"][:5]
    await fabric.catalog.call(_without_source_rows, late)  # old jobs not on the primary yet
    dr = fabric.copy(DR)
    await register_selected(fabric, dr)
    assert await recent_window(fabric, dr) is not None
    fabric.clock.epoch -= 2 * 86400.0  # a clock set back: no watermark is trusted
    assert await recent_window(fabric, dr) is None
    fabric.clock.epoch += 2 * 86400.0

    await trio.sleep(3 * 86400)  # later: new jobs, and the old ones reach the source
    await fabric.catalog.call(_more_jobs, 3_001, 20, fabric.now())
    await fabric.catalog.call(_with_source_rows, late, fabric.now())
    jobs = await fabric.catalog.call(queries.list_jobs)
    everything = to_register(jobs, dr.rules, dr.id, PRIMARY, fabric.now())
    assert {j.id for j in everything} >= set(late) and len(everything) == 25
    assert to_register(await candidates(fabric, dr), dr.rules, dr.id, PRIMARY, fabric.now()) == everything
    [status] = [s for s in await copy_statuses(fabric) if s.id == DR]
    assert status.to_copy == oracle(fabric, jobs, DR)[0]


def _without_source_rows(conn: sqlite3.Connection, ids: list[int]) -> None:
    conn.executemany("DELETE FROM job_copies WHERE job_id = ?", [(i,) for i in ids])


def _with_source_rows(conn: sqlite3.Connection, ids: list[int], now: float) -> None:
    conn.executemany(
        "INSERT INTO job_copies (job_id, copy_id, state, updated) VALUES (?, ?, 'available', ?)", [(i, PRIMARY, now) for i in ids]
    )


def _more_jobs(conn: sqlite3.Connection, first: int, n: int, now: float) -> None:
    for i in range(first, first + n):
        conn.execute(
            "INSERT INTO jobs (id, client, subclient, policy, type, requested_type, status, generation, started, ended, bytes) "
            "VALUES (?, 'IBMA', 'ALLUSR', 'P', 'incremental', 'incremental', 'completed', ?, ?, ?, 1000)",
            (i, i, now - 60, now),
        )
        conn.execute("INSERT INTO job_copies (job_id, copy_id, state, updated) VALUES (?, ?, 'available', ?)", (i, PRIMARY, now))
