"""Data verification: read back every job a copy holds and check it.

For each job *available* on a copy, its segments must hold the job's bytes exactly
once, in order, and the bytes read from the media must match the digest taken at
backup. Inoperative copies are read too: failed media is what verification is for.
It changes nothing: it reports, so the operator decides (mark-bad, recopy).
"""

from __future__ import annotations

from typing import Any

import attrs
import structlog

from vtlfabric import errors
from vtlfabric.catalog import queries
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import progress
from vtlfabric.jobs.restore import RESTORE_FAILURES
from vtlfabric.tape.stream import coverage_problem, read_digest
from vtlfabric.vocab import CopyState

log = structlog.get_logger()


class VerifyFailed(errors.Failed):
    pass


@attrs.frozen
class CopyVerification:
    copy: str
    status: str
    jobs_verified: int
    bytes: int
    failures: tuple[str, ...]


@attrs.frozen
class VerifyResult:
    copies: tuple[CopyVerification, ...]
    jobs_verified: int


async def run_verify(fabric: Fabric, copy_id: str | None = None) -> VerifyResult:
    """Verify one copy or all; raises VerifyFailed naming the jobs that failed."""
    copies = [fabric.copy(copy_id)] if copy_id else fabric.copies()
    results = [await verify_copy(fabric, copy) for copy in copies]
    failures = [f for r in results for f in r.failures]
    if failures:
        raise VerifyFailed(f"{len(failures)} job copy(ies) failed verification: " + "; ".join(failures[:5]))
    return VerifyResult(tuple(results), sum(r.jobs_verified for r in results))


async def verify_copy(fabric: Fabric, copy: CopySpec) -> CopyVerification:
    jobs = [j for j in await fabric.catalog.call(queries.list_jobs) if j.copies.get(copy.id) == CopyState.AVAILABLE]
    library = fabric.library_of(copy)
    progress.current().plan({(copy.id, j.id): j.bytes for j in jobs})
    failures, nbytes = [], 0
    async with library.drive(f"verify {copy.id}") as drive:
        for job in jobs:
            problem = await _check_job(fabric, copy, drive, job)
            if problem:
                failures.append(f"job {job.id} on {copy.id}: {problem}")
                log.error("verify.job_failed", job_id=job.id, copy=copy.id, problem=problem)
            nbytes += job.bytes
            progress.current().at((copy.id, job.id), job.bytes)
            progress.current().job_done((copy.id, job.id))
    log.info("verify.completed", copy=copy.id, jobs=len(jobs), failures=len(failures))
    return CopyVerification(copy.id, "failed" if failures else "completed", len(jobs), nbytes, tuple(failures))


async def _check_job(fabric: Fabric, copy: CopySpec, drive: Any, job: Any) -> str:
    segments = await fabric.catalog.call(queries.segments, job.id, copy.id)
    problem = coverage_problem(segments, job.bytes)
    if problem:
        return problem
    try:
        digest = await read_digest(fabric.library_of(copy), drive, segments)
    except RESTORE_FAILURES as e:
        return f"cannot read it back: {e}"
    return "" if digest == job.digest else "the data on the media does not match the backup's digest"
