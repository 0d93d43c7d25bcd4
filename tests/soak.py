"""The crash soak: kill -9 the real daemon at random moments, restart it, and check
that nothing was lost or duplicated. ``tests/test_soak.py`` runs it; so does
``make soak`` with hundreds of cycles.

Each cycle starts the daemon on a config with no schedules, checks the fabric,
reloads (SIGHUP) a config whose schedules back up, copy and age every few
seconds, starts one random operator action (a restore, an aux copy, an aging
run, or a promotion or fail-back), and kills the daemon at a random moment.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import attrs

from tests.daemon import CLI, Daemon
from tests.helpers import edited, fabric_toml, write_fabric

SCHEDULES = """
[[schedule]]
name = "incrementals"
backup = ["IBMA"]
start = "0s"
every = "1500ms"

[[schedule]]
name = "fulls"
backup = ["IBMB"]
type = "full"
start = "500ms"
every = "4s"

[[schedule]]
name = "copies"
auxcopy = ["P/dr"]
start = "1s"
every = "2s"

[[schedule]]
name = "aging"
age = ["P"]
start = "2s"
every = "3s"
"""
CRASHED = "daemon stopped while the job ran"  # how a restart marks the jobs a kill cut short
# Both copies age a cycle after ~4 s, so the cartridges of a long soak are recycled
# (without it, production runs out of media after some 250 cycles).
RETENTION = "retain_days = 0.00005\nretain_cycles = 1"


def with_retention(toml: str) -> str:
    for line in ('library = "prod/PVTL"', "streams = 2"):
        toml = edited(toml, line, f"{line}\n{RETENTION}")
    return toml


def configs(root: Path) -> tuple[Path, str, str]:
    path = write_fabric(root, prod={"cartridges": 60, "robot_time": "20ms"}, dr={"cartridges": 30, "robot_time": "20ms"})
    return path, with_retention(fabric_toml()), with_retention(fabric_toml(schedules=SCHEDULES))


@attrs.define
class Soak:
    root: Path
    rng: random.Random
    path: Path = attrs.field(init=False)
    quiet: str = attrs.field(init=False)
    busy: str = attrs.field(init=False)
    daemon: Daemon = attrs.field(init=False)
    completed: dict[int, tuple[str, int]] = attrs.field(factory=dict)  # job id -> (digest, bytes), never to change
    actions: dict[str, int] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.path, self.quiet, self.busy = configs(self.root / "fabric")
        self.daemon = Daemon(self.path, self.root / "daemon.log")

    def cycle(self) -> None:
        self.path.write_text(self.quiet)
        self.daemon.start()
        self.check()
        self.path.write_text(self.busy)
        self.daemon.proc.send_signal(signal.SIGHUP)
        action = self.act()
        time.sleep(self.rng.uniform(0.2, 2.5))  # clock-ok: the crash lands anywhere in real work
        self.daemon.proc.kill()  # SIGKILL: no cleanup at all
        self.daemon.proc.wait()
        if action.poll() is None:
            os.killpg(action.pid, signal.SIGKILL)
        action.wait()

    def act(self) -> subprocess.Popen:
        name = self.rng.choice(["none", "restore", "auxcopy", "age", "switch"])
        self.actions[name] = self.actions.get(name, 0) + 1
        steps = {
            "none": [],
            "restore": [["restore", "--client", "IBMB", "--latest", "--to", str(self.root / "restore"), "--wait"]],
            "auxcopy": [["auxcopy", "--wait"]],
            "age": [["age", "--wait"]],
            "switch": self.switch_steps(),
        }[name]
        script = "; ".join(" ".join([*CLI, "ctl", *step, "--config", str(self.path)]) for step in steps) or "true"
        return subprocess.Popen(
            ["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def switch_steps(self) -> list[list[str]]:
        """Promote DR (planned), or fail back to production, whichever is due."""
        if self.primary() == "P/primary":
            return [["promote", "P/dr", "--planned"]]
        return [["repair", "P/primary"], ["promote", "P/primary", "--planned"], ["repair", "P/dr"]]

    def primary(self) -> str:
        with self.db() as db:
            [(primary,)] = db.execute("SELECT id FROM copies WHERE policy = 'P' AND is_primary = 1").fetchall()
        return primary

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path.parent / 'state' / 'catalog.db'}?mode=ro", uri=True)

    def check(self) -> None:
        """After a restart: nothing lost, nothing duplicated, every job copy reads back exact."""
        with self.db() as db:
            db.row_factory = sqlite3.Row
            primaries = db.execute("SELECT id FROM copies WHERE policy = 'P' AND is_primary = 1").fetchall()
            assert len(primaries) == 1, f"primaries: {[r[0] for r in primaries]}"
            jobs = {r["id"]: r for r in db.execute("SELECT * FROM jobs")}
            states = [(r["job_id"], r["copy_id"], r["state"]) for r in db.execute("SELECT * FROM job_copies")]
            failed_runs = db.execute("SELECT id, reason FROM auxcopy_runs WHERE status = 'failed'").fetchall()
        assert not [j for j in jobs.values() if j["status"] == "running"], "a restart leaves no job running"
        # Only the crashes may fail work here: any other reason is a fault the soak found.
        unexplained = {j["id"]: j["reason"] for j in jobs.values() if j["status"] != "completed" and j["reason"] != CRASHED}
        assert not unexplained, f"jobs failed for a reason no crash explains: {unexplained}"
        assert not failed_runs, f"aux copy runs failed: {failed_runs}"
        for job_id, (digest, nbytes) in self.completed.items():
            job = jobs.get(job_id)
            assert job is not None and job["status"] == "completed", f"job {job_id} was lost: {dict(job) if job else None}"
            assert (job["digest"], job["bytes"]) == (digest, nbytes), f"job {job_id} changed"
        for job in jobs.values():
            if job["status"] == "completed":
                self.completed[job["id"]] = (job["digest"], job["bytes"])
                held = [s for j, _, s in states if j == job["id"] and s in ("available", "aged")]
                assert held, f"valid job {job['id']} is on no copy"
        keys = [(j["client"], j["subclient"], j["started"]) for j in jobs.values()]
        assert len(keys) == len(set(keys)), "a job was recorded twice"
        verify = self.daemon.ctl("verify", "--wait", "--json")
        assert verify.returncode == 0, f"verification failed: {verify.stderr}\n{self.daemon.tail()}"

    def finish(self) -> dict[str, Any]:
        """Back to production as primary, DR brought up to date: both hold every valid job."""
        self.path.write_text(self.quiet)
        self.daemon.start()
        self.check()
        if self.primary() != "P/primary":
            for step in self.switch_steps():
                self.daemon.ctl(*step)
        self.daemon.ctl("repair", "P/dr")
        self.daemon.ok("auxcopy", "--wait")
        self.check()
        jobs = self.daemon.ok("jobs")
        assert self.daemon.stop() == 0
        return {"jobs": jobs, "actions": self.actions}


def summary(jobs: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    return json.dumps(counts, sort_keys=True)
