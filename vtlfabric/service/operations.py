"""Running operations (backups, aux copies, restores): the nursery that owns them,
and what the control socket needs to follow or kill one."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
import trio

from vtlfabric.groups import first_leaf
from vtlfabric.jobs import progress
from vtlfabric.jobs.progress import Progress

log = structlog.get_logger()


@attrs.define(eq=False)
class Operation:
    kind: str
    id: str = ""
    status: str = "running"  # running, completed, failed
    result: dict[str, Any] | None = None
    error: str = ""
    done: trio.Event = attrs.field(factory=trio.Event)
    progress: Progress = attrs.field(factory=Progress)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "status": self.status, "result": self.result, "error": self.error,
                "progress": self.progress.to_json()}


@attrs.define(eq=False)
class Operations:
    """Owns every operation's task. An operation's failure is recorded on it, never
    raised into the nursery: one failed job must not stop the daemon."""

    nursery: trio.Nursery
    running: dict[str, Operation] = attrs.field(factory=dict)
    finished: dict[str, Operation] = attrs.field(factory=dict)
    _counter: itertools.count = attrs.field(factory=lambda: itertools.count(1))

    async def start(self, kind: str, fn: Callable[..., Awaitable[dict[str, Any]]], *args: Any, reports_id: bool = False) -> Operation:
        """Start ``fn`` and return once it has an id. With ``reports_id``, ``fn`` takes a
        ``task_status`` and names its own id (a backup's job id); errors before that are raised here."""
        return await self.nursery.start(self._run, kind, fn, args, reports_id)

    async def wait_idle(self) -> None:
        while self.running:
            await next(iter(self.running.values())).done.wait()

    async def _run(self, kind: str, fn: Callable[..., Awaitable[dict[str, Any]]], args: tuple[Any, ...], reports_id: bool, task_status: Any) -> None:
        op = Operation(kind)
        progress.CURRENT.set(op.progress)  # this task's context: the job's tasks inherit it

        def register(ident: Any) -> None:
            op.id = f"{kind}:{ident}"
            self.running[op.id] = op
            task_status.started(op)

        if not reports_id:
            register(next(self._counter))
        status = _Started(register) if reports_id else trio.TASK_STATUS_IGNORED
        try:
            op.result = await (fn(*args, task_status=status) if reports_id else fn(*args))
            op.status = op.result.get("status", "completed") if op.result else "completed"
        except Exception as e:
            if not op.id:
                raise  # failed before it had an id: the caller gets the error
            leaf = first_leaf(e)
            op.status, op.error = "failed", str(leaf) or type(leaf).__name__
            # A group means something escaped a nursery unhandled: keep its traceback.
            log.warning("operation.failed", operation=op.id, error=op.error, exc_info=isinstance(e, BaseExceptionGroup))
        finally:
            op.done.set()
            self.running.pop(op.id, None)
            if op.id:
                self.finished[op.id] = op
                _trim(self.finished, 200)


@attrs.define
class _Started:
    register: Callable[[Any], None]

    def started(self, value: Any = None) -> None:
        self.register(value)


def _trim(ops: dict[str, Operation], keep: int) -> None:
    while len(ops) > keep:
        ops.pop(next(iter(ops)))
