"""Cartridges and the segments of jobs on them: claiming, checkpoints, aging and recycling."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from vtlfabric.catalog.journal import record
from vtlfabric.catalog.records import CartridgeRecord, SegmentRecord, from_row
from vtlfabric.vocab import CopyState


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


def mark_cartridge_bad(conn: sqlite3.Connection, barcode: str, eod: int | None, reason: str, now: float) -> None:
    """A write to it failed, or it read as another volume: it is never claimed for writing
    again, nor recycled. What was committed on it (up to ``eod``; None: what the catalog
    has) stays where the catalog says, and is read from there."""
    conn.execute("UPDATE cartridges SET state = 'bad', eod = COALESCE(?, eod) WHERE barcode = ?", (eod, barcode))
    record(conn, now, "cartridge.bad", None, None, barcode=barcode, reason=reason)


def open_segment(conn: sqlite3.Connection, job_id: int, copy_id: str, barcode: str, file_no: int, offset: int, eod: int) -> int:
    seq = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM segments WHERE job_id = ? AND copy_id = ?", (job_id, copy_id)
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO segments (job_id, copy_id, seq, barcode, file_no, offset, length, blocks) VALUES (?, ?, ?, ?, ?, ?, 0, 0)",
        (job_id, copy_id, seq, barcode, file_no, offset),
    )
    conn.execute("UPDATE cartridges SET eod = ? WHERE barcode = ?", (eod, barcode))
    return int(seq)


def checkpoint(
    conn: sqlite3.Connection,
    *,
    job_id: int,
    copy_id: str,
    seq: int,
    length: int,
    blocks: int,
    barcode: str,
    eod: int,
    bytes_done: int,
    now: float,
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
            record(conn, now, f"copy.{CopyState.AGED}", job_id, copy_id, reason=reason)
    return done


def recycle_cartridges(conn: sqlite3.Connection, library: str, busy: Iterable[str], now: float) -> list[str]:
    """Return to scratch every cartridge of the library that holds no live data: none of
    its segments belongs to a job still running, or to a job copy that has not aged.
    Failed and killed jobs' data is not live: it was never valid. A bad cartridge (a write
    to it failed) stays out of use."""
    busy = set(busy)
    rows = conn.execute(
        "SELECT c.barcode FROM cartridges c WHERE c.library = ? AND c.state NOT IN ('scratch', 'bad') AND NOT EXISTS ("
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
        record(conn, now, "cartridge.scratch", None, None, barcode=barcode, library=library)
    return recycled


def set_location(conn: sqlite3.Connection, barcodes: Iterable[str], location: str, drive: int | None, now: float) -> None:
    """Where cartridges are now; a move to or from outside the library goes in the journal."""
    for barcode in barcodes:
        old = conn.execute("SELECT location FROM cartridges WHERE barcode = ?", (barcode,)).fetchone()
        conn.execute("UPDATE cartridges SET location = ?, drive = ? WHERE barcode = ?", (location, drive, barcode))
        if old is not None and "outside" in (old[0], location) and old[0] != location:
            record(conn, now, "cartridge.exported" if location == "outside" else "cartridge.imported", barcode=barcode)


def home_cartridges(conn: sqlite3.Connection, library: str) -> None:
    """At start: whatever a crash left in a drive is back in its slot (drives start empty)."""
    conn.execute("UPDATE cartridges SET location = 'slot', drive = NULL WHERE library = ? AND location = 'drive'", (library,))
