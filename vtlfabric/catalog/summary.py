"""What status, copies and metrics ask of the catalog: running totals the catalog's
triggers keep (schema migration 8), and lookups by index. Their cost follows the number
of copies, not the number of jobs or runs."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from vtlfabric.catalog.records import VALID_STATUSES

VALID_SQL = ",".join(f"'{s}'" for s in VALID_STATUSES)  # for "status IN (...)"


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def job_counts(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """(type, status) -> jobs."""
    rows = conn.execute("SELECT type, status, SUM(jobs) FROM job_totals GROUP BY type, status HAVING SUM(jobs) > 0")
    return {(r[0], r[1]): r[2] for r in rows}


def status_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Job status -> jobs."""
    rows = conn.execute("SELECT status, SUM(jobs) FROM job_totals GROUP BY status HAVING SUM(jobs) > 0 ORDER BY status")
    return {r[0]: r[1] for r in rows}


def valid_bytes(conn: sqlite3.Connection) -> dict[str, int]:
    """Storage policy -> bytes of its valid jobs."""
    rows = conn.execute(
        f"SELECT policy, SUM(bytes) FROM job_totals WHERE status IN ({VALID_SQL}) GROUP BY policy HAVING SUM(jobs) > 0"
    )
    return {r[0]: r[1] for r in rows}


def state_counts(conn: sqlite3.Connection) -> dict[str, dict[str, tuple[int, int]]]:
    """Copy -> the jobs' states there -> (jobs, bytes)."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    rows = conn.execute("SELECT copy_id, state, jobs, bytes FROM copy_totals WHERE jobs > 0")
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
        "SELECT c.id, COALESCE((SELECT bytes FROM run_totals t WHERE t.copy_id = c.id), 0), "
        "COALESCE((SELECT SUM(streams) FROM auxcopy_runs r WHERE r.copy_id = c.id AND r.status = 'running'), 0), "
        "(SELECT MAX(ended) FROM auxcopy_runs r WHERE r.copy_id = c.id AND r.status = 'completed') "
        "FROM copies c WHERE EXISTS (SELECT 1 FROM auxcopy_runs r WHERE r.copy_id = c.id)"
    )  # each a seek on auxcopy_runs_ended, not a pass over every run
    return {r[0]: (r[1], r[2], r[3]) for r in rows}
