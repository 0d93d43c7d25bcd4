"""The catalog's journal (the history table) and its key-value meta table: what every
other query module writes beside its change, in the same transaction."""

from __future__ import annotations

import json
import sqlite3


def record(
    conn: sqlite3.Connection, now: float, event: str, job_id: int | None = None, copy_id: str | None = None, **detail: object
) -> None:
    conn.execute(
        "INSERT INTO history (time, job_id, copy_id, event, detail) VALUES (?, ?, ?, ?, ?)",
        (now, job_id, copy_id, event, json.dumps(detail, sort_keys=True) if detail else ""),
    )


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value)
    )
