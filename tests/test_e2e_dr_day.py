"""DR day through the real daemon: production's library fails mid-schedule, the DR copy
is promoted, backups and restores go on at DR, then production is repaired and fails back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon import Daemon
from tests.expect import job_files, restored_files, workload_of
from tests.helpers import wait_for, write_fabric

pytestmark = pytest.mark.e2e

SCHEDULES = """
[[schedule]]
name = "backups"
backup = ["IBMA", "IBMB"]
start = "1s"
every = "3s"

[[schedule]]
name = "copies"
auxcopy = ["P/dr"]
start = "2s"
every = "4s"
"""


def files_of(config: Path, job: dict) -> dict[Path, bytes]:
    return job_files(workload_of(config, job["client"]), job["subclient"], job["type"], job["generation"], job["base_generation"])


def test_promote_mid_schedule_back_up_at_dr_and_fail_back(tmp_path):
    path = write_fabric(tmp_path / "fabric", schedules=SCHEDULES)
    d = Daemon(path, tmp_path / "daemon.log").start()
    try:
        wait_for("a job at DR", lambda: [j for j in d.ok("jobs") if j["copies"].get("P/dr") == "available"])
        d.ok("suspend", "--copy", "P/dr")  # so DR surely lacks the newest jobs when disaster strikes
        wait_for(
            "a backup DR lacks", lambda: [j for j in d.ok("jobs") if j["status"] == "completed" and "P/dr" not in j["copies"]]
        )
        d.ok("fault", "library:prod/PVTL", "offline")
        # Read before promoting: a scheduled backup may start while `ctl jobs` is on its way.
        # Any job started between here and the promotion meets the offline library and fails.
        last_before = max(j["id"] for j in d.ok("jobs"))
        promoted = d.ok("promote", "P/dr")
        assert promoted["promoted"] and promoted["lost_jobs"], promoted

        def after_promotion():
            jobs = [j for j in d.ok("jobs") if j["id"] > last_before and j["status"] == "completed"]
            subs = {(j["client"], j["subclient"]) for j in jobs}
            return jobs if len(subs) == 3 else None

        after_promotion_jobs = wait_for("backups at DR after the promotion", after_promotion)
        first = {}
        for j in sorted(after_promotion_jobs, key=lambda j: j["id"]):
            first.setdefault((j["client"], j["subclient"]), j)
        assert all(j["type"] == "full" for j in first.values()), "out of sync: each subclient's next backup is a full"
        assert all(j["copies"] == {"P/dr": "available"} for j in after_promotion_jobs)
        newest = max(after_promotion_jobs, key=lambda j: j["id"])
        out = tmp_path / "at-dr"
        d.ok("restore", "--job", str(newest["id"]), "--site", "dr", "--to", str(out), "--wait")
        assert restored_files(out) == files_of(path, newest)

        bad = d.ctl("repair", "P/primary")
        assert bad.returncode == 1 and "offline" in bad.stderr
        d.ok("fault", "library:prod/PVTL", "online")
        d.ok("repair", "P/primary")
        d.ok("auxcopy", "--copy", "P/primary", "--wait")
        d.ok("promote", "P/primary", "--yes")
        d.ok("repair", "P/dr")
        d.ok("resume", "--copy", "P/dr", "--wait")
        copies = {c["id"]: c for c in d.ok("copies")}
        assert copies["P/primary"]["primary"] and copies["P/primary"]["precedence"] == 1
        assert d.stop() == 0  # no more scheduled backups while every copy is checked
        d.start()
        checked = 0
        for job in d.ok("jobs"):
            for copy_id, state in job["copies"].items():
                if state == "available":
                    dest = tmp_path / f"all-{job['id']}-{copy_id.replace('/', '_')}"
                    d.ok("restore", "--job", str(job["id"]), "--copy", copy_id, "--to", str(dest), "--wait")
                    assert restored_files(dest) == files_of(path, job), f"job {job['id']} from {copy_id}"
                    checked += 1
        assert checked >= 2 * len(first)
        assert d.stop() == 0
    finally:
        d.kill()
