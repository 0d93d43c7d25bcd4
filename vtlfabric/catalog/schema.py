"""The catalog schema, versioned. A new version appends a migration; none is ever edited."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: jobs, copies, where data sits, checkpoints, history
    """
    CREATE TABLE copies (
        id TEXT PRIMARY KEY,            -- POLICY/COPY
        policy TEXT NOT NULL,
        library TEXT NOT NULL,          -- site/library
        source TEXT,                    -- POLICY/COPY or NULL for the primary
        is_primary INTEGER NOT NULL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client TEXT NOT NULL,
        subclient TEXT NOT NULL,
        policy TEXT NOT NULL,
        type TEXT NOT NULL,             -- full, incremental, differential
        requested_type TEXT NOT NULL,
        status TEXT NOT NULL,           -- running, completed, failed, killed
        reason TEXT NOT NULL DEFAULT '',
        generation INTEGER NOT NULL,    -- the client's point in time this job captured
        base_generation INTEGER,        -- what an incremental/differential is relative to
        started REAL NOT NULL,
        ended REAL,
        objects INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        digest TEXT NOT NULL DEFAULT ''  -- sha256 of the job's data stream
    );
    CREATE INDEX jobs_client ON jobs (client, subclient, status);
    CREATE TABLE job_copies (
        job_id INTEGER NOT NULL REFERENCES jobs (id),
        copy_id TEXT NOT NULL REFERENCES copies (id),
        state TEXT NOT NULL,            -- to_be_copied, partially_copied, available, ...
        bytes_done INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        updated REAL NOT NULL,
        PRIMARY KEY (job_id, copy_id)
    );
    CREATE TABLE cartridges (
        barcode TEXT PRIMARY KEY,
        library TEXT NOT NULL,
        slot INTEGER NOT NULL,
        copy_id TEXT,                   -- the copy whose data it holds; NULL while scratch
        state TEXT NOT NULL,            -- scratch, appendable, full
        eod INTEGER NOT NULL DEFAULT 0, -- committed end of data, in bytes of the image
        UNIQUE (library, slot)
    );
    CREATE TABLE segments (
        job_id INTEGER NOT NULL REFERENCES jobs (id),
        copy_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        barcode TEXT NOT NULL REFERENCES cartridges (barcode),
        file_no INTEGER NOT NULL,       -- data file number on the cartridge
        offset INTEGER NOT NULL,        -- where this segment starts in the job's stream
        length INTEGER NOT NULL,        -- committed bytes
        blocks INTEGER NOT NULL,
        PRIMARY KEY (job_id, copy_id, seq)
    );
    CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        job_id INTEGER,
        copy_id TEXT,
        event TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE auxcopy_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        copy_id TEXT NOT NULL,
        streams INTEGER NOT NULL,
        status TEXT NOT NULL,           -- running, completed, failed, interrupted
        reason TEXT NOT NULL DEFAULT '',
        started REAL NOT NULL,
        ended REAL,
        jobs INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: an aux copy can be suspended, and stays so across restarts
    """
    ALTER TABLE copies ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: DR drills and where their reports are
    """
    CREATE TABLE drills (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        mode TEXT NOT NULL,
        trigger TEXT NOT NULL,          -- signal, ctl
        started REAL NOT NULL,
        ended REAL,
        status TEXT NOT NULL,           -- running, passed, failed, interrupted
        summary TEXT NOT NULL DEFAULT '',
        report TEXT NOT NULL DEFAULT '' -- path of the JSON report
    );
    """,
    # 4: a copy can be inoperative (why, or ''), e.g. an old primary until it is repaired
    """
    ALTER TABLE copies ADD COLUMN inoperative TEXT NOT NULL DEFAULT '';
    """,
    # 5: where each cartridge is: in its slot, in a drive (which), or outside the library (exported)
    """
    ALTER TABLE cartridges ADD COLUMN location TEXT NOT NULL DEFAULT 'slot';
    ALTER TABLE cartridges ADD COLUMN drive INTEGER;
    """,
    # 6: indexes for questions asked of years of jobs: each copy's jobs by state (status,
    # lag) and by when they last changed (what is new since a copy's last registration),
    # jobs by type and status (counts, a selective copy's fulls) and by start, runs by copy
    """
    CREATE INDEX job_copies_updated ON job_copies (copy_id, updated);
    CREATE INDEX jobs_type ON jobs (type, status);
    CREATE INDEX jobs_started ON jobs (started);
    CREATE INDEX auxcopy_runs_copy ON auxcopy_runs (copy_id, status);
    """,
    # 7: each job-copy row carries its job's bytes, kept by triggers, so a copy's jobs and
    # bytes by state are one covering index (ctl status, copies, metrics at any size)
    """
    ALTER TABLE job_copies ADD COLUMN job_bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE job_copies SET job_bytes = (SELECT bytes FROM jobs WHERE jobs.id = job_copies.job_id);
    CREATE TRIGGER job_copies_bytes AFTER INSERT ON job_copies BEGIN
        UPDATE job_copies SET job_bytes = (SELECT bytes FROM jobs WHERE id = NEW.job_id) WHERE rowid = NEW.rowid;
    END;
    CREATE TRIGGER jobs_bytes AFTER UPDATE OF bytes ON jobs BEGIN
        UPDATE job_copies SET job_bytes = NEW.bytes WHERE job_id = NEW.id;
    END;
    CREATE INDEX job_copies_state ON job_copies (copy_id, state, job_bytes);
    """,
    # 8: running totals kept by triggers, so status, copies and a metrics scrape read a
    # few rows whatever the number of jobs or runs: jobs and bytes by policy, type and
    # status; each copy's jobs and bytes by state; the bytes each copy's finished runs
    # copied. A total that falls to 0 keeps its row (readers skip it).
    """
    CREATE TABLE job_totals (
        policy TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
        jobs INTEGER NOT NULL, bytes INTEGER NOT NULL,
        PRIMARY KEY (policy, type, status)
    ) WITHOUT ROWID;
    INSERT INTO job_totals SELECT policy, type, status, COUNT(*), SUM(bytes) FROM jobs GROUP BY policy, type, status;
    CREATE TRIGGER job_totals_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_totals VALUES (NEW.policy, NEW.type, NEW.status, 1, NEW.bytes)
            ON CONFLICT (policy, type, status) DO UPDATE SET jobs = jobs + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER job_totals_update AFTER UPDATE OF policy, type, status, bytes ON jobs BEGIN
        UPDATE job_totals SET jobs = jobs - 1, bytes = bytes - OLD.bytes
            WHERE policy = OLD.policy AND type = OLD.type AND status = OLD.status;
        INSERT INTO job_totals VALUES (NEW.policy, NEW.type, NEW.status, 1, NEW.bytes)
            ON CONFLICT (policy, type, status) DO UPDATE SET jobs = jobs + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER job_totals_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_totals SET jobs = jobs - 1, bytes = bytes - OLD.bytes
            WHERE policy = OLD.policy AND type = OLD.type AND status = OLD.status;
    END;
    CREATE TABLE copy_totals (
        copy_id TEXT NOT NULL, state TEXT NOT NULL,
        jobs INTEGER NOT NULL, bytes INTEGER NOT NULL,
        PRIMARY KEY (copy_id, state)
    ) WITHOUT ROWID;
    INSERT INTO copy_totals SELECT copy_id, state, COUNT(*), SUM(job_bytes) FROM job_copies GROUP BY copy_id, state;
    CREATE TRIGGER copy_totals_insert AFTER INSERT ON job_copies BEGIN
        INSERT INTO copy_totals VALUES (NEW.copy_id, NEW.state, 1, NEW.job_bytes)
            ON CONFLICT (copy_id, state) DO UPDATE SET jobs = jobs + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER copy_totals_update AFTER UPDATE OF copy_id, state, job_bytes ON job_copies BEGIN
        UPDATE copy_totals SET jobs = jobs - 1, bytes = bytes - OLD.job_bytes
            WHERE copy_id = OLD.copy_id AND state = OLD.state;
        INSERT INTO copy_totals VALUES (NEW.copy_id, NEW.state, 1, NEW.job_bytes)
            ON CONFLICT (copy_id, state) DO UPDATE SET jobs = jobs + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER copy_totals_delete AFTER DELETE ON job_copies BEGIN
        UPDATE copy_totals SET jobs = jobs - 1, bytes = bytes - OLD.job_bytes
            WHERE copy_id = OLD.copy_id AND state = OLD.state;
    END;
    CREATE TABLE run_totals (copy_id TEXT PRIMARY KEY, bytes INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO run_totals SELECT copy_id, SUM(bytes) FROM auxcopy_runs WHERE status != 'running' GROUP BY copy_id;
    CREATE TRIGGER run_totals_insert AFTER INSERT ON auxcopy_runs WHEN NEW.status != 'running' BEGIN
        INSERT INTO run_totals VALUES (NEW.copy_id, NEW.bytes)
            ON CONFLICT (copy_id) DO UPDATE SET bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER run_totals_update AFTER UPDATE OF copy_id, status, bytes ON auxcopy_runs BEGIN
        UPDATE run_totals SET bytes = bytes - OLD.bytes WHERE copy_id = OLD.copy_id AND OLD.status != 'running';
        INSERT INTO run_totals SELECT NEW.copy_id, NEW.bytes WHERE NEW.status != 'running'
            ON CONFLICT (copy_id) DO UPDATE SET bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER run_totals_delete AFTER DELETE ON auxcopy_runs BEGIN
        UPDATE run_totals SET bytes = bytes - OLD.bytes WHERE copy_id = OLD.copy_id AND OLD.status != 'running';
    END;
    DROP INDEX auxcopy_runs_copy;
    CREATE INDEX auxcopy_runs_ended ON auxcopy_runs (copy_id, status, ended);
    """,
    # 9: what data aging reads at any size: the segments on a cartridge (is anything on
    # it still live?), and each client's jobs by start (its newest job not on a copy)
    """
    CREATE INDEX segments_barcode ON segments (barcode);
    CREATE INDEX jobs_client_started ON jobs (client, started);
    """,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date, one transaction per version; return the version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(f"catalog schema version {version} is newer than this vtlfabric ({len(MIGRATIONS)})")
    for number in range(version + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a script where SQLite's own tokenizer says a statement ends (not at every ';',
    which comments may hold). executescript() would commit our transaction for us."""
    out, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending)
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()[:60]}")
    return out
