"""The drive broker on the virtual clock: atomic grants, first come first served in each
library, requests that could never be granted, cancellation, and random schedules that
must always finish without a drive held twice or a waiter overtaken."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.drivejournal import audit, grant_order
from vtlfabric import errors
from vtlfabric.tape.broker import DriveBroker, DriveShortage
from vtlfabric.tape.library import LibraryOffline, reserve_drives

A, B = "prod/PVTL", "dr/DVTL"


def broker(**sizes: int) -> DriveBroker:
    b = DriveBroker(journal_size=None)
    for lib, n in sizes.items():
        b.add_library(lib, n)
    return b


def two(a: int = 2, b: int = 1) -> DriveBroker:
    out = DriveBroker(journal_size=None)
    out.add_library(A, a)
    out.add_library(B, b)
    return out


async def hold(b: DriveBroker, needs: dict[str, int], holder: str, until: trio.Event, got: list[str] | None = None) -> None:
    async with b.reserve(needs, holder) as grant:
        if got is not None:
            got.append(holder)
        assert {lib: len(numbers) for lib, numbers in grant.drives.items()} == needs
        await until.wait()


def holders(b: DriveBroker, lib: str) -> list[str]:
    return [d.holder for d in b.report(lib).drives]


def waiters(b: DriveBroker, lib: str) -> list[str]:
    return [w.holder for w in b.report(lib).waiters]


async def test_a_request_is_granted_whole_or_not_at_all(autojump_clock):
    b = two()
    done = {name: trio.Event() for name in ("restore", "copy")}
    got: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, b, {B: 1}, "restore", done["restore"], got)
        await trio.sleep(1)
        nursery.start_soon(hold, b, {A: 1, B: 1}, "copy", done["copy"], got)
        await trio.sleep(60)
        assert got == ["restore"], "the copy waits for its destination drive"
        assert holders(b, A) == ["", ""], "and holds no source drive meanwhile"
        assert waiters(b, A) == waiters(b, B) == ["copy"]
        done["restore"].set()
        await trio.sleep(1)
        assert got == ["restore", "copy"]
        assert holders(b, A) == ["copy", ""] and holders(b, B) == ["copy"]
        done["copy"].set()
    assert b.in_use(A) == b.in_use(B) == 0
    assert audit(b.journal, {A: 2, B: 1}) == []


async def test_waiters_of_a_library_are_served_in_arrival_order(autojump_clock):
    b = broker(**{A: 1})
    release = trio.Event()
    got: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, b, {A: 1}, "first", release, got)
        for name in ("w1", "w2", "w3"):
            await trio.sleep(1)
            nursery.start_soon(hold, b, {A: 1}, name, trio.Event(), got)
        await trio.sleep(1)
        report = b.report(A)
        assert [(w.position, w.holder) for w in report.waiters] == [(1, "w1"), (2, "w2"), (3, "w3")]
        assert [w.waited for w in report.waiters] == [3.0, 2.0, 1.0]
        release.set()
        await trio.sleep(1)
        nursery.cancel_scope.cancel()  # w1 holds; w2 and w3 give up
    assert got == ["first", "w1"]
    assert grant_order(b.journal) == ["first", "w1"]
    assert audit(b.journal, {A: 1}) == []


async def test_a_later_small_request_does_not_overtake_an_earlier_big_one(autojump_clock):
    b = broker(**{A: 2})
    releases = {name: trio.Event() for name in ("backup", "copy", "restore")}
    got: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, b, {A: 1}, "backup", releases["backup"], got)
        await trio.sleep(1)
        nursery.start_soon(hold, b, {A: 2}, "copy", releases["copy"], got)  # a copy within the library
        await trio.sleep(1)
        nursery.start_soon(hold, b, {A: 1}, "restore", releases["restore"], got)
        await trio.sleep(60)
        assert got == ["backup"], "one drive is free, but the restore came after the copy that needs two"
        assert holders(b, A) == ["backup", ""] and waiters(b, A) == ["copy", "restore"]
        releases["backup"].set()
        await trio.sleep(1)
        assert got == ["backup", "copy"]
        releases["copy"].set()
        await trio.sleep(1)
        assert got == ["backup", "copy", "restore"]
        releases["restore"].set()
    assert audit(b.journal, {A: 2}) == []


async def test_a_waiter_for_one_library_is_not_held_up_by_another_librarys_queue(autojump_clock):
    b = two(a=1, b=1)
    release = trio.Event()
    got: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, b, {A: 1}, "backup", release, got)
        await trio.sleep(1)
        nursery.start_soon(hold, b, {A: 1}, "verify", release, got)
        await trio.sleep(1)
        nursery.start_soon(hold, b, {B: 1}, "restore", release, got)
        await trio.sleep(1)
        assert got == ["backup", "restore"]
        release.set()
    assert got == ["backup", "restore", "verify"]
    assert audit(b.journal, {A: 1, B: 1}) == []


async def test_a_request_that_could_never_be_granted_fails_at_once(autojump_clock):
    b = two()
    start = trio.current_time()
    with pytest.raises(DriveShortage, match=r"copy P/x needs 3 drives of library prod/PVTL, which has 2") as caught:
        async with b.reserve({A: 3}, "copy P/x"):
            pass
    assert isinstance(caught.value, errors.BadRequest) and errors.exit_code(caught.value) == errors.EXIT_BAD
    assert (caught.value.library, caught.value.wanted, caught.value.drives) == (A, 3, 2)
    with pytest.raises(errors.NotFound, match=r"no library 'x/Y' \(known: dr/DVTL, prod/PVTL\)"):
        async with b.reserve({"x/Y": 1}):
            pass
    for needs in ({}, {A: 0}, {A: -1}, {A: True}):
        with pytest.raises(errors.BadRequest):
            async with b.reserve(needs):
                pass
    assert trio.current_time() == start, "nothing waited"
    assert list(b.journal) == [], "nothing was queued"


async def test_a_cancelled_waiter_leaves_the_queue_and_wakes_whoever_can_go(autojump_clock):
    b = broker(**{A: 2})
    release = trio.Event()
    got: list[str] = []

    async def give_up_after(seconds: float, needs: dict[str, int], name: str) -> None:
        with trio.move_on_after(seconds):
            await hold(b, needs, name, release, got)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, b, {A: 1}, "backup", release, got)
        await trio.sleep(1)
        nursery.start_soon(give_up_after, 10, {A: 2}, "copy")
        await trio.sleep(1)
        nursery.start_soon(hold, b, {A: 1}, "restore", release, got)
        await trio.sleep(5)
        assert got == ["backup"] and waiters(b, A) == ["copy", "restore"]
        await trio.sleep(5)  # the copy gives up at t=11
        assert got == ["backup", "restore"], "the restore went the moment the copy left"
        assert waiters(b, A) == []
        cancel = next(e for e in b.journal if e.kind == "cancel")
        grant = next(e for e in b.journal if e.kind == "grant" and e.holder == "restore")
        assert cancel.holder == "copy" and grant.seq == cancel.seq + 1 and grant.at == cancel.at
        release.set()
    assert audit(b.journal, {A: 2}) == []


async def test_a_holder_that_raises_or_is_cancelled_gives_its_drives_back(autojump_clock):
    b = two()
    with pytest.raises(RuntimeError):
        async with b.reserve({A: 2, B: 1}, "crashing"):
            raise RuntimeError("boom")
    with trio.move_on_after(5):
        async with b.reserve({A: 1, B: 1}, "cancelled"):
            await trio.sleep(60)
    assert b.in_use(A) == b.in_use(B) == 0
    assert [d.state for d in b.report(A).drives] == ["free", "free"]
    assert audit(b.journal, {A: 2, B: 1}) == []


async def test_the_report_shows_holders_waiters_and_what_each_waits_for(autojump_clock):
    b = two()
    release = trio.Event()
    stream = {"job": 0}

    def label() -> str:
        return f"auxcopy P/dr stream 1 job {stream['job']}"

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, b, {A: 1, B: 1}, label, release)
        await trio.sleep(2)
        nursery.start_soon(hold, b, {A: 1, B: 1}, "auxcopy P/dr stream 2", release)
        await trio.sleep(1)
        nursery.start_soon(hold, b, {B: 1}, "restore IBMA", release)
        await trio.sleep(2)
        stream["job"] = 14
        a, d = b.report(A, {1: "PR0001L8"}, unavailable=""), b.report(B)
        assert [(x.name, x.state, x.holder, x.barcode, x.since) for x in a.drives] == [
            ("prod/PVTL#1", "held", "auxcopy P/dr stream 1 job 14", "PR0001L8", start),
            ("prod/PVTL#2", "free", "", None, None),
        ]
        assert [(w.position, w.holder, w.needs, w.since, w.waited) for w in a.waiters] == [
            (1, "auxcopy P/dr stream 2", {A: 1, B: 1}, start + 2, 3.0)
        ]
        assert [w.holder for w in d.waiters] == ["auxcopy P/dr stream 2", "restore IBMA"]
        release.set()


async def test_a_copy_within_one_library_takes_two_of_its_drives_and_never_deadlocks(fabric, autojump_clock):
    """The old reservation took the library's semaphore twice, one drive after the other:
    two such streams on a library of two drives each held one and waited forever."""
    lib = fabric.libraries[A]
    seen: list[tuple[str, str]] = []

    async def stream(n: int) -> None:
        async with reserve_drives(lib, lib, holder=f"stream {n}") as (src, dst):
            assert src is not dst
            seen.append((src.name, dst.name))
            await trio.sleep(1)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(stream, n)
    assert sorted(set(seen)) == [("prod/PVTL#1", "prod/PVTL#2")]
    assert len(seen) == 4
    needs = [e.needs for e in fabric.broker.journal if e.kind == "arrive"]
    assert needs == [{A: 2}] * 4, "one request for two drives each"
    assert audit(fabric.broker.journal, {A: 2, B: 2}) == []


async def test_no_drive_is_handed_out_on_an_unavailable_library(fabric, autojump_clock):
    lib = fabric.libraries[B]
    lib.offline = True
    with pytest.raises(LibraryOffline, match="offline"):
        async with lib.drive("restore IBMA"):
            pass
    assert list(fabric.broker.journal) == [], "refused before it queued"
    lib.offline = False
    release = trio.Event()
    outcome: list[str] = []

    async def restore() -> None:
        try:
            async with lib.drive("restore IBMA"):
                outcome.append("got a drive")
        except LibraryOffline:
            outcome.append("offline")

    async with trio.open_nursery() as nursery:
        for n in (1, 2):
            nursery.start_soon(hold, fabric.broker, {B: 1}, f"backup {n}", release)
        await trio.sleep(1)
        nursery.start_soon(restore)
        await trio.sleep(1)
        lib.offline = True  # while the restore waits
        release.set()
    assert outcome == ["offline"], "granted on a library gone offline: it raises instead, and the drive goes back"
    assert lib.drives_in_use == 0
    assert audit(fabric.broker.journal, {A: 2, B: 2}) == []


# ------------------------------------------------------------------ random schedules


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    requests=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_schedules_always_finish_fairly(sizes, requests, seed):
    trio.run(_random_schedule, sizes, requests, seed, clock=trio.testing.MockClock(autojump_threshold=0))


async def _random_schedule(sizes: list[int], requests: int, seed: int) -> None:
    rng = random.Random(seed)
    libs = {f"site{n}/L{n}": size for n, size in enumerate(sizes)}
    b = DriveBroker(journal_size=None)
    for lib, size in libs.items():
        b.add_library(lib, size)
    held: dict[tuple[str, int], str] = {}  # the test's own record, not the broker's
    outcomes: dict[str, str] = {}

    async def one(name: str, arrive: float, needs: dict[str, int], hold_for: float, give_up: float | None, crash: bool) -> None:
        await trio.sleep(arrive)
        outcomes[name] = "cancelled"
        with trio.move_on_after(give_up if give_up is not None else float("inf")):
            try:
                async with b.reserve(needs, name) as grant:
                    outcomes[name] = "held"
                    for lib, numbers in grant.drives.items():
                        assert len(numbers) == needs[lib]
                        for n in numbers:
                            assert (lib, n) not in held, f"{lib}#{n} given to {name} while {held[(lib, n)]} holds it"
                            held[(lib, n)] = name
                    try:
                        await trio.sleep(hold_for)
                        if crash:
                            raise ValueError(name)
                    finally:
                        for lib, numbers in grant.drives.items():
                            for n in numbers:
                                del held[(lib, n)]
                outcomes[name] = "done"
            except ValueError:
                outcomes[name] = "crashed"

    schedule = []
    for n in range(requests):
        chosen = rng.sample(sorted(libs), rng.randint(1, len(libs)))
        needs = {lib: rng.randint(1, libs[lib]) for lib in chosen}
        give_up = rng.uniform(0, 30) if rng.random() < 0.25 else None
        schedule.append((f"r{n}", rng.uniform(0, 20), needs, rng.uniform(0, 10), give_up, rng.random() < 0.1))
    with trio.fail_after(requests * 10 + 60):  # a deadlock stops the virtual clock's tasks: it jumps here
        async with trio.open_nursery() as nursery:
            for args in schedule:
                nursery.start_soon(one, *args)
    assert held == {}
    for name, _, _, _, give_up, crash in schedule:
        if give_up is None:
            assert outcomes[name] == ("crashed" if crash else "done"), f"{name} never got its drives"
    assert sorted(e.request for e in b.journal if e.kind == "arrive") == list(range(1, requests + 1))
    assert audit(b.journal, libs) == []
