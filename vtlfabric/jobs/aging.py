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
    """Retention weighs each subclient's jobs on their own (retention.py), so a run reads
    and ages one subclient at a time, only its jobs some copy still holds: no catalog call
    ever holds years of jobs."""
    copies = [c for c in fabric.copies() if not policies or c.policy in policies]
    now = fabric.now()
    aged: list[tuple[int, str]] = []
    retained = any(c.retain_days or c.retain_cycles for c in copies)  # if not, nothing can age: read nothing
    for client, subclient in await fabric.catalog.call(queries.subclients) if retained else []:
        jobs = await fabric.catalog.call(queries.live_jobs, client, subclient)
        done = await fabric.catalog.call(queries.age_jobs, to_age(jobs, copies, now), "retention", now)
        for job_id, copy_id in done:
            log.info("aging.job_aged", job_id=job_id, copy=copy_id)
        aged += done
    recycled = [b for lib in fabric.libraries.values() for b in await lib.recycle_aged(now)]
    log.info("aging.completed", jobs_aged=len(aged), cartridges_recycled=len(recycled))
    return AgingResult(tuple(AgedJob(j, c) for j, c in aged), tuple(recycled))
