"""Which jobs a copy still needs: a pure function of catalog records, so it can be tested hard."""

from __future__ import annotations

from collections.abc import Iterable

from vtlfabric.catalog.queries import AVAILABLE, PENDING_STATES
from vtlfabric.catalog.records import JobRecord


def jobs_to_copy(jobs: Iterable[JobRecord], copy_id: str, source_id: str) -> list[JobRecord]:
    """A synchronous copy takes every valid job that is available on its source and
    still due here, oldest first (by start time, then id, whatever the row order)."""
    due = [
        job for job in jobs
        if job.valid and job.copies.get(copy_id) in PENDING_STATES and job.copies.get(source_id) == AVAILABLE
    ]
    return sorted(due, key=lambda job: (job.started, job.id))
