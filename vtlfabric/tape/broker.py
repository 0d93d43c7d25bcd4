"""The drive broker: every drive of every library of one fabric is handed out here.

A request names how many drives it needs in each library: ``{"prod/PVTL": 2}`` for a
copy within one library, ``{"prod/PVTL": 1, "dr/DVTL": 1}`` for a copy across sites,
``{"dr/DVTL": 1}`` for a restore. It is granted whole or not at all, so nobody holds
some drives while waiting for others (no hold-and-wait, hence no deadlock, in any
topology: two streams copying within one library can no longer each hold one drive and
wait forever for a second).

Waiters are served in arrival order, library by library: a request is granted only
when, in every library it needs, no earlier request that needs that library is still
waiting, and enough drives are free. Arrival is one total order, so the earliest waiter
of all is never blocked by another waiter and goes as soon as enough drives come back;
and nobody waits behind a later arrival in a library it needs (a small request never
overtakes a big one that came first). A request for more drives than a library has
can never be granted: it fails at once.

Grants are made where drives come back (a release, a cancelled waiter) or a request
arrives, before any task runs again, so a grant can never be lost or doubled; a
cancelled waiter leaves the queue the moment it is cancelled, so nothing is ever
granted to a task that gave up. The
broker keeps a journal of what happened (arrive, grant, cancel, release), in order, for
``ctl drives`` and for tests to replay.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import attrs
import trio

from vtlfabric import errors

Holder = str | Callable[[], str]  # who holds or waits, as ctl drives shows it; a callable is read when shown
JOURNAL_SIZE = 4096


class DriveShortage(errors.BadRequest):
    """A request for more drives than a library has: it could never be granted."""

    def __init__(self, library: str, wanted: int, drives: int, holder: str) -> None:
        self.library, self.wanted, self.drives = library, wanted, drives
        super().__init__(f"{holder or 'a request'} needs {wanted} drives of library {library}, which has {drives}")


@attrs.frozen
class Grant:
    """What a request was given: drive numbers (from 1) by library."""

    request: int
    drives: dict[str, tuple[int, ...]]


@attrs.frozen
class BrokerEvent:
    """One line of the journal. ``request`` numbers requests in arrival order."""

    seq: int
    kind: str  # arrive, grant, cancel (left the queue before its grant), release
    request: int
    holder: str
    needs: dict[str, int]
    drives: dict[str, tuple[int, ...]]  # granted or released; {} on arrive and cancel
    at: float


@attrs.frozen
class DriveView:
    name: str  # LIBRARY#N, as Drive.name
    number: int
    state: str  # free or held, or out (failed, varied off) while nobody holds it
    holder: str  # "" when free
    since: float | None  # when its holder got it
    held_for: float | None  # seconds since then
    barcode: str | None = None  # the cartridge loaded, if the caller knows


@attrs.frozen
class WaiterView:
    position: int  # 1 = next in this library's queue
    holder: str
    needs: dict[str, int]  # the whole request, every library it waits for
    since: float
    waited: float


@attrs.frozen
class LibraryDrives:
    library: str
    drives: tuple[DriveView, ...]
    waiters: tuple[WaiterView, ...]
    unavailable: str = ""  # why no drive of it can be used now


@attrs.define(eq=False)
class _Request:
    number: int
    holder: Holder
    needs: dict[str, int]
    since: float
    task: trio.lowlevel.Task
    parked: bool = False  # its task waits to be rescheduled with its grant
    granted: dict[str, tuple[int, ...]] | None = None
    granted_at: float = 0.0

    def label(self) -> str:
        return label(self.holder)


@attrs.define(eq=False)
class _Pool:
    size: int
    free: list[int]  # drive numbers, lowest first
    held: dict[int, _Request] = attrs.field(factory=dict)
    out: set[int] = attrs.field(factory=set)  # failed or varied off: granted to no one until back


def label(holder: Holder) -> str:
    text = holder() if callable(holder) else holder
    return text or "unnamed"


@attrs.define(eq=False)
class DriveBroker:
    clock: Callable[[], float] = trio.current_time  # what `since` is measured in (the fabric passes its clock)
    journal_size: int | None = JOURNAL_SIZE  # None: keep every event (tests)
    journal: deque[BrokerEvent] = attrs.field(init=False)
    _pools: dict[str, _Pool] = attrs.field(factory=dict)
    _waiting: list[_Request] = attrs.field(factory=list)  # in arrival order
    _requests: int = 0
    _events: int = 0

    def __attrs_post_init__(self) -> None:
        self.journal = deque(maxlen=self.journal_size)

    # ------------------------------------------------------------ libraries

    def add_library(self, library: str, drives: int) -> None:
        pool = self._pools.get(library)
        if pool is not None:
            if pool.size != drives:
                raise ValueError(f"library {library} is already brokered with {pool.size} drives, not {drives}")
            return
        self._pools[library] = _Pool(drives, list(range(1, drives + 1)))

    def set_out(self, library: str, number: int, out: bool) -> None:
        """Take a drive out of service (failed, varied off) or put it back. A drive taken out
        while held stays with its holder until released, then is granted to no one."""
        pool = self._pools[library]
        if out:
            pool.out.add(number)
            if number in pool.free:
                pool.free.remove(number)
        elif number in pool.out:
            pool.out.discard(number)
            if number not in pool.held:
                bisect.insort(pool.free, number)
            self._dispatch()

    def in_use(self, library: str) -> int:
        return len(self._pools[library].held)

    # ------------------------------------------------------------ reserving

    @asynccontextmanager
    async def reserve(self, needs: Mapping[str, int], holder: Holder = "") -> AsyncIterator[Grant]:
        """Wait for every drive the request needs, all at once; hand them back when the block
        ends, however it ends. Raises NotFound or BadRequest (DriveShortage) at once for a
        request that could never be granted."""
        request = await self._acquire(needs, holder)
        assert request.granted is not None
        try:
            yield Grant(request.number, dict(request.granted))
        finally:
            self._release(request)

    def _check(self, needs: Mapping[str, int], holder: Holder) -> dict[str, int]:
        if not needs:
            raise errors.BadRequest(f"{label(holder)}: a drive request must name at least one library")
        checked = {}
        for library, count in needs.items():
            pool = self._pools.get(library)
            if pool is None:
                raise errors.NotFound("library", library, sorted(self._pools))
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise errors.BadRequest(
                    f"{label(holder)}: drives of library {library} must be a whole number from 1, not {count!r}"
                )
            if count > pool.size:
                raise DriveShortage(library, count, pool.size, label(holder))
            checked[library] = count
        return checked

    async def _acquire(self, needs: Mapping[str, int], holder: Holder) -> _Request:
        checked = self._check(needs, holder)
        await trio.lowlevel.checkpoint_if_cancelled()
        self._requests += 1
        request = _Request(self._requests, holder, checked, self.clock(), trio.lowlevel.current_task())
        self._waiting.append(request)
        self._log("arrive", request)
        self._dispatch()
        if request.granted is not None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return request

        def abort(_: object) -> trio.lowlevel.Abort:
            # Called the moment the waiter is cancelled, never after its grant: it leaves
            # the queue then and there, and whoever it held back goes now.
            self._waiting.remove(request)
            self._log("cancel", request)
            self._dispatch()
            return trio.lowlevel.Abort.SUCCEEDED

        request.parked = True
        await trio.lowlevel.wait_task_rescheduled(abort)
        return request

    def _dispatch(self) -> None:
        """Grant every waiter that may go now, in arrival order. A waiter that stays makes
        every library it needs closed to anyone who came later."""
        closed: set[str] = set()
        for request in list(self._waiting):
            if not closed.isdisjoint(request.needs) or any(len(self._pools[lib].free) < n for lib, n in request.needs.items()):
                closed.update(request.needs)
                continue
            granted = {}
            for lib, n in request.needs.items():
                pool = self._pools[lib]
                granted[lib] = tuple(pool.free[:n])
                del pool.free[:n]
                for number in granted[lib]:
                    pool.held[number] = request
            request.granted, request.granted_at = granted, self.clock()
            self._waiting.remove(request)
            self._log("grant", request, granted)
            if request.parked:
                trio.lowlevel.reschedule(request.task)

    def _release(self, request: _Request) -> None:
        assert request.granted is not None
        for lib, numbers in request.granted.items():
            pool = self._pools[lib]
            for number in numbers:
                if pool.held.pop(number, None) is not request:
                    raise AssertionError(f"drive {lib}#{number} was not held by request {request.number}")
                if number not in pool.out:
                    bisect.insort(pool.free, number)
        self._log("release", request, request.granted)
        self._dispatch()

    def _log(self, kind: str, request: _Request, drives: dict[str, tuple[int, ...]] | None = None) -> None:
        self._events += 1
        self.journal.append(
            BrokerEvent(
                self._events, kind, request.number, request.label(), dict(request.needs), dict(drives or {}), self.clock()
            )
        )

    # ------------------------------------------------------------ showing

    def report(self, library: str, loaded: Mapping[int, str | None] | None = None, unavailable: str = "") -> LibraryDrives:
        """Each drive of a library (free or held, by whom, since when) and who waits for it,
        in the order they will be served."""
        pool = self._pools[library]
        now = self.clock()
        loaded = loaded or {}
        drives = []
        for number in range(1, pool.size + 1):
            holder = pool.held.get(number)
            drives.append(
                DriveView(
                    f"{library}#{number}",
                    number,
                    "held" if holder is not None else "out" if number in pool.out else "free",
                    "" if holder is None else holder.label(),
                    None if holder is None else holder.granted_at,
                    None if holder is None else round(now - holder.granted_at, 3),
                    loaded.get(number),
                )
            )
        queue = [r for r in self._waiting if library in r.needs]
        waiters = tuple(WaiterView(n, r.label(), dict(r.needs), r.since, round(now - r.since, 3)) for n, r in enumerate(queue, 1))
        return LibraryDrives(library, tuple(drives), waiters, unavailable)
