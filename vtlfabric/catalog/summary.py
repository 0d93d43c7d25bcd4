"""What status, copies and metrics ask of the catalog, as SQL aggregates over indexes:
their cost follows the number of copies and runs, not the number of jobs."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from vtlfabric.catalog.records import VALID_STATUSES

VALID_SQL = ",".join(f"'{s}'" for s in VALID_STATUSES)  # for "status IN (...)"


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def job_counts(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """(type, status) -> jobs."""
    return {(r[0], r[1]): r[2] for r in conn.execute("SELECT type, status, COUNT(*) FROM jobs GROUP BY type, status")}


def status_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Job status -> jobs."""
    return {r[0]: r[1] for r in conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status")}


def valid_bytes(conn: sqlite3.Connection) -> dict[str, int]:
    """Storage policy -> bytes of its valid jobs."""
    rows = conn.execute(f"SELECT policy, SUM(bytes) FROM jobs WHERE status IN ({VALID_SQL}) GROUP BY policy")
    return {r[0]: r[1] for r in rows}


def state_counts(conn: sqlite3.Connection) -> dict[str, dict[str, tuple[int, int]]]:
    """Copy -> the jobs' states there -> (jobs, bytes)."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    rows = conn.execute("SELECT copy_id, state, COUNT(*), SUM(job_bytes) FROM job_copies GROUP BY copy_id, state")
    for copy_id, state, jobs, nbytes in rows:
        out.setdefault(copy_id, {})[state] = (jobs, nbytes or 0)
    return out


def due_summary(conn: sqlite3.Connection, copy_id: str, states: Sequence[str]) -> tuple[int, int, float | None]:
    """The jobs in ``states`` on the copy: how many, their bytes, and when the oldest started."""
    row = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(j.bytes), 0), MIN(j.started) FROM job_copies jc JOIN jobs j ON j.id = jc.job_id "
        f"WHERE jc.copy_id = ? AND jc.state IN ({_marks(states)})",
        (copy_id, *states),
    ).fetchone()  # few rows: the jobs still to copy
    return row[0], row[1], row[2]


def jobs_in_state(conn: sqlite3.Connection, copy_id: str, state: str) -> list[tuple[int, str]]:
    """(job id, why) of each job in ``state`` on the copy."""
    rows = conn.execute("SELECT job_id, reason FROM job_copies WHERE copy_id = ? AND state = ? ORDER BY job_id", (copy_id, state))
    return [(r[0], r[1]) for r in rows]


def run_summary(conn: sqlite3.Connection) -> dict[str, tuple[int, int, float | None]]:
    """Copy -> (bytes its finished runs copied, streams running now, when its last good run ended)."""
    rows = conn.execute(
        "SELECT copy_id, COALESCE(SUM(CASE WHEN status != 'running' THEN bytes END), 0), "
        "COALESCE(SUM(CASE WHEN status = 'running' THEN streams END), 0), "
        "MAX(CASE WHEN status = 'completed' THEN ended END) FROM auxcopy_runs GROUP BY copy_id"
    )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}
