"""Running operations (backups, aux copies, restores, verifies, drills, agings): the
nursery that owns their tasks, and the finished ones kept for ``ctl operation``.

What runs is in the run's one registry (jobs/running.py): each operation holds its
``Work`` there for as long as it runs, and that is where it is followed, stopped and
waited for.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
import trio

from vtlfabric.groups import first_leaf
from vtlfabric.jobs import progress, running
from vtlfabric.jobs.running import Running, Work
from vtlfabric.tojson import jsonable

log = structlog.get_logger()
KEEP_FINISHED = 200


@attrs.define(eq=False)
class Operations:
    """Owns every operation's task. An operation's failure is recorded on its Work, never
    raised into the nursery: one failed job must not stop the daemon."""

    nursery: trio.Nursery
    registry: Running = attrs.field(factory=running.registry)
    finished: dict[str, Work] = attrs.field(factory=dict)
    _counter: itertools.count = attrs.field(factory=lambda: itertools.count(1))

    async def start(self, kind: str, fn: Callable[..., Awaitable[Any]], *args: Any, reports_id: bool = False) -> Work:
        """Start ``fn`` and return once it has an id. With ``reports_id``, ``fn`` takes a
        ``task_status`` and names its own id (a backup's job id); errors before that are raised here."""
        return await self.nursery.start(self._run, kind, fn, args, reports_id)

    def running(self) -> list[Work]:
        return self.registry.top()

    def get(self, op_id: str) -> Work | None:
        return next((w for w in self.running() if w.id == op_id), None) or self.finished.get(op_id)

    def stop_all(self, reason: str) -> None:
        self.registry.stop_where(lambda w: True, reason)

    async def wait_idle(self) -> None:
        while self.running():
            await self.running()[0].done.wait()

    async def _run(
        self, kind: str, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], reports_id: bool, task_status: Any
    ) -> None:
        target = "" if reports_id else next(self._counter)
        with self.registry.hold(kind, target) as work:
            progress.CURRENT.set(work.progress)  # this task's context: the job's tasks inherit it
            status = _Started(work, task_status) if reports_id else trio.TASK_STATUS_IGNORED
            if not reports_id:
                task_status.started(work)
            try:
                work.result = await (fn(*args, task_status=status) if reports_id else fn(*args))
                work.status = str(getattr(work.result, "status", "completed"))
            except Exception as e:
                if not work.target:
                    raise  # failed before it had an id: the caller gets the error
                leaf = first_leaf(e)
                work.status, work.error = "failed", str(leaf) or type(leaf).__name__
                # A group means something escaped a nursery unhandled: keep its traceback.
                log.warning("operation.failed", operation=work.id, error=work.error, exc_info=isinstance(e, BaseExceptionGroup))
            finally:
                if work.scope.cancel_called and work.status == "running":
                    work.status, work.error = "failed", work.reason or running.SHUTDOWN
                work.done.set()
                if work.target:
                    self.finished[work.id] = work
                    while len(self.finished) > KEEP_FINISHED:
                        self.finished.pop(next(iter(self.finished)))


def work_json(work: Work) -> dict[str, Any]:
    return {
        "id": work.id,
        "kind": work.kind,
        "status": work.status,
        "result": jsonable(work.result),
        "error": work.error,
        "progress": work.progress.to_json(),
    }


@attrs.define
class _Started:
    work: Work
    task_status: Any

    def started(self, ident: Any = None) -> None:
        self.work.target = str(ident)
        self.task_status.started(self.work)
