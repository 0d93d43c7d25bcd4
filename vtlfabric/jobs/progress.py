"""How far a running operation has got: bytes and jobs done out of planned.

The operation that runs a job sets a Progress in a context variable; the job's
tasks (and the tasks they start, which inherit it) report into it. A job run
outside an operation reports into a throwaway one. Bytes are kept per job, so a
retried job is not counted twice.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import attrs


@attrs.define
class Progress:
    bytes_total: int = 0
    jobs_total: int = 0
    _bytes_by_job: dict[int, int] = attrs.field(factory=dict)
    _jobs_done: set[int] = attrs.field(factory=set)

    def plan(self, jobs: dict[int, int]) -> None:
        """Add jobs to do: job id -> bytes."""
        self.jobs_total += len(jobs)
        self.bytes_total += sum(jobs.values())

    def at(self, job_id: int, done: int) -> None:
        """Job ``job_id`` has ``done`` of its bytes."""
        self._bytes_by_job[job_id] = done

    def job_done(self, job_id: int) -> None:
        self._jobs_done.add(job_id)

    def to_json(self) -> dict[str, Any]:
        return {"bytes_done": sum(self._bytes_by_job.values()), "bytes_total": self.bytes_total,
                "jobs_done": len(self._jobs_done), "jobs_total": self.jobs_total}


CURRENT: ContextVar[Progress | None] = ContextVar("vtlfabric_progress", default=None)


def current() -> Progress:
    return CURRENT.get() or Progress()
