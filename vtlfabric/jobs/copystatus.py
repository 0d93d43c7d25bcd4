"""A copy's status, computed in one place: its role, its jobs' states, its lag (what it
still has to copy, and how old the oldest of that is), whether it has fallen behind,
the jobs found damaged on it (and whether it heals them), and why it cannot be used
now. ``ctl copies``, ``ctl status``, the systemd STATUS line and the metrics all read
it from here."""

from __future__ import annotations

import attrs

from vtlfabric.catalog import queries
from vtlfabric.catalog.records import AuxRunRecord, JobRecord
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.damage import heal_plan, heals
from vtlfabric.jobs.selection import due_states, to_register
from vtlfabric.sim.clock import iso
from vtlfabric.vocab import CopyState


@attrs.frozen
class CopyStatus:
    id: str
    primary: bool
    library: str
    source: str | None
    kind: str
    precedence: int  # restores prefer the lowest: the primary first
    available: int
    states: dict[str, int]  # job-copy state -> jobs, the states that have any
    available_bytes: int  # nominal, as every byte count here
    to_copy: int  # jobs the copy still has to copy, and those its rules will register next run
    bytes_to_copy: int
    oldest_uncopied_age: float | None  # seconds
    last_auxcopy: str  # when its last good run ended (ISO), "" if never
    fallen_behind: tuple[str, ...]  # why, past its limits
    suspended: bool
    inoperative: str  # why it cannot be used now, "" if it can
    damaged: tuple[str, ...] = ()  # each job found damaged on the copy, and why
    heal: str = ""  # what becomes of the damaged jobs ("" if there are none)


async def copy_statuses(fabric: Fabric) -> list[CopyStatus]:
    jobs = await fabric.catalog.call(queries.list_jobs)
    runs = await fabric.catalog.call(queries.aux_runs)
    suspended = await fabric.catalog.call(queries.suspended_copies)
    ordered = sorted(fabric.copies(), key=lambda c: (c.policy, not c.primary))
    return [_status(fabric, copy, n, jobs, runs, copy.id in suspended) for n, copy in enumerate(ordered, 1)]


def _status(
    fabric: Fabric, copy: CopySpec, precedence: int, jobs: list[JobRecord], runs: list[AuxRunRecord], suspended: bool
) -> CopyStatus:
    due_here = due_states(heals(copy))
    due = [j for j in jobs if j.copies.get(copy.id) in due_here]
    if not copy.primary:  # and those the rules will register at the next run
        due += to_register(jobs, copy.rules, copy.id, fabric.source_of(copy).id, fabric.now())
    last_ok = [r for r in runs if r.copy_id == copy.id and r.status == "completed"]
    oldest = min((j.started for j in due), default=None)
    age = round(fabric.now() - oldest, 1) if oldest is not None else None
    nbytes = sum(j.bytes for j in due) * fabric.scale
    behind = tuple(
        why
        for why, past in (
            (f"{nbytes} bytes to copy (limit {copy.behind_bytes})", copy.behind_bytes and nbytes > copy.behind_bytes),
            (
                f"oldest uncopied job is {age}s old (limit {copy.behind_age:g}s)",
                copy.behind_age and age and age > copy.behind_age,
            ),
        )
        if past
    )
    states = {state.value: sum(1 for j in jobs if j.copies.get(copy.id) == state) for state in CopyState}
    held = sum(j.bytes for j in jobs if j.copies.get(copy.id) == CopyState.AVAILABLE) * fabric.scale
    damaged = tuple(f"job {j.id}: {j.reasons.get(copy.id, '')}" for j in jobs if j.copies.get(copy.id) == CopyState.DAMAGED)
    return CopyStatus(
        id=copy.id,
        primary=copy.primary,
        library=copy.library,
        source=copy.source,
        kind=copy.rules.kind,
        precedence=precedence,
        available=states[CopyState.AVAILABLE],
        states={k: v for k, v in states.items() if v},
        available_bytes=held,
        to_copy=len(due),
        bytes_to_copy=nbytes,
        oldest_uncopied_age=age,
        last_auxcopy=iso(last_ok[-1].ended) if last_ok else "",
        fallen_behind=behind,
        suspended=suspended,
        inoperative=fabric.inoperative(copy),
        damaged=damaged,
        heal=heal_plan(copy) if damaged else "",
    )
