"""Work that is running: one handle per operation, in one registry per Trio run.

Whoever runs a piece of work (a backup, an aux copy of one copy, a restore, a
drill, an aging run) holds a ``Work`` for as long as it runs: its cancel scope and,
once it is stopped, why. ``ctl kill``, suspend, promotion and shutdown all stop work
through ``Running``, never through a scope of their own, so the work itself can
tell a kill from a suspension from a shutdown and record each as it should.

Handles nest: a drill's backups, and an aux copy run's copies, hold their own, so a
kill or a suspension stops only what it names. ``find`` returns the innermost.

The registry is a ``RunVar``: one per Trio run, as Trio keeps its own per-run state,
so the daemon and each test get their own without threading it through every job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import attrs
import trio

from vtlfabric.jobs.progress import Progress

KILLED = "killed by operator"
SHUTDOWN = "daemon stopped"


@attrs.define(eq=False)
class Work:
    kind: str  # backup, auxcopy, restore, verify, drill, aging
    target: str  # what it works on: a job id, a copy id; "" until known
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    parent: Work | None = None
    sites: frozenset[str] = frozenset()  # the sites whose MediaAgents it runs on, if known
    reason: str = ""  # why it was stopped; "" while nobody stopped it
    # How it is going and how it ended, for whoever waits on it (ctl --wait, a drill).
    progress: Progress = attrs.field(factory=Progress)
    status: str = "running"  # then completed or failed (or what the result says)
    result: object = None  # the job's typed result
    error: str = ""
    done: trio.Event = attrs.field(factory=trio.Event)

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def stopped(self) -> bool:
        return bool(self.reason)

    def stop(self, reason: str) -> None:
        """Cancel it at its next checkpoint; the first reason given is the one it keeps."""
        if not self.reason:
            self.reason = reason
        self.scope.cancel()


@attrs.define(eq=False)
class Running:
    work: list[Work] = attrs.field(factory=list)  # in the order they started

    @contextmanager
    def hold(self, kind: str, target: object = "", sites: frozenset[str] = frozenset()) -> Iterator[Work]:
        """Register work for the duration of the block, inside its cancel scope."""
        work = Work(kind, str(target), parent=_CURRENT.get(), sites=sites)
        self.work.append(work)
        token = _CURRENT.set(work)
        try:
            with work.scope:
                yield work
        finally:
            _CURRENT.reset(token)
            self.work.remove(work)

    def find(self, kind: str, target: object) -> Work | None:
        """The innermost running work of that kind on that target."""
        matches = [w for w in self.work if w.kind == kind and w.target == str(target)]
        return matches[-1] if matches else None

    def stop(self, kind: str, target: object, reason: str) -> bool:
        """Stop the named work; False if none runs."""
        work = self.find(kind, target)
        if work is None:
            return False
        work.stop(reason)
        return True

    def stop_where(self, chosen: Callable[[Work], bool], reason: str) -> list[Work]:
        stopped = [w for w in self.work if chosen(w)]
        for work in stopped:
            work.stop(reason)
        return stopped

    def top(self) -> list[Work]:
        """Work that no other work runs: what an operator started, or a schedule did."""
        return [w for w in self.work if w.parent is None]


_REGISTRY: trio.lowlevel.RunVar[Running] = trio.lowlevel.RunVar("vtlfabric.running")
_CURRENT: ContextVar[Work | None] = ContextVar("vtlfabric.work", default=None)


def registry() -> Running:
    """This Trio run's registry (made on first use)."""
    try:
        return _REGISTRY.get()
    except LookupError:
        running = Running()
        _REGISTRY.set(running)
        return running


def current() -> Work | None:
    """The innermost work this task runs for, if any."""
    return _CURRENT.get()
