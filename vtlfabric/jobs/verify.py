"""Data verification: read back every job a copy holds and check it.

For each job *available* on a copy, its segments must hold the job's bytes exactly
once, in order, and the bytes read from the media must match the digest taken at
backup. Inoperative copies are read too: failed media is what verification is for.
A job that fails is marked *damaged* on the copy, with why (see damage.py): no restore
picks it, and a copy that heals copies it again at its next aux copy. A job it cannot
reach (its library offline, a failed cartridge) fails verification but is not marked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import attrs
import structlog

from vtlfabric import errors
from vtlfabric.catalog import queries
from vtlfabric.catalog.records import JobRecord
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import progress
from vtlfabric.jobs.damage import DAMAGE, heal_plan, mark_damaged
from vtlfabric.jobs.restore import RESTORE_FAILURES
from vtlfabric.tape.stream import coverage_problem, read_digest
from vtlfabric.vocab import CopyState

log = structlog.get_logger()
PAGE = 1000  # jobs read from the catalog at a time


class VerifyFailed(errors.Failed):
    pass


@attrs.frozen
class CopyVerification:
    copy: str
    status: str
    jobs_verified: int
    bytes: int
    failures: tuple[str, ...]
    damaged: tuple[int, ...] = ()  # jobs this run marked damaged on the copy


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
        marked = "".join(
            f"; marked damaged on {r.copy}: jobs {', '.join(map(str, r.damaged))} ({heal_plan(fabric.copy(r.copy))})"
            for r in results
            if r.damaged
        )
        raise VerifyFailed(f"{len(failures)} job copy(ies) failed verification: " + "; ".join(failures[:5]) + marked)
    return VerifyResult(tuple(results), sum(r.jobs_verified for r in results))


async def verify_copy(fabric: Fabric, copy: CopySpec) -> CopyVerification:
    library = fabric.library_of(copy)
    counts = await fabric.catalog.call(queries.state_counts)
    progress.current().expect(*counts.get(copy.id, {}).get(CopyState.AVAILABLE, (0, 0)))
    failures, damaged, nbytes, verified = [], [], 0, 0
    async with library.drive(f"verify {copy.id}") as drive:
        async for job in _available(fabric, copy):
            verified += 1
            problem, is_damage = await _check_job(fabric, copy, drive, job)
            if problem:
                failures.append(f"job {job.id} on {copy.id}: {problem}")
                log.error("verify.job_failed", job_id=job.id, copy=copy.id, problem=problem)
            if is_damage and await mark_damaged(fabric, copy, job.id, f"verify: {problem}"):
                damaged.append(job.id)
            nbytes += job.bytes
            progress.current().at((copy.id, job.id), job.bytes)
            progress.current().job_done((copy.id, job.id))
    log.info("verify.completed", copy=copy.id, jobs=verified, failures=len(failures))
    return CopyVerification(copy.id, "failed" if failures else "completed", verified, nbytes, tuple(failures), tuple(damaged))


async def _available(fabric: Fabric, copy: CopySpec) -> AsyncIterator[JobRecord]:
    """The jobs available on the copy, a page at a time: years of jobs are never one read."""
    after = 0
    while page := await fabric.catalog.call(
        partial(queries.page_jobs, copy_id=copy.id, state=CopyState.AVAILABLE, after=after, limit=PAGE)
    ):
        for job in page:
            yield job
        after = page[-1].id


async def _check_job(fabric: Fabric, copy: CopySpec, drive: Any, job: Any) -> tuple[str, bool]:
    """What is wrong with the job on the copy ('' if nothing), and whether it is damage."""
    segments = await fabric.catalog.call(queries.segments, job.id, copy.id)
    problem = coverage_problem(segments, job.bytes)
    if problem:
        return problem, True
    try:
        digest = await read_digest(fabric.library_of(copy), drive, segments)
    except RESTORE_FAILURES as e:
        return f"cannot read it back: {e}", isinstance(e, DAMAGE)
    if digest != job.digest:
        return "the data on the media does not match the backup's digest", True
    return "", False
