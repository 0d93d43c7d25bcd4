"""A replay of a drive broker's journal that checks its promises from the outside.

It rebuilds the queue and the drives held from the journal alone (arrive, grant,
cancel, release, in order) and reports every broken promise:

- a drive granted while it was held, a drive of a number the library does not have,
  a grant of another count than was asked, a release of drives not held;
- a grant while an earlier request that needs one of the same libraries was still
  waiting (someone overtaken by a later arrival);
- drives left idle: whenever the broker was done reacting (the next event is not a
  grant), no waiter could have gone (every library it needs had no earlier waiter
  and enough free drives).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vtlfabric.tape.broker import BrokerEvent


def audit(journal: Iterable[BrokerEvent], sizes: Mapping[str, int], *, finished: bool = True) -> list[str]:
    """The broken promises in ``journal`` (empty: none). ``finished``: every request
    has ended, so nothing may still wait or hold a drive."""
    events = list(journal)
    problems: list[str] = []
    if events and events[0].seq != 1:
        problems.append(f"the journal lost its first {events[0].seq - 1} events: make it bigger")
    waiting: dict[int, BrokerEvent] = {}  # by request number, i.e. in arrival order
    held: dict[tuple[str, int], int] = {}

    def free(lib: str) -> int:
        return sizes[lib] - sum(1 for (held_lib, _) in held if held_lib == lib)

    def could_go() -> list[int]:
        closed: set[str] = set()
        ready = []
        for number in sorted(waiting):
            needs = waiting[number].needs
            if closed.isdisjoint(needs) and all(free(lib) >= n for lib, n in needs.items()):
                ready.append(number)
            closed.update(needs)
        return ready

    for i, e in enumerate(events):
        if e.kind != "grant" and (ready := could_go()):
            problems.append(f"before event {e.seq}: requests {ready} could have gone but waited")
        if e.kind == "arrive":
            waiting[e.request] = e
        elif e.kind == "cancel":
            if waiting.pop(e.request, None) is None:
                problems.append(f"event {e.seq}: request {e.request} cancelled but was not waiting")
        elif e.kind == "grant":
            if e.request not in waiting:
                problems.append(f"event {e.seq}: request {e.request} granted but was not waiting")
            overtaken = [n for n, w in waiting.items() if n < e.request and not set(w.needs).isdisjoint(e.needs)]
            if overtaken:
                problems.append(f"event {e.seq}: request {e.request} ({e.holder}) overtook earlier waiters {overtaken}")
            if {lib: len(numbers) for lib, numbers in e.drives.items()} != e.needs:
                problems.append(f"event {e.seq}: request {e.request} asked for {e.needs}, got {e.drives}")
            for lib, numbers in e.drives.items():
                for n in numbers:
                    if not 1 <= n <= sizes[lib]:
                        problems.append(f"event {e.seq}: {lib} has no drive {n}")
                    if (lib, n) in held:
                        problems.append(f"event {e.seq}: {lib}#{n} granted to {e.request}, held by {held[(lib, n)]}")
                    held[(lib, n)] = e.request
            waiting.pop(e.request, None)
        elif e.kind == "release":
            for lib, numbers in e.drives.items():
                for n in numbers:
                    if held.pop((lib, n), None) != e.request:
                        problems.append(f"event {e.seq}: {lib}#{n} released by {e.request}, which did not hold it")
        else:
            problems.append(f"event {e.seq}: unknown kind {e.kind!r}")
        if i + 1 == len(events) and (ready := could_go()):
            problems.append(f"at the end: requests {ready} could have gone but waited")
    if finished and (waiting or held):
        problems.append(f"at the end: still waiting {sorted(waiting)}, still held {sorted(held)}")
    return problems


def grant_order(journal: Iterable[BrokerEvent]) -> list[str]:
    """The holders, in the order they were granted."""
    return [e.holder for e in journal if e.kind == "grant"]
