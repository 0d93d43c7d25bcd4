"""`make bench`, the peer's rows: Bacula 9.6 moving the same bytes on the same disk.

Issue 13 compares us with Bacula: "for Bacula, file volumes with PoolUncopiedJobs". Under
a root directory of its own this module sets up a private Bacula (director, storage
daemon, file daemon) that shares nothing with a system one: config files written here,
its own working and pid directories, a fresh SQLite catalog made by Debian's
make_sqlite3_tables, generated passwords, the daemons in the foreground (``-f``) on
127.0.0.1 and free high ports. No TLS, no compression, no software encryption (the
issue's Bacula copy was neither encrypted nor read back); file signatures are MD5, as in
Debian's stock FileSet.

The FileSet is one file of ``size`` random bytes (incompressible, like our clients'
data). Each run is three jobs, each timed by wall clock from the bconsole session that
queues it (bconsole's start and connection included, a few ms) until its catalog record
says it ended (polled every 5 ms: bconsole's ``wait`` looks once a second):

* ``bacula backup``: a Full backup to file volumes in the Primary pool's directory;
* ``bacula copy job``: a Copy job, Selection Type = PoolUncopiedJobs, from Primary to its
  Next Pool, Secondary, whose file volumes are in another directory (each run's new
  backup is the one uncopied job, so every run copies the same bytes);
* ``bacula restore``: a restore of that copy (Secondary's volume, as our restore at DR
  reads the DR copy) to a new directory.

Each job also gives a ``, running`` figure: from when the catalog first shows it running
(status R) to its end. Bacula's director holds a job it queues up to 2 s before starting
it (src/dird/jobq.c: its queue thread moves the job to the ready queue, then sleeps
``bmicrosleep(2, 0)`` before running it; another thread already asleep may wake first), a
cost per job that weighs on small sizes and scatters the wall-clock figures; the running
figures leave it out.

Every job must end with status T (terminated OK) in the catalog, and the restored file
must hash as the source did (checked outside the timed part). The daemons are always
stopped (SIGTERM, then SIGKILL).

    .venv/bin/python -m tests.benchbacula [--size 64MiB] [--runs 5]

``.ci/bacula-deps`` installs Bacula from Debian; without it ``bacula_figures`` raises
``BaculaMissing`` with the reason, and ``make bench`` says it skipped the peer.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import secrets
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from string import Template

import attrs

from tests.benchfigures import Figure, Row

BACKUP = "bacula backup"
COPY = "bacula copy job"
RESTORE = "bacula restore"
RUNNING = {name: f"{name}, running" for name in (BACKUP, COPY, RESTORE)}

PROGRAMS = ("bacula-dir", "bacula-sd", "bacula-fd", "bconsole")
SBIN = ("/usr/sbin", "/sbin")  # where Debian puts the daemons: not on a user's PATH
MAKE_TABLES = Path("/usr/share/bacula-director/make_sqlite3_tables")
DB_NAME = "bacula"
CHUNK = 4 * 2**20
STARTUP_SECONDS = 15.0
JOB_TIMEOUT = 3600.0
STOP_SECONDS = 10.0
POLL = 0.005  # s between looks at a running job's catalog record
FINAL = frozenset("TWEefAI")  # a job's status once it has ended: OK, with warnings, errors, canceled, incomplete


class BaculaMissing(Exception):
    """Bacula cannot run here; the message says what is missing."""


class BaculaFailed(Exception):
    """A daemon did not start, or a job did not terminate OK."""


def find_bacula(path: str | None = None) -> dict[str, Path]:
    """Bacula's programs, found on ``path`` (default: $PATH, then /usr/sbin and /sbin)."""
    search = path if path is not None else os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    found = {name: shutil.which(name, path=search) for name in PROGRAMS}
    missing = [name for name, where in found.items() if where is None]
    if missing:
        raise BaculaMissing(f"{', '.join(missing)} not found; .ci/bacula-deps installs Bacula")
    if not MAKE_TABLES.exists():
        raise BaculaMissing(f"{MAKE_TABLES} not found (bacula-director-sqlite3)")
    return {name: Path(where) for name, where in found.items() if where}


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 (held open together while the kernel picks them)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


@attrs.frozen
class Layout:
    """Where a private Bacula keeps everything, under one root, and how its daemons meet."""

    root: Path
    dir_port: int
    sd_port: int
    fd_port: int
    console_password: str = attrs.field(factory=lambda: secrets.token_urlsafe(24))
    sd_password: str = attrs.field(factory=lambda: secrets.token_urlsafe(24))
    fd_password: str = attrs.field(factory=lambda: secrets.token_urlsafe(24))

    @classmethod
    def at(cls, root: Path) -> Layout:
        return cls(root, *free_ports(3))

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    def work(self, daemon: str) -> Path:
        return self.root / "work" / daemon

    @property
    def catalog(self) -> Path:
        return self.work("dir") / f"{DB_NAME}.db"

    @property
    def job_log(self) -> Path:
        return self.work("dir") / "jobs.log"

    def volumes(self, pool: str) -> Path:
        return self.root / "volumes" / pool

    @property
    def source(self) -> Path:
        return self.root / "source" / "data.bin"

    def restored(self, dest: Path) -> Path:
        """Bacula restores a file under ``where`` at its whole original path."""
        return dest / self.source.relative_to(self.source.anchor)

    def conf(self, program: str) -> Path:
        return self.etc / f"{program}.conf"

    def values(self) -> dict[str, object]:
        return {
            **attrs.asdict(self),
            "query": self.etc / "query.sql",
            "dir_work": self.work("dir"),
            "sd_work": self.work("sd"),
            "fd_work": self.work("fd"),
            "job_log": self.job_log,
            "primary": self.volumes("primary"),
            "secondary": self.volumes("secondary"),
            "source": self.source,
            "restores": self.root / "restores",
        }


DIRECTOR = """\
    Director {
      Name = bench-dir
      DIRaddress = 127.0.0.1
      DIRport = $dir_port
      QueryFile = "$query"
      WorkingDirectory = "$dir_work"
      PidDirectory = "$dir_work"
      Maximum Concurrent Jobs = 4
      Password = "$console_password"
      Messages = Daemon
    }
    Catalog {
      Name = BenchCatalog
      dbname = "bacula"; dbuser = ""; dbpassword = ""
    }
    Messages {
      Name = Standard
      console = all, !skipped, !saved
      append = "$job_log" = all, !skipped
      catalog = all
    }
    Messages {
      Name = Daemon
      console = all, !skipped, !saved
      append = "$job_log" = all, !skipped
    }
    Client {
      Name = bench-fd
      Address = 127.0.0.1
      FDPort = $fd_port
      Catalog = BenchCatalog
      Password = "$fd_password"
      AutoPrune = no
      Maximum Concurrent Jobs = 4
    }
    Storage {
      Name = Primary
      Address = 127.0.0.1
      SDPort = $sd_port
      Password = "$sd_password"
      Device = PrimaryDevice
      Media Type = PrimaryFile
      Maximum Concurrent Jobs = 4
    }
    Storage {
      Name = Secondary
      Address = 127.0.0.1
      SDPort = $sd_port
      Password = "$sd_password"
      Device = SecondaryDevice
      Media Type = SecondaryFile
      Maximum Concurrent Jobs = 4
    }
    Pool {
      Name = Primary
      Pool Type = Backup
      Storage = Primary
      Next Pool = Secondary
      Label Format = "Primary-"
      Maximum Volume Jobs = 1
      Recycle = no
      AutoPrune = no
    }
    Pool {
      Name = Secondary
      Pool Type = Backup
      Storage = Secondary
      Label Format = "Secondary-"
      Maximum Volume Jobs = 1
      Recycle = no
      AutoPrune = no
    }
    FileSet {
      Name = BenchSet
      Include {
        Options {
          signature = MD5
        }
        File = "$source"
      }
    }
    Job {
      Name = BenchBackup
      Type = Backup
      Level = Full
      Client = bench-fd
      FileSet = BenchSet
      Pool = Primary
      Storage = Primary
      Messages = Standard
    }
    Job {
      Name = BenchCopy
      Type = Copy
      Level = Full
      Selection Type = PoolUncopiedJobs
      Client = bench-fd
      FileSet = BenchSet
      Pool = Primary
      Messages = Standard
    }
    Job {
      Name = BenchRestore
      Type = Restore
      Client = bench-fd
      FileSet = BenchSet
      Pool = Secondary
      Storage = Secondary
      Where = "$restores"
      Messages = Standard
    }
"""

STORAGE = """\
    Storage {
      Name = bench-sd
      SDAddress = 127.0.0.1
      SDPort = $sd_port
      WorkingDirectory = "$sd_work"
      Pid Directory = "$sd_work"
      Maximum Concurrent Jobs = 4
    }
    Director {
      Name = bench-dir
      Password = "$sd_password"
    }
    Device {
      Name = PrimaryDevice
      Media Type = PrimaryFile
      Archive Device = "$primary"
      LabelMedia = yes
      Random Access = yes
      AutomaticMount = yes
      RemovableMedia = no
      AlwaysOpen = no
      Maximum Concurrent Jobs = 4
    }
    Device {
      Name = SecondaryDevice
      Media Type = SecondaryFile
      Archive Device = "$secondary"
      LabelMedia = yes
      Random Access = yes
      AutomaticMount = yes
      RemovableMedia = no
      AlwaysOpen = no
      Maximum Concurrent Jobs = 4
    }
    Messages {
      Name = Standard
      director = bench-dir = all
    }
"""

FILE_DAEMON = """\
    FileDaemon {
      Name = bench-fd
      FDAddress = 127.0.0.1
      FDport = $fd_port
      WorkingDirectory = "$fd_work"
      Pid Directory = "$fd_work"
      Maximum Concurrent Jobs = 4
    }
    Director {
      Name = bench-dir
      Password = "$fd_password"
    }
    Messages {
      Name = Standard
      director = bench-dir = all, !skipped, !restored
    }
"""

CONSOLE = """\
    Director {
      Name = bench-dir
      Address = 127.0.0.1
      DIRport = $dir_port
      Password = "$console_password"
    }
"""

CONFIGS = {"bacula-dir": DIRECTOR, "bacula-sd": STORAGE, "bacula-fd": FILE_DAEMON, "bconsole": CONSOLE}


def write_configs(layout: Layout) -> None:
    for path in (
        layout.etc,
        layout.work("dir"),
        layout.work("sd"),
        layout.work("fd"),
        *map(layout.volumes, ("primary", "secondary")),
    ):
        path.mkdir(parents=True, exist_ok=True)
    (layout.etc / "query.sql").write_text("")
    values = layout.values()
    for program, template in CONFIGS.items():
        layout.conf(program).write_text(Template(textwrap.dedent(template)).substitute(values))


def make_catalog(layout: Layout) -> None:
    """A fresh SQLite catalog from Debian's script, which is written for /var/lib/bacula and a
    database name its packaging fills in: run a copy that works in our directory instead."""
    script = MAKE_TABLES.read_text()
    for placeholder in ("cd /var/lib/bacula", "XXX_DBNAME_XXX"):
        if placeholder not in script:
            raise BaculaFailed(f"{MAKE_TABLES} has changed: no {placeholder!r} in it")
    script = script.replace("cd /var/lib/bacula", f"cd {shlex.quote(str(layout.work('dir')))}").replace("XXX_DBNAME_XXX", DB_NAME)
    copy = layout.etc / "make_sqlite3_tables"
    copy.write_text(script)
    result = subprocess.run(["sh", str(copy)], capture_output=True, text=True)
    if result.returncode != 0 or not layout.catalog.exists():
        raise BaculaFailed(f"{MAKE_TABLES} made no catalog at {layout.catalog}: {result.stdout}{result.stderr}")


def write_source(path: Path, size: int) -> str:
    """``size`` random bytes (incompressible, like our clients'); returns their SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for offset in range(0, size, CHUNK):
            chunk = os.urandom(min(CHUNK, size - offset))
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_config(binaries: dict[str, Path], layout: Layout, program: str) -> None:
    result = subprocess.run([str(binaries[program]), "-t", "-c", str(layout.conf(program))], capture_output=True, text=True)
    if result.returncode != 0:
        raise BaculaFailed(f"{program} rejects {layout.conf(program)}: {(result.stdout + result.stderr).strip()}")


def wait_listening(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS  # clock-ok: a real daemon starts in real time
    while time.monotonic() < deadline:  # clock-ok
        if process.poll() is not None:
            raise BaculaFailed(f"{process.args[0]} exited {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)  # clock-ok
    raise BaculaFailed(f"{process.args[0]} is not listening on 127.0.0.1:{port} after {STARTUP_SECONDS:.0f} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running(binaries: dict[str, Path], layout: Layout) -> Iterator[None]:
    """The three daemons in the foreground, each listening before the next starts; always stopped."""
    started: list[subprocess.Popen] = []
    try:
        for program, port in (("bacula-sd", layout.sd_port), ("bacula-fd", layout.fd_port), ("bacula-dir", layout.dir_port)):
            check_config(binaries, layout, program)
            log = layout.root / f"{program}.log"
            with log.open("wb") as out:
                command = [str(binaries[program]), "-f", "-c", str(layout.conf(program))]
                started.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            wait_listening(port, started[-1], log)
        yield
    finally:
        for process in reversed(started):
            stop(process)


@attrs.frozen
class Job:
    """One finished job, as the catalog has it."""

    id: int
    type: str
    status: str
    bytes: int


@attrs.frozen
class Timing:
    """A job's wall seconds from the console's ``run`` to its end in the catalog, and of those
    the seconds it ran: from its status R (the director started it) to its end."""

    jobid: int
    wall: float
    running: float


@attrs.define
class Bacula:
    """A running private Bacula: queue a job, time it, read its catalog record."""

    binaries: dict[str, Path]
    layout: Layout
    size: int

    def console(self, commands: str) -> str:
        command = [str(self.binaries["bconsole"]), "-n", "-c", str(self.layout.conf("bconsole"))]
        result = subprocess.run(command, input=commands, capture_output=True, text=True, timeout=JOB_TIMEOUT)
        if result.returncode != 0:
            raise BaculaFailed(f"bconsole exited {result.returncode}: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result.stdout

    def catalog(self) -> contextlib.closing[sqlite3.Connection]:
        return contextlib.closing(sqlite3.connect(f"file:{self.layout.catalog}?mode=ro", uri=True, timeout=5.0))

    def timed(self, command: str) -> Timing:
        """Queue a job and watch its catalog record until it ends (not bconsole's ``wait``,
        which looks once a second: at 64 MiB that would be much of the time)."""
        began = time.perf_counter()  # clock-ok: a benchmark measures wall time
        out = self.console(f"{command}\n")
        queued = re.search(r"Job queued\. JobId=(\d+)", out)
        if not queued:
            raise BaculaFailed(f"{command!r} queued no job: {out[-2000:]}")
        jobid = int(queued.group(1))
        started = self.await_end(jobid, began + JOB_TIMEOUT) or began
        ended = time.perf_counter()  # clock-ok
        self.console("wait\n")  # untimed: every daemon done with the job before the next one
        return Timing(jobid, ended - began, ended - started)

    def await_end(self, jobid: int, deadline: float) -> float | None:
        """Poll the job's status until it is final; when it was first seen running (R), if it was."""
        started = None
        with self.catalog() as db:
            while time.perf_counter() < deadline:  # clock-ok
                row = db.execute("SELECT JobStatus FROM Job WHERE JobId = ?", (jobid,)).fetchone()
                status = row[0] if row else None
                if status in FINAL:
                    return started
                if status == "R" and started is None:
                    started = time.perf_counter()  # clock-ok
                time.sleep(POLL)  # clock-ok: waiting on a real daemon
        raise BaculaFailed(f"Bacula job {jobid} did not end within {JOB_TIMEOUT:.0f} s; see {self.layout.job_log}")

    def finished(self, where: str, *args: object) -> Job:
        """The one job ``where`` selects, which must have terminated OK (status T)."""
        with self.catalog() as db:
            row = db.execute(f"SELECT JobId, Type, JobStatus, JobBytes FROM Job WHERE {where}", args).fetchone()
        if row is None:
            raise BaculaFailed(f"no job in the catalog where {where} {args}; see {self.layout.job_log}")
        job = Job(*row)
        if job.status != "T":
            log = self.layout.job_log.read_text()[-3000:] if self.layout.job_log.exists() else ""
            raise BaculaFailed(f"Bacula job {job.id} (type {job.type}) ended with status {job.status!r}, not T:\n{log}")
        return job

    def backup(self) -> tuple[Job, Timing]:
        timing = self.timed("run job=BenchBackup level=Full yes")
        job = self.finished("JobId = ? AND Type = 'B'", timing.jobid)
        if job.bytes != self.size:  # a file it could not read is only a warning
            raise BaculaFailed(f"Bacula backup {job.id} read {job.bytes} bytes, not {self.size}; see {self.layout.job_log}")
        return job, timing

    def copy(self, backup: Job) -> tuple[Job, Timing]:
        """The Copy control job (type c) copies the uncopied backup into a new job (type C)."""
        timing = self.timed("run job=BenchCopy yes")
        self.finished("JobId = ? AND Type = 'c'", timing.jobid)
        return self.finished("Type = 'C' AND PriorJobId = ?", backup.id), timing

    def restore(self, copy: Job, dest: Path) -> tuple[Job, Timing]:
        """Restore the copy (it reads Secondary's volume), under ``dest``."""
        timing = self.timed(f'restore jobid={copy.id} where="{dest}" all done yes')
        return self.finished("JobId = ? AND Type = 'R'", timing.jobid), timing


def start(root: Path, size: int, path: str | None) -> tuple[dict[str, Path], Layout, str]:
    binaries = find_bacula(path)
    layout = Layout.at(root)
    write_configs(layout)
    make_catalog(layout)
    return binaries, layout, write_source(layout.source, size)


def figures_of(name: str, job: Job, timing: Timing) -> list[Figure]:
    return [Figure(name, job.bytes, timing.wall), Figure(RUNNING[name], job.bytes, timing.running)]


def one_run(bacula: Bacula, n: int, source_hash: str) -> list[Figure]:
    backup, backup_timing = bacula.backup()
    copy, copy_timing = bacula.copy(backup)
    dest = bacula.layout.root / "restores" / f"run-{n}"
    restore, restore_timing = bacula.restore(copy, dest)
    restored = bacula.layout.restored(dest)
    if not restored.exists() or file_hash(restored) != source_hash:
        raise BaculaFailed(f"Bacula's restore {restore.id} did not give back the source: {restored}")
    shutil.rmtree(dest)
    return [
        *figures_of(BACKUP, backup, backup_timing),
        *figures_of(COPY, copy, copy_timing),
        *figures_of(RESTORE, restore, restore_timing),
    ]


def bacula_figures(root: Path, size: int, runs: int, path: str | None = None) -> dict[str, list[Figure]]:
    """Bacula's backup, copy job and restore of one ``size``-byte file, each ``runs`` times:
    by wall clock (BACKUP, COPY, RESTORE) and as running (RUNNING[...]), in that order.

    Raises BaculaMissing (Bacula is not installed: skip its rows) or BaculaFailed."""
    binaries, layout, source_hash = start(root, size, path)
    figures: dict[str, list[Figure]] = {name: [] for name in (BACKUP, COPY, RESTORE, *RUNNING.values())}
    with running(binaries, layout):
        bacula = Bacula(binaries, layout, size)
        for n in range(runs):
            for figure in one_run(bacula, n, source_hash):
                figures[figure.name].append(figure)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchbacula", description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64MiB", help="bytes of the one file backed up (default 64MiB)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each job (default 5)")
    parser.add_argument("--keep", type=Path, help="set up under this directory and leave it (configs, logs, catalog)")
    args = parser.parse_args(argv)
    from vtlfabric.units import format_bytes, parse_size  # only here: the module itself needs nothing of the fabric

    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="vtlfabric-benchbacula-") as tmp:
        root = args.keep or Path(tmp)
        try:
            figures = bacula_figures(root, size, args.runs)
        except BaculaMissing as e:
            print(f"Bacula: skipped ({e})")
            return 1
    print(f"{'Bacula 9.6 job':<26} {'bytes':>10} {'MiB/s':>8} {'min':>7} {'max':>7}")
    for row in (Row(name, tuple(found)) for name, found in figures.items()):
        print(f"{row.name:<26} {format_bytes(row.nbytes):>10} {row.median:>8.1f} {min(row.rates):>7.1f} {max(row.rates):>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
