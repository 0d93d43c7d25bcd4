"""Aux copy runs and DR drills as the catalog records them."""

from __future__ import annotations

import sqlite3

from vtlfabric.catalog.journal import record
from vtlfabric.catalog.records import AuxRunRecord, from_row


def start_aux_run(conn: sqlite3.Connection, copy_id: str, streams: int, now: float) -> int:
    cur = conn.execute(
        "INSERT INTO auxcopy_runs (copy_id, streams, status, started) VALUES (?, ?, 'running', ?)", (copy_id, streams, now)
    )
    record(conn, now, "auxcopy.started", None, copy_id, run=cur.lastrowid, streams=streams)
    return int(cur.lastrowid)


def finish_aux_run(conn: sqlite3.Connection, run_id: int, status: str, reason: str, jobs: int, nbytes: int, now: float) -> None:
    conn.execute(
        "UPDATE auxcopy_runs SET status = ?, reason = ?, jobs = ?, bytes = ?, ended = ? WHERE id = ?",
        (status, reason, jobs, nbytes, now, run_id),
    )
    record(conn, now, f"auxcopy.{status}", None, None, run=run_id, reason=reason, jobs=jobs, bytes=nbytes)


def interrupt_aux_runs(conn: sqlite3.Connection, now: float) -> None:
    conn.execute(
        "UPDATE auxcopy_runs SET status = 'interrupted', reason = 'daemon stopped', ended = ? WHERE status = 'running'", (now,)
    )


def aux_runs(conn: sqlite3.Connection, copy_id: str | None = None) -> list[AuxRunRecord]:
    rows = conn.execute("SELECT * FROM auxcopy_runs WHERE ? IS NULL OR copy_id = ? ORDER BY id", (copy_id, copy_id))
    return [from_row(AuxRunRecord, r) for r in rows]


# ---------------------------------------------------------------- drills


def start_drill(conn: sqlite3.Connection, mode: str, trigger: str, now: float) -> int:
    cur = conn.execute("INSERT INTO drills (mode, trigger, started, status) VALUES (?, ?, ?, 'running')", (mode, trigger, now))
    record(conn, now, "drill.started", mode=mode, trigger=trigger, drill=cur.lastrowid)
    return int(cur.lastrowid)


def finish_drill(conn: sqlite3.Connection, drill_id: int, status: str, summary: str, report: str, now: float) -> None:
    conn.execute(
        "UPDATE drills SET status = ?, summary = ?, report = ?, ended = ? WHERE id = ?", (status, summary, report, now, drill_id)
    )
    record(conn, now, f"drill.{status}", drill=drill_id, summary=summary)


def interrupt_drills(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("UPDATE drills SET status = 'interrupted', ended = ? WHERE status = 'running'", (now,))


def drills(conn: sqlite3.Connection) -> list[dict[str, object]]:
    return [dict(r) for r in conn.execute("SELECT * FROM drills ORDER BY id")]
