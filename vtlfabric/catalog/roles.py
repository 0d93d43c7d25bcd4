"""Copies' roles: which is primary, what each copies from, suspension, promotion and repair."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from vtlfabric.catalog.errors import Refused
from vtlfabric.catalog.journal import get_meta, record, set_meta
from vtlfabric.catalog.records import CopyRecord, Loss, from_row
from vtlfabric.vocab import CopyState


def sync_copies(conn: sqlite3.Connection, copies: Iterable[CopyRecord]) -> None:
    """Add the config's new copies. A known copy keeps its role (primary, source) from the
    catalog: a promotion changed it there, and a restart must not undo it."""
    for c in copies:
        conn.execute(
            "INSERT INTO copies (id, policy, library, source, is_primary) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET library = excluded.library",
            (c.id, c.policy, c.library, c.source, int(c.is_primary)),
        )


def set_suspended(conn: sqlite3.Connection, copy_id: str, suspended: bool, who: str, now: float) -> None:
    conn.execute("UPDATE copies SET suspended = ? WHERE id = ?", (int(suspended), copy_id))
    record(conn, now, "auxcopy.suspended" if suspended else "auxcopy.resumed", None, copy_id, who=who)


def suspended_copies(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT id FROM copies WHERE suspended = 1")}


def copies(conn: sqlite3.Connection) -> list[CopyRecord]:
    rows = conn.execute("SELECT id, policy, library, source, is_primary, inoperative FROM copies ORDER BY id")
    return [from_row(CopyRecord, r) for r in rows]


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
    conn: sqlite3.Connection,
    copy_id: str,
    old_id: str,
    subclients: Iterable[str],
    followers: Iterable[str],
    why: str,
    who: str,
    now: float,
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
    record(
        conn,
        now,
        "copy.promoted",
        None,
        copy_id,
        old_primary=old_id,
        who=who,
        lost_jobs=list(loss.jobs),
        followers=list(followers),
    )
    return loss


def full_required(conn: sqlite3.Connection, client: str, subclient: str) -> str | None:
    return get_meta(conn, f"full_required:{client}/{subclient}")


def repair_copy(conn: sqlite3.Connection, copy_id: str, who: str, now: float) -> str:
    row = conn.execute("SELECT inoperative FROM copies WHERE id = ?", (copy_id,)).fetchone()
    conn.execute("UPDATE copies SET inoperative = '' WHERE id = ?", (copy_id,))
    record(conn, now, "copy.repaired", None, copy_id, who=who, was=row[0] if row else "")
    return row[0] if row else ""
