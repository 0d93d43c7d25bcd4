"""Every question and change the fabric puts to the catalog. Each runs as one transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from vtlfabric import errors
from vtlfabric.catalog.records import (
    AuxRunRecord,
    CartridgeRecord,
    CopyRecord,
    JobCopyRecord,
    JobRecord,
    Loss,
    SegmentRecord,
    from_row,
)
from vtlfabric.vocab import PENDING_STATES, CopyState, JobStatus


class Refused(errors.Refused):
    """A manual change the job's state does not allow; nothing was changed."""


def _history(conn: sqlite3.Connection, now: float, event: str, job_id: int | None = None, copy_id: str | None = None, **detail: object) -> None:
    conn.execute(
        "INSERT INTO history (time, job_id, copy_id, event, detail) VALUES (?, ?, ?, ?, ?)",
        (now, job_id, copy_id, event, json.dumps(detail, sort_keys=True) if detail else ""),
    )


# ---------------------------------------------------------------- fabric setup


def sync_copies(conn: sqlite3.Connection, copies: Iterable[CopyRecord]) -> None:
    """Add the config's new copies. A known copy keeps its role (primary, source) from the
    catalog: a promotion changed it there, and a restart must not undo it."""
    for c in copies:
        conn.execute(
            "INSERT INTO copies (id, policy, library, source, is_primary) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET library = excluded.library",
            (c.id, c.policy, c.library, c.source, int(c.is_primary)),
        )


def add_cartridges(conn: sqlite3.Connection, library: str, barcodes: Iterable[str]) -> list[str]:
    """Insert cartridges the catalog has not seen, as scratch; return the new ones."""
    known = {r[0] for r in conn.execute("SELECT barcode FROM cartridges WHERE library = ?", (library,))}
    used_slots = {r[0] for r in conn.execute("SELECT slot FROM cartridges WHERE library = ?", (library,))}
    new = [b for b in barcodes if b not in known]
    free_slots = (s for s in range(1, 1_000_000) if s not in used_slots)
    for barcode, slot in zip(new, free_slots):
        conn.execute(
            "INSERT INTO cartridges (barcode, library, slot, state) VALUES (?, ?, ?, 'scratch')",
            (barcode, library, slot),
        )
    return new


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


# ---------------------------------------------------------------- jobs


def create_job(
    conn: sqlite3.Connection, *, client: str, subclient: str, policy: str, job_type: str,
    requested_type: str, generation: int, base_generation: int | None, now: float,
) -> int:
    cur = conn.execute(
        "INSERT INTO jobs (client, subclient, policy, type, requested_type, status, generation, base_generation, started) "
        "VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
        (client, subclient, policy, job_type, requested_type, generation, base_generation, now),
    )
    job_id = int(cur.lastrowid)
    _history(conn, now, "job.started", job_id, type=job_type, requested_type=requested_type)
    return job_id


def finish_job(
    conn: sqlite3.Connection, job_id: int, *, status: str, reason: str, now: float,
    objects: int, nbytes: int, digest: str, primary: str,
) -> None:
    """End a job; a completed one is available on the primary. Secondary copies
    register it when their rules select it (see jobs/selection.py)."""
    conn.execute(
        "UPDATE jobs SET status = ?, reason = ?, ended = ?, objects = ?, bytes = ?, digest = ? WHERE id = ? AND status = 'running'",
        (status, reason, now, objects, nbytes, digest, job_id),
    )
    if status == JobStatus.COMPLETED:
        conn.execute("INSERT INTO job_copies (job_id, copy_id, state, updated) VALUES (?, ?, ?, ?)", (job_id, primary, CopyState.AVAILABLE, now))
        conn.execute(  # a full satisfies a "next backup must be a full" left by a promotion
            "DELETE FROM meta WHERE key = (SELECT 'full_required:' || client || '/' || subclient FROM jobs WHERE id = ? AND type = 'full')",
            (job_id,),
        )
    _history(conn, now, f"job.{status}", job_id, reason=reason)


def fail_interrupted_jobs(conn: sqlite3.Connection, now: float, reason: str) -> list[int]:
    """Jobs left running by a crash or stop end as failed: their data is never valid."""
    ids = [r[0] for r in conn.execute("SELECT id FROM jobs WHERE status = 'running'")]
    for job_id in ids:
        conn.execute("UPDATE jobs SET status = 'failed', reason = ?, ended = ? WHERE id = ?", (reason, now, job_id))
        _history(conn, now, "job.failed", job_id, reason=reason)
    return ids


def _copies_by_job(conn: sqlite3.Connection, where: str = "", args: tuple = ()) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for r in conn.execute(f"SELECT job_id, copy_id, state FROM job_copies {where} ORDER BY copy_id", args):
        out.setdefault(r[0], {})[r[1]] = r[2]
    return out


def _jobs(conn: sqlite3.Connection, where: str, args: tuple = ()) -> list[JobRecord]:
    rows = conn.execute(f"SELECT * FROM jobs {where}", args).fetchall()
    copies = _copies_by_job(conn, f"WHERE job_id IN (SELECT id FROM jobs {where})", args)  # only these jobs' rows
    return [JobRecord(**{k: r[k] for k in r.keys()}, copies=copies.get(r["id"], {})) for r in rows]


def get_job(conn: sqlite3.Connection, job_id: int) -> JobRecord | None:
    found = _jobs(conn, "WHERE id = ?", (job_id,))
    return found[0] if found else None


def list_jobs(conn: sqlite3.Connection, client: str | None = None) -> list[JobRecord]:
    if client:
        return _jobs(conn, "WHERE client = ? ORDER BY id", (client,))
    return _jobs(conn, "ORDER BY id")


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
    _history(conn, now, f"copy.{state}", job_id, copy_id, reason=reason)


def register_jobs(conn: sqlite3.Connection, copy_id: str, job_ids: Iterable[int], reason: str, now: float) -> None:
    """Rows for jobs a copy's rules selected; a row already there (a manual choice) stays."""
    for job_id in job_ids:
        cur = conn.execute(
            "INSERT OR IGNORE INTO job_copies (job_id, copy_id, state, reason, updated) VALUES (?, ?, ?, ?, ?)",
            (job_id, copy_id, CopyState.TO_BE_COPIED, reason, now),
        )
        if cur.rowcount:
            _history(conn, now, f"copy.{CopyState.TO_BE_COPIED}", job_id, copy_id, reason=reason)


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
    new = {"pick": CopyState.TO_BE_COPIED, "recopy": CopyState.TO_BE_COPIED, "do-not-copy": CopyState.DO_NOT_COPY, "mark-bad": CopyState.BAD}[action]
    if new != CopyState.BAD:
        conn.execute("DELETE FROM segments WHERE job_id = ? AND copy_id = ?", (job_id, copy_id))
    reason = f"{action} by {who}"
    conn.execute(
        "INSERT INTO job_copies (job_id, copy_id, state, bytes_done, reason, updated) VALUES (?, ?, ?, 0, ?, ?) "
        "ON CONFLICT (job_id, copy_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, updated = excluded.updated, "
        "bytes_done = CASE WHEN excluded.state = 'bad' THEN bytes_done ELSE 0 END",
        (job_id, copy_id, new, reason, now),
    )
    _history(conn, now, f"copy.{new}", job_id, copy_id, reason=reason, who=who, action=action, previous=state)
    return new


def reset_job_copy(conn: sqlite3.Connection, job_id: int, copy_id: str, reason: str, now: float) -> None:
    """Forget what a copy holds of a job (it did not verify), so the next run starts it over.
    Its bytes stay on tape, unreferenced, until the cartridge is recycled."""
    conn.execute("DELETE FROM segments WHERE job_id = ? AND copy_id = ?", (job_id, copy_id))
    conn.execute(
        "UPDATE job_copies SET state = ?, bytes_done = 0, reason = ?, updated = ? WHERE job_id = ? AND copy_id = ?",
        (CopyState.TO_BE_COPIED, reason, now, job_id, copy_id),
    )
    _history(conn, now, "copy.reset", job_id, copy_id, reason=reason)


# ---------------------------------------------------------------- media


def cartridges(conn: sqlite3.Connection, library: str | None = None) -> list[CartridgeRecord]:
    if library:
        rows = conn.execute("SELECT * FROM cartridges WHERE library = ? ORDER BY slot", (library,))
    else:
        rows = conn.execute("SELECT * FROM cartridges ORDER BY library, slot")
    return [from_row(CartridgeRecord, r) for r in rows]


def claim_cartridge(conn: sqlite3.Connection, library: str, copy_id: str, busy: Iterable[str]) -> CartridgeRecord | None:
    """An appendable cartridge of this copy, else a scratch one (now this copy's)."""
    busy = set(busy)
    for r in conn.execute(
        "SELECT * FROM cartridges WHERE library = ? AND ((state = 'appendable' AND copy_id = ?) OR state = 'scratch') "
        "ORDER BY state = 'scratch', slot",
        (library, copy_id),
    ):
        if r["barcode"] in busy:
            continue
        if r["state"] == "scratch":
            conn.execute("UPDATE cartridges SET state = 'appendable', copy_id = ? WHERE barcode = ?", (copy_id, r["barcode"]))
        return from_row(CartridgeRecord, conn.execute("SELECT * FROM cartridges WHERE barcode = ?", (r["barcode"],)).fetchone())
    return None


def set_cartridge_state(conn: sqlite3.Connection, barcode: str, state: str, eod: int) -> None:
    conn.execute("UPDATE cartridges SET state = ?, eod = ? WHERE barcode = ?", (state, eod, barcode))


def open_segment(conn: sqlite3.Connection, job_id: int, copy_id: str, barcode: str, file_no: int, offset: int, eod: int) -> int:
    seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM segments WHERE job_id = ? AND copy_id = ?", (job_id, copy_id)).fetchone()[0]
    conn.execute(
        "INSERT INTO segments (job_id, copy_id, seq, barcode, file_no, offset, length, blocks) VALUES (?, ?, ?, ?, ?, ?, 0, 0)",
        (job_id, copy_id, seq, barcode, file_no, offset),
    )
    conn.execute("UPDATE cartridges SET eod = ? WHERE barcode = ?", (eod, barcode))
    return int(seq)


def checkpoint(
    conn: sqlite3.Connection, *, job_id: int, copy_id: str, seq: int, length: int, blocks: int,
    barcode: str, eod: int, bytes_done: int, now: float,
) -> None:
    """Commit a chunk: the segment grows, the cartridge's end of data moves, the copy's progress too."""
    conn.execute(
        "UPDATE segments SET length = ?, blocks = ? WHERE job_id = ? AND copy_id = ? AND seq = ?",
        (length, blocks, job_id, copy_id, seq),
    )
    conn.execute("UPDATE cartridges SET eod = ? WHERE barcode = ?", (eod, barcode))
    conn.execute(
        "UPDATE job_copies SET bytes_done = ?, updated = ?, "
        "state = CASE WHEN state = 'to_be_copied' THEN 'partially_copied' ELSE state END "
        "WHERE job_id = ? AND copy_id = ?",
        (bytes_done, now, job_id, copy_id),
    )


def segments(conn: sqlite3.Connection, job_id: int, copy_id: str) -> list[SegmentRecord]:
    rows = conn.execute("SELECT * FROM segments WHERE job_id = ? AND copy_id = ? ORDER BY seq", (job_id, copy_id))
    return [from_row(SegmentRecord, r) for r in rows]


def age_jobs(conn: sqlite3.Connection, pairs: Iterable[tuple[int, str]], reason: str, now: float) -> list[tuple[int, str]]:
    """Mark jobs aged on copies (only where still available); return those changed."""
    done = []
    for job_id, copy_id in pairs:
        cur = conn.execute(
            "UPDATE job_copies SET state = ?, reason = ?, updated = ? WHERE job_id = ? AND copy_id = ? AND state = ?",
            (CopyState.AGED, reason, now, job_id, copy_id, CopyState.AVAILABLE),
        )
        if cur.rowcount:
            done.append((job_id, copy_id))
            _history(conn, now, f"copy.{CopyState.AGED}", job_id, copy_id, reason=reason)
    return done


def recycle_cartridges(conn: sqlite3.Connection, library: str, busy: Iterable[str], now: float) -> list[str]:
    """Return to scratch every cartridge of the library that holds no live data: none of
    its segments belongs to a job still running, or to a job copy that has not aged.
    Failed and killed jobs' data is not live: it was never valid."""
    busy = set(busy)
    rows = conn.execute(
        "SELECT c.barcode FROM cartridges c WHERE c.library = ? AND c.state != 'scratch' AND NOT EXISTS ("
        "  SELECT 1 FROM segments s JOIN jobs j ON j.id = s.job_id"
        "  LEFT JOIN job_copies jc ON jc.job_id = s.job_id AND jc.copy_id = s.copy_id"
        "  WHERE s.barcode = c.barcode AND (j.status = 'running' OR (jc.state IS NOT NULL AND jc.state != ?)))"
        " ORDER BY c.slot",
        (library, CopyState.AGED),
    ).fetchall()
    recycled = [r[0] for r in rows if r[0] not in busy]
    for barcode in recycled:
        conn.execute("DELETE FROM segments WHERE barcode = ?", (barcode,))
        conn.execute("UPDATE cartridges SET state = 'scratch', copy_id = NULL, eod = 0 WHERE barcode = ?", (barcode,))
        _history(conn, now, "cartridge.scratch", None, None, barcode=barcode, library=library)
    return recycled


def set_suspended(conn: sqlite3.Connection, copy_id: str, suspended: bool, who: str, now: float) -> None:
    conn.execute("UPDATE copies SET suspended = ? WHERE id = ?", (int(suspended), copy_id))
    _history(conn, now, "auxcopy.suspended" if suspended else "auxcopy.resumed", None, copy_id, who=who)


def suspended_copies(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT id FROM copies WHERE suspended = 1")}


def copies(conn: sqlite3.Connection) -> list[CopyRecord]:
    rows = conn.execute("SELECT id, policy, library, source, is_primary, inoperative FROM copies ORDER BY id")
    return [from_row(CopyRecord, r) for r in rows]


# ---------------------------------------------------------------- aux copy runs


def start_aux_run(conn: sqlite3.Connection, copy_id: str, streams: int, now: float) -> int:
    cur = conn.execute("INSERT INTO auxcopy_runs (copy_id, streams, status, started) VALUES (?, ?, 'running', ?)", (copy_id, streams, now))
    _history(conn, now, "auxcopy.started", None, copy_id, run=cur.lastrowid, streams=streams)
    return int(cur.lastrowid)


def finish_aux_run(conn: sqlite3.Connection, run_id: int, status: str, reason: str, jobs: int, nbytes: int, now: float) -> None:
    conn.execute(
        "UPDATE auxcopy_runs SET status = ?, reason = ?, jobs = ?, bytes = ?, ended = ? WHERE id = ?",
        (status, reason, jobs, nbytes, now, run_id),
    )
    _history(conn, now, f"auxcopy.{status}", None, None, run=run_id, reason=reason, jobs=jobs, bytes=nbytes)


def interrupt_aux_runs(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("UPDATE auxcopy_runs SET status = 'interrupted', reason = 'daemon stopped', ended = ? WHERE status = 'running'", (now,))


def aux_runs(conn: sqlite3.Connection, copy_id: str | None = None) -> list[AuxRunRecord]:
    rows = conn.execute("SELECT * FROM auxcopy_runs WHERE ? IS NULL OR copy_id = ? ORDER BY id", (copy_id, copy_id))
    return [from_row(AuxRunRecord, r) for r in rows]


# ---------------------------------------------------------------- drills


def start_drill(conn: sqlite3.Connection, mode: str, trigger: str, now: float) -> int:
    cur = conn.execute("INSERT INTO drills (mode, trigger, started, status) VALUES (?, ?, ?, 'running')", (mode, trigger, now))
    _history(conn, now, "drill.started", mode=mode, trigger=trigger, drill=cur.lastrowid)
    return int(cur.lastrowid)


def finish_drill(conn: sqlite3.Connection, drill_id: int, status: str, summary: str, report: str, now: float) -> None:
    conn.execute("UPDATE drills SET status = ?, summary = ?, report = ?, ended = ? WHERE id = ?", (status, summary, report, now, drill_id))
    _history(conn, now, f"drill.{status}", drill=drill_id, summary=summary)


def interrupt_drills(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("UPDATE drills SET status = 'interrupted', ended = ? WHERE status = 'running'", (now,))


def drills(conn: sqlite3.Connection) -> list[dict[str, object]]:
    return [dict(r) for r in conn.execute("SELECT * FROM drills ORDER BY id")]


# ---------------------------------------------------------------- promotion


def promotion_loss(conn: sqlite3.Connection, copy_id: str, primary_id: str) -> Loss:
    """What promoting ``copy_id`` loses: valid jobs on the current primary it does not hold."""
    rows = conn.execute(
        "SELECT j.id, j.bytes, j.started FROM jobs j JOIN job_copies p ON p.job_id = j.id AND p.copy_id = ? AND p.state = ? "
        "WHERE j.status = 'completed' AND NOT EXISTS ("
        "  SELECT 1 FROM job_copies c WHERE c.job_id = j.id AND c.copy_id = ? AND c.state = ?) ORDER BY j.id",
        (primary_id, CopyState.AVAILABLE, copy_id, CopyState.AVAILABLE),
    ).fetchall()
    return Loss(tuple(r[0] for r in rows), sum(r[1] for r in rows), max((r[2] for r in rows), default=None))


def promote(
    conn: sqlite3.Connection, copy_id: str, old_id: str, subclients: Iterable[str], followers: Iterable[str], why: str, who: str, now: float,
    lossless: bool = False,
) -> Loss:
    """One transaction: ``copy_id`` becomes the primary; the old primary becomes a secondary
    fed from it, inoperative until repaired; ``followers`` copy from the new primary. If the
    new primary was not in sync, every subclient's next backup must be a full (Commvault's rule).
    With ``lossless``, refused (changing nothing) unless the new primary holds every job."""
    loss = promotion_loss(conn, copy_id, old_id)
    if lossless and loss.jobs:
        raise Refused(f"{copy_id} does not hold jobs {list(loss.jobs)} of {old_id} yet")
    conn.execute("UPDATE copies SET is_primary = 0, source = ?, inoperative = ? WHERE id = ?", (copy_id, why, old_id))
    conn.execute("UPDATE copies SET is_primary = 1, source = NULL, inoperative = '' WHERE id = ?", (copy_id,))
    conn.executemany("UPDATE copies SET source = ? WHERE id = ?", [(copy_id, f) for f in followers])
    if loss.jobs:
        for sub in subclients:
            set_meta(conn, f"full_required:{sub}", f"promotion of {copy_id} while it was not in sync")
    _history(conn, now, "copy.promoted", None, copy_id, old_primary=old_id, who=who, lost_jobs=list(loss.jobs), followers=list(followers))
    return loss


def full_required(conn: sqlite3.Connection, client: str, subclient: str) -> str | None:
    return get_meta(conn, f"full_required:{client}/{subclient}")


def repair_copy(conn: sqlite3.Connection, copy_id: str, who: str, now: float) -> str:
    row = conn.execute("SELECT inoperative FROM copies WHERE id = ?", (copy_id,)).fetchone()
    conn.execute("UPDATE copies SET inoperative = '' WHERE id = ?", (copy_id,))
    _history(conn, now, "copy.repaired", None, copy_id, who=who, was=row[0] if row else "")
    return row[0] if row else ""
