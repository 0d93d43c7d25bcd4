"""A data-aging run: mark expired jobs *aged* on each copy, then recycle cartridges
that hold nothing live any more."""

from __future__ import annotations

import attrs
import structlog

from vtlfabric.catalog import queries
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.retention import to_age

log = structlog.get_logger()


@attrs.frozen
class AgedJob:
    job_id: int
    copy: str


@attrs.frozen
class AgingResult:
    aged: tuple[AgedJob, ...]
    cartridges: tuple[str, ...]  # recycled to scratch
    status: str = "completed"


async def run_data_aging(fabric: Fabric, policies: tuple[str, ...] = ()) -> AgingResult:
    copies = [c for c in fabric.copies() if not policies or c.policy in policies]
    jobs = await fabric.catalog.call(queries.list_jobs)
    now = fabric.now()
    aged = await fabric.catalog.call(queries.age_jobs, to_age(jobs, copies, now), "retention", now)
    for job_id, copy_id in aged:
        log.info("aging.job_aged", job_id=job_id, copy=copy_id)
    recycled = [b for lib in fabric.libraries.values() for b in await lib.recycle_aged(now)]
    log.info("aging.completed", jobs_aged=len(aged), cartridges_recycled=len(recycled))
    return AgingResult(tuple(AgedJob(j, c) for j, c in aged), tuple(recycled))
