"""Crash soak: kill -9 at random moments, at least 30 times; `make soak` runs 500."""

from __future__ import annotations

import os
import random

import pytest

from tests.expect import job_files, restored_files, workload_of
from tests.soak import Soak, summary

pytestmark = pytest.mark.e2e
CYCLES = int(os.environ.get("SOAK_CYCLES", "30"))
SEED = int(os.environ.get("SOAK_SEED", "20261127"))


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    soak = Soak(tmp_path, random.Random(SEED))
    try:
        for _ in range(CYCLES):
            soak.cycle()
        done = soak.finish()
    finally:
        soak.daemon.kill()
    jobs = done["jobs"]
    print(f"soak: {CYCLES} kills, actions {done['actions']}, jobs {summary(jobs)}")
    valid = [j for j in jobs if j["status"] == "completed"]
    assert len(valid) >= CYCLES, "the soak did real work"
    for job in valid:
        # Aged from production only once DR had it: retention never ages what a copy still needs.
        assert job["copies"].get("P/primary") in ("available", "aged"), f"job {job['id']} is not on production: {job['copies']}"
        assert job["copies"].get("P/dr") in ("available", "aged"), f"job {job['id']} never reached DR: {job['copies']}"

    # Byte-exact, from each copy: the newest jobs that both copies hold.
    soak.daemon.start()
    try:
        both = [j for j in valid if j["copies"]["P/primary"] == j["copies"]["P/dr"] == "available"]
        assert both, "both copies hold the newest jobs"
        for job in both[-3:]:
            for copy_id in ("P/primary", "P/dr"):
                dest = tmp_path / f"r-{job['id']}-{copy_id.replace('/', '_')}"
                soak.daemon.ok("restore", "--job", str(job["id"]), "--copy", copy_id, "--to", str(dest), "--wait")
                want = job_files(
                    workload_of(soak.path, job["client"]),
                    job["subclient"],
                    job["type"],
                    job["generation"],
                    job["base_generation"],
                )
                assert restored_files(dest) == want, f"job {job['id']} from {copy_id}"
        assert soak.daemon.stop() == 0
    finally:
        soak.daemon.kill()
