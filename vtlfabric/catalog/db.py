"""The CommServe: one SQLite file in WAL mode, reached only through worker threads."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from vtlfabric import blocking
from vtlfabric.catalog.schema import migrate

T = TypeVar("T")


def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN ourselves, so one call is one transaction.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")  # a committed checkpoint survives power loss
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    # Statement journals (the undo of one statement inside a transaction; triggers and
    # foreign keys make SQLite keep one per statement) in memory, not in a temp file:
    # there every row written cost 4-byte and 4 KiB writes for each page it touched.
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


class StateFull(OSError):
    """The state directory has no room: the catalog takes no change (nothing of it is kept)."""


@attrs.define
class Catalog:
    """Every query runs as one transaction in a worker thread, one at a time."""

    path: Path
    _conn: sqlite3.Connection
    _limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))
    full: bool = False  # its disk is full (a fault): reads go on, a change is rolled back and refused

    @classmethod
    async def open(cls, path: Path) -> Catalog:
        conn = await blocking.run_sync(connect, path)
        await blocking.run_sync(migrate, conn)
        return cls(path, conn)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` inside one transaction, off the event loop."""
        return await blocking.run_sync(self._transaction, fn, args, limiter=self._limiter)

    def _transaction(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        self._conn.execute("BEGIN IMMEDIATE")
        changes = self._conn.total_changes
        try:
            result = fn(self._conn, *args)
            if self.full and self._conn.total_changes != changes:
                raise StateFull(errno.ENOSPC, f"database or disk is full: {self.path} (nothing of this change was kept)")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    async def aclose(self) -> None:
        await blocking.run_sync(self._conn.close, limiter=self._limiter)
