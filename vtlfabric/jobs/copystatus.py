"""A copy's status, computed in one place: its role, its jobs' states, its lag (what it
still has to copy, and how old the oldest of that is), whether it has fallen behind,
the jobs found damaged on it (and whether it heals them), and why it cannot be used
now. ``ctl copies``, ``ctl status``, the systemd STATUS line and the metrics all read
it from here."""

from __future__ import annotations

import attrs

from vtlfabric.catalog import queries
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.auxcopy import candidates, recent_window
from vtlfabric.jobs.damage import heal_plan, heals
from vtlfabric.jobs.selection import SOURCE_STATES, due_states, to_register
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
    """Every copy's status, from aggregates (catalog/summary.py): the cost follows the
    copies, not the years of jobs behind them."""
    counts = await fabric.catalog.call(queries.state_counts)
    runs = await fabric.catalog.call(queries.run_summary)
    suspended = await fabric.catalog.call(queries.suspended_copies)
    ordered = sorted(fabric.copies(), key=lambda c: (c.policy, not c.primary))
    out = []
    for n, copy in enumerate(ordered, 1):
        due = await _due(fabric, copy)
        damaged = await fabric.catalog.call(queries.jobs_in_state, copy.id, CopyState.DAMAGED)
        out.append(_status(fabric, copy, n, counts.get(copy.id, {}), due, damaged, runs.get(copy.id), copy.id in suspended))
    return out


async def _due(fabric: Fabric, copy: CopySpec) -> tuple[int, int, float | None]:
    """What the copy still has to copy: its jobs in a due state, and those its rules will
    register at the next run. (jobs, bytes, when the oldest started)."""
    jobs, nbytes, oldest = await fabric.catalog.call(queries.due_summary, copy.id, due_states(heals(copy)))
    if copy.primary:
        return jobs, nbytes, oldest
    if copy.rules.kind == "synchronous" and copy.rules.automatic:
        wanted = queries.Candidates(
            copy.id,
            fabric.source_of(copy).id,
            SOURCE_STATES,
            unregistered_only=True,
            since=copy.rules.backups_from,
            recent=await recent_window(fabric, copy),
        )
        new = await fabric.catalog.call(queries.candidate_summary, wanted, fabric.now() - copy.rules.defer)
    else:  # a selective copy's rules weigh its source's fulls: few, whatever the years
        chosen = to_register(await candidates(fabric, copy), copy.rules, copy.id, fabric.source_of(copy).id, fabric.now())
        new = (len(chosen), sum(j.bytes for j in chosen), min((j.started for j in chosen), default=None))
    starts = [t for t in (oldest, new[2]) if t is not None]
    return jobs + new[0], nbytes + new[1], min(starts, default=None)


def _status(
    fabric: Fabric,
    copy: CopySpec,
    precedence: int,
    counts: dict[str, tuple[int, int]],
    due: tuple[int, int, float | None],
    damaged_jobs: list[tuple[int, str]],
    run: tuple[int, int, float | None] | None,
    suspended: bool,
) -> CopyStatus:
    to_copy, real_bytes, oldest = due
    age = round(fabric.now() - oldest, 1) if oldest is not None else None
    nbytes = real_bytes * fabric.scale
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
    states = {state.value: counts.get(state, (0, 0))[0] for state in CopyState}
    damaged = tuple(f"job {job_id}: {reason}" for job_id, reason in damaged_jobs)
    last_ok = run[2] if run else None
    return CopyStatus(
        id=copy.id,
        primary=copy.primary,
        library=copy.library,
        source=copy.source,
        kind=copy.rules.kind,
        precedence=precedence,
        available=states[CopyState.AVAILABLE],
        states={k: v for k, v in states.items() if v},
        available_bytes=counts.get(CopyState.AVAILABLE, (0, 0))[1] * fabric.scale,
        to_copy=to_copy,
        bytes_to_copy=nbytes,
        oldest_uncopied_age=age,
        last_auxcopy=iso(last_ok) if last_ok is not None else "",
        fallen_behind=behind,
        suspended=suspended,
        inoperative=fabric.inoperative(copy),
        damaged=damaged,
        heal=heal_plan(copy) if damaged else "",
    )
