"""How far a running operation has got: bytes and jobs done out of planned.

The operation that runs a job sets a Progress in a context variable; the job's
tasks (and the tasks they start, which inherit it) report into it. A job run
outside an operation reports into a throwaway one. Bytes are kept per job, so a
retried job is not counted twice. A job is keyed by what is done to it (a job id,
or a copy and a job id when one operation copies or verifies it for several copies).
"""

from __future__ import annotations

from collections.abc import Hashable
from contextvars import ContextVar
from typing import Any

import attrs


@attrs.define
class Progress:
    bytes_total: int = 0
    jobs_total: int = 0
    _bytes_by_job: dict[Hashable, int] = attrs.field(factory=dict)
    _jobs_done: set[Hashable] = attrs.field(factory=set)

    def plan(self, jobs: dict[Hashable, int]) -> None:
        """Add jobs to do: key -> bytes."""
        self.expect(len(jobs), sum(jobs.values()))

    def expect(self, jobs: int, nbytes: int) -> None:
        """Add jobs to do, by number and bytes (when there are too many to list)."""
        self.jobs_total += jobs
        self.bytes_total += nbytes

    def at(self, key: Hashable, done: int) -> None:
        """The job ``key`` has ``done`` of its bytes."""
        self._bytes_by_job[key] = done

    def job_done(self, key: Hashable) -> None:
        self._jobs_done.add(key)

    def to_json(self) -> dict[str, Any]:
        return {
            "bytes_done": sum(self._bytes_by_job.values()),
            "bytes_total": self.bytes_total,
            "jobs_done": len(self._jobs_done),
            "jobs_total": self.jobs_total,
        }


CURRENT: ContextVar[Progress | None] = ContextVar("vtlfabric_progress", default=None)


def current() -> Progress:
    return CURRENT.get() or Progress()
