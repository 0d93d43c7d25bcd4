"""Every question and change the fabric puts to the catalog. Each runs as one transaction.

This module holds the job queries and is the one namespace the rest of the code asks
(``catalog.call(queries.X, ...)``); media, roles, runs and the journal live in their
own modules beside it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import attrs

from vtlfabric.catalog.errors import Refused
from vtlfabric.catalog.journal import get_meta, record, set_meta
from vtlfabric.catalog.media import (
    add_cartridges,
    age_jobs,
    cartridges,
    checkpoint,
    claim_cartridge,
    home_cartridges,
    mark_cartridge_bad,
    open_segment,
    recycle_cartridges,
    segments,
    set_cartridge_state,
    set_location,
)
from vtlfabric.catalog.records import JobCopyRecord, JobRecord, from_row
from vtlfabric.catalog.roles import (
    copies,
    full_required,
    promote,
    promotion_loss,
    repair_copy,
    set_suspended,
    suspended_copies,
    sync_copies,
)
from vtlfabric.catalog.runs import (
    aux_runs,
    drills,
    finish_aux_run,
    finish_drill,
    interrupt_aux_runs,
    interrupt_drills,
    start_aux_run,
    start_drill,
)
from vtlfabric.catalog.summary import (
    VALID_SQL,
    due_summary,
    job_counts,
    jobs_in_state,
    run_summary,
    state_counts,
    status_counts,
    valid_bytes,
)
from vtlfabric.vocab import PENDING_STATES, CopyState, JobStatus

__all__ = [
    "Candidates",
    "Refused",
    "add_cartridges",
    "age_jobs",
    "aux_runs",
    "cartridges",
    "checkpoint",
    "claim_cartridge",
    "copies",
    "drills",
    "due_summary",
    "finish_aux_run",
    "finish_drill",
    "full_required",
    "get_meta",
    "home_cartridges",
    "interrupt_aux_runs",
    "interrupt_drills",
    "job_counts",
    "jobs_in_state",
    "mark_cartridge_bad",
    "open_segment",
    "promote",
    "promotion_loss",
    "recycle_cartridges",
    "repair_copy",
    "run_summary",
    "segments",
    "set_cartridge_state",
    "set_location",
    "set_meta",
    "set_suspended",
    "start_aux_run",
    "start_drill",
    "state_counts",
    "status_counts",
    "suspended_copies",
    "sync_copies",
    "valid_bytes",
]


# ---------------------------------------------------------------- jobs


def create_job(
    conn: sqlite3.Connection,
    *,
    client: str,
    subclient: str,
    policy: str,
    job_type: str,
    requested_type: str,
    generation: int,
    base_generation: int | None,
    now: float,
) -> int:
    cur = conn.execute(
        "INSERT INTO jobs (client, subclient, policy, type, requested_type, status, generation, base_generation, started) "
        "VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
        (client, subclient, policy, job_type, requested_type, generation, base_generation, now),
    )
    job_id = int(cur.lastrowid)
    record(conn, now, "job.started", job_id, type=job_type, requested_type=requested_type)
    return job_id


def finish_job(
    conn: sqlite3.Connection,
    job_id: int,
    *,
    status: str,
    reason: str,
    now: float,
    objects: int,
    nbytes: int,
    digest: str,
    primary: str,
) -> None:
    """End a job; a completed one is available on the primary. Secondary copies
    register it when their rules select it (see jobs/selection.py)."""
    conn.execute(
        "UPDATE jobs SET status = ?, reason = ?, ended = ?, objects = ?, bytes = ?, digest = ? "
        "WHERE id = ? AND status = 'running'",
        (status, reason, now, objects, nbytes, digest, job_id),
    )
    if status == JobStatus.COMPLETED:
        conn.execute(
            "INSERT INTO job_copies (job_id, copy_id, state, updated) VALUES (?, ?, ?, ?)",
            (job_id, primary, CopyState.AVAILABLE, now),
        )
        conn.execute(  # a full satisfies a "next backup must be a full" left by a promotion
            "DELETE FROM meta WHERE key = "
            "(SELECT 'full_required:' || client || '/' || subclient FROM jobs WHERE id = ? AND type = 'full')",
            (job_id,),
        )
    record(conn, now, f"job.{status}", job_id, reason=reason)


def fail_interrupted_jobs(conn: sqlite3.Connection, now: float, reason: str) -> list[int]:
    """Jobs left running by a crash or stop end as failed: their data is never valid."""
    ids = [r[0] for r in conn.execute("SELECT id FROM jobs WHERE status = 'running'")]
    for job_id in ids:
        conn.execute("UPDATE jobs SET status = 'failed', reason = ?, ended = ? WHERE id = ?", (reason, now, job_id))
        record(conn, now, "job.failed", job_id, reason=reason)
    return ids


def _copies_by_job(conn: sqlite3.Connection, where: str = "", args: tuple = ()) -> dict[int, dict[str, tuple[str, str]]]:
    out: dict[int, dict[str, tuple[str, str]]] = {}
    # In primary key order: by copy within each job, with no sort of its own.
    for r in conn.execute(f"SELECT job_id, copy_id, state, reason FROM job_copies {where} ORDER BY job_id, copy_id", args):
        out.setdefault(r[0], {})[r[1]] = (r[2], r[3])
    return out


def _jobs(conn: sqlite3.Connection, where: str, args: tuple = ()) -> list[JobRecord]:
    rows = conn.execute(f"SELECT * FROM jobs {where}", args).fetchall()
    copies = _copies_by_job(conn, f"WHERE job_id IN (SELECT id FROM jobs {where})", args)  # only these jobs' rows
    return [
        JobRecord(
            **{k: r[k] for k in r.keys()},  # noqa: SIM118 (a Row iterates values)
            copies={c: state for c, (state, _) in copies.get(r["id"], {}).items()},
            reasons={c: reason for c, (_, reason) in copies.get(r["id"], {}).items()},
        )
        for r in rows
    ]


@attrs.frozen
class Candidates:
    """The only jobs a copy's rules can select: valid, on the source in ``source_states``,
    started at ``since`` or later; with ``fulls_only``, fulls (a selective copy's rules
    weigh every full, registered or not); with ``unregistered_only``, only those with no
    row on the copy yet (a synchronous copy takes them all). With ``recent`` (updated,
    started), only jobs whose source row changed since ``updated`` or that started since
    ``started``: after a registration, nothing older can have become a candidate."""

    copy_id: str
    source_id: str
    source_states: tuple[str, ...]
    fulls_only: bool = False
    unregistered_only: bool = False
    since: float | None = None
    recent: tuple[float, float] | None = None

    def where(self) -> tuple[str, tuple]:
        """Correlated EXISTS, not IN lists: a source copy may hold a million jobs, and each
        test is then one primary-key lookup per job considered."""
        marks = ",".join("?" * len(self.source_states))
        where = (
            f"WHERE status IN ({VALID_SQL}) AND started >= ? AND EXISTS (SELECT 1 FROM job_copies s "
            f"WHERE s.job_id = jobs.id AND s.copy_id = ? AND s.state IN ({marks}))"
        )
        args: tuple = (self.since if self.since is not None else float("-inf"), self.source_id, *self.source_states)
        if self.fulls_only:
            where += " AND type = 'full'"
        if self.unregistered_only:
            where += " AND NOT EXISTS (SELECT 1 FROM job_copies d WHERE d.job_id = jobs.id AND d.copy_id = ?)"
            args += (self.copy_id,)
        if self.recent is not None:
            where += (
                " AND id IN (SELECT job_id FROM job_copies WHERE copy_id = ? AND updated >= ?"
                " UNION SELECT id FROM jobs WHERE started >= ?)"
            )
            args += (self.source_id, *self.recent)
        return where, args


def candidate_jobs(conn: sqlite3.Connection, wanted: Candidates) -> list[JobRecord]:
    return _jobs(conn, *wanted.where())


def candidate_summary(conn: sqlite3.Connection, wanted: Candidates, before: float) -> tuple[int, int, float | None]:
    """The candidates started by ``before``: how many, their bytes, when the oldest started."""
    where, args = wanted.where()
    row = conn.execute(
        f"SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(started) FROM jobs {where} AND started <= ?", (*args, before)
    ).fetchone()
    return row[0], row[1], row[2]


def due_jobs(conn: sqlite3.Connection, copy_id: str, states: tuple[str, ...], source_id: str) -> list[JobRecord]:
    """Valid jobs in ``states`` on the copy that are available on its source."""
    where = (
        f"WHERE status IN ({VALID_SQL}) "
        f"AND id IN (SELECT job_id FROM job_copies WHERE copy_id = ? AND state IN ({','.join('?' * len(states))})) "
        "AND EXISTS (SELECT 1 FROM job_copies s WHERE s.job_id = jobs.id AND s.copy_id = ? AND s.state = 'available')"
    )
    return _jobs(conn, where, (copy_id, *states, source_id))


def get_job(conn: sqlite3.Connection, job_id: int) -> JobRecord | None:
    found = _jobs(conn, "WHERE id = ?", (job_id,))
    return found[0] if found else None


def list_jobs(conn: sqlite3.Connection, client: str | None = None) -> list[JobRecord]:
    if client:
        return _jobs(conn, "WHERE client = ? ORDER BY id", (client,))
    return _jobs(conn, "ORDER BY id")


def subclients(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every (client, subclient) that has jobs, read from the jobs_client index."""
    return [(r[0], r[1]) for r in conn.execute("SELECT DISTINCT client, subclient FROM jobs ORDER BY client, subclient")]


def live_jobs(conn: sqlite3.Connection, client: str, subclient: str) -> list[JobRecord]:
    """A subclient's valid jobs that some copy still holds or has to deal with (a row in a
    state other than aged): all that data aging weighs. Jobs aged everywhere are not read."""
    return _jobs(
        conn,
        f"WHERE client = ? AND subclient = ? AND status IN ({VALID_SQL}) AND EXISTS "
        f"(SELECT 1 FROM job_copies jc WHERE jc.job_id = jobs.id AND jc.state != '{CopyState.AGED}') ORDER BY id",
        (client, subclient),
    )


def newest_missing(conn: sqlite3.Connection, client: str, copy_id: str, at: float) -> float | None:
    """When the client's newest valid job started at or before ``at`` that is not
    available on the copy started (None: every one is): a drill's recovery point."""
    row = conn.execute(  # newest first on jobs_client_started: it stops at the first one missing
        f"SELECT started FROM jobs WHERE client = ? AND started <= ? AND status IN ({VALID_SQL}) AND NOT EXISTS "
        f"(SELECT 1 FROM job_copies jc WHERE jc.job_id = jobs.id AND jc.copy_id = ? AND jc.state = '{CopyState.AVAILABLE}') "
        "ORDER BY started DESC LIMIT 1",
        (client, at, copy_id),
    ).fetchone()
    return row[0] if row else None


def page_jobs(
    conn: sqlite3.Connection,
    *,
    client: str | None = None,
    status: str | None = None,
    copy_id: str | None = None,
    state: str | None = None,
    after: int = 0,
    limit: int = 1000,
) -> list[JobRecord]:
    """At most ``limit`` jobs with ids above ``after``, in id order, that match every filter
    given: a page of ``ctl jobs``, read through the indexes, whatever the catalog's size."""
    where, args = ["id > ?"], [after]
    for column, value in (("client", client), ("status", status)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if copy_id is not None:
        # Looked up per job on the primary key, in id order: an IN list would gather every
        # job of the copy for each page (paging through a copy, as verify does, squared).
        where.append(
            "EXISTS (SELECT 1 FROM job_copies jc WHERE jc.job_id = jobs.id AND jc.copy_id = ?"
            + (" AND jc.state = ?)" if state else ")")
        )
        args += [copy_id, *([state] if state else [])]
    return _jobs(conn, f"WHERE {' AND '.join(where)} ORDER BY id LIMIT ?", (*args, limit))


def last_valid_job(conn: sqlite3.Connection, client: str, subclient: str, types: tuple[str, ...]) -> JobRecord | None:
    marks = ",".join("?" * len(types))
    found = _jobs(
        conn,
        f"WHERE client = ? AND subclient = ? AND status = 'completed' AND type IN ({marks}) ORDER BY id DESC LIMIT 1",
        (client, subclient, *types),
    )
    return found[0] if found else None


def job_copy(conn: sqlite3.Connection, job_id: int, copy_id: str) -> JobCopyRecord | None:
    row = conn.execute("SELECT * FROM job_copies WHERE job_id = ? AND copy_id = ?", (job_id, copy_id)).fetchone()
    return from_row(JobCopyRecord, row) if row else None


def set_job_copy_state(conn: sqlite3.Connection, job_id: int, copy_id: str, state: str, reason: str, now: float) -> None:
    conn.execute(
        "UPDATE job_copies SET state = ?, reason = ?, updated = ? WHERE job_id = ? AND copy_id = ?",
        (state, reason, now, job_id, copy_id),
    )
    record(conn, now, f"copy.{state}", job_id, copy_id, reason=reason)


def copy_failed(conn: sqlite3.Connection, job_id: int, copy_id: str, reason: str, now: float) -> bool:
    """An aux copy could not copy a job (its source could not be read): it is *partially
    copied* on the copy, with why; what was committed stays, and the next run goes on from
    there. Only a row still to copy changes."""
    cur = conn.execute(
        "UPDATE job_copies SET state = ?, reason = ?, updated = ? WHERE job_id = ? AND copy_id = ? AND state IN (?, ?)",
        (CopyState.PARTIALLY_COPIED, reason, now, job_id, copy_id, *PENDING_STATES),
    )
    if cur.rowcount:
        record(conn, now, f"copy.{CopyState.PARTIALLY_COPIED}", job_id, copy_id, reason=reason)
    return bool(cur.rowcount)


def mark_damaged(conn: sqlite3.Connection, job_id: int, copy_id: str, reason: str, now: float) -> bool:
    """A read found the copy's data of a job damaged: it is no longer *available* there
    (never restored from, nor copied from). Only an available row changes; returns whether it did."""
    cur = conn.execute(
        "UPDATE job_copies SET state = ?, reason = ?, updated = ? WHERE job_id = ? AND copy_id = ? AND state = ?",
        (CopyState.DAMAGED, reason, now, job_id, copy_id, CopyState.AVAILABLE),
    )
    if cur.rowcount:
        record(conn, now, f"copy.{CopyState.DAMAGED}", job_id, copy_id, reason=reason)
    return bool(cur.rowcount)


def start_heal(conn: sqlite3.Connection, job_id: int, copy_id: str, now: float) -> bool:
    """Copy a damaged job again from the start: forget its damaged data (it stays on tape,
    unreferenced, until the cartridge is recycled). Returns whether the row was damaged."""
    row = conn.execute(
        "SELECT reason FROM job_copies WHERE job_id = ? AND copy_id = ? AND state = ?", (job_id, copy_id, CopyState.DAMAGED)
    ).fetchone()
    if row is None:
        return False
    reason = f"healing ({row[0]})"
    conn.execute("DELETE FROM segments WHERE job_id = ? AND copy_id = ?", (job_id, copy_id))
    conn.execute(
        "UPDATE job_copies SET state = ?, bytes_done = 0, reason = ?, updated = ? WHERE job_id = ? AND copy_id = ?",
        (CopyState.TO_BE_COPIED, reason, now, job_id, copy_id),
    )
    record(conn, now, "copy.healing", job_id, copy_id, reason=reason)
    return True


def register_jobs(
    conn: sqlite3.Connection,
    copy_id: str,
    job_ids: Iterable[int],
    reason: str,
    now: float,
    mark: tuple[str, str] | None = None,
) -> None:
    """Rows for jobs a copy's rules selected; a row already there (a manual choice) stays.
    ``mark``: a meta (key, value) saying when and under which rules this registration
    looked, set in the same transaction."""
    if mark is not None:
        set_meta(conn, *mark)
    for job_id in job_ids:
        cur = conn.execute(
            "INSERT OR IGNORE INTO job_copies (job_id, copy_id, state, reason, updated) VALUES (?, ?, ?, ?, ?)",
            (job_id, copy_id, CopyState.TO_BE_COPIED, reason, now),
        )
        if cur.rowcount:
            record(conn, now, f"copy.{CopyState.TO_BE_COPIED}", job_id, copy_id, reason=reason)


def manual_selection(conn: sqlite3.Connection, job_id: int, copy_id: str, action: str, who: str, now: float) -> str:
    """An operator's choice for one job on one copy: pick, do-not-copy, recopy or mark-bad.
    Returns the job's new state on the copy; raises Refused when the state forbids it."""
    job = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    row = conn.execute("SELECT state FROM job_copies WHERE job_id = ? AND copy_id = ?", (job_id, copy_id)).fetchone()
    state = row[0] if row else None
    if action in ("pick", "recopy") and job[0] != JobStatus.COMPLETED:
        raise Refused(f"job {job_id} is {job[0]}: only a valid (completed) job can be copied")
    if action == "pick" and state in (CopyState.AVAILABLE, *PENDING_STATES):
        raise Refused(f"job {job_id} is already {state} on {copy_id}")
    if action == "do-not-copy" and state == CopyState.AVAILABLE:
        raise Refused(f"job {job_id} is already available on {copy_id}: mark it bad, or let it age")
    new = {
        "pick": CopyState.TO_BE_COPIED,
        "recopy": CopyState.TO_BE_COPIED,
        "do-not-copy": CopyState.DO_NOT_COPY,
        "mark-bad": CopyState.BAD,
    }[action]
    if new != CopyState.BAD:
        conn.execute("DELETE FROM segments WHERE job_id = ? AND copy_id = ?", (job_id, copy_id))
    reason = f"{action} by {who}"
    conn.execute(
        "INSERT INTO job_copies (job_id, copy_id, state, bytes_done, reason, updated) VALUES (?, ?, ?, 0, ?, ?) "
        "ON CONFLICT (job_id, copy_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, "
        "updated = excluded.updated, "
        "bytes_done = CASE WHEN excluded.state = 'bad' THEN bytes_done ELSE 0 END",
        (job_id, copy_id, new, reason, now),
    )
    record(conn, now, f"copy.{new}", job_id, copy_id, reason=reason, who=who, action=action, previous=state)
    return new


def reset_job_copy(conn: sqlite3.Connection, job_id: int, copy_id: str, reason: str, now: float) -> None:
    """Forget what a copy holds of a job (it did not verify), so the next run starts it over.
    Its bytes stay on tape, unreferenced, until the cartridge is recycled."""
    conn.execute("DELETE FROM segments WHERE job_id = ? AND copy_id = ?", (job_id, copy_id))
    conn.execute(
        "UPDATE job_copies SET state = ?, bytes_done = 0, reason = ?, updated = ? WHERE job_id = ? AND copy_id = ?",
        (CopyState.TO_BE_COPIED, reason, now, job_id, copy_id),
    )
    record(conn, now, "copy.reset", job_id, copy_id, reason=reason)
