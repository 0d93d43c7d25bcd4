"""Data aging: which jobs each copy's retention lets go. A pure function, like selection.

Retention is by full cycles (a full and the jobs after it, up to the next full, of
one subclient) and by days. A cycle ages on a copy once *both* limits are past, as
in Commvault: at least ``retain_cycles`` newer cycles are on the copy, and its
newest job ended more than ``retain_days`` ago. A limit set to 0 does not hold a
cycle back; with both 0 the copy keeps everything. A subclient's newest cycle is
never aged from the only copy that holds it, and no cycle ages from a copy while a
copy it feeds still needs one of its jobs (to copy, or to be selected by its rules,
deferred or not): that copy would never get it. As in Commvault, a copy that is
never run holds its source's data back; `do-not-copy` lets a job go. Only *available*
jobs age: a *damaged* one waits to be healed (a copy it feeds that heals needs it too).
"""

from __future__ import annotations

from collections.abc import Iterable

from vtlfabric.catalog.records import JobRecord
from vtlfabric.config import CopySpec
from vtlfabric.jobs.selection import due_states, selected
from vtlfabric.vocab import DAY, CopyState


def cycles(jobs: Iterable[JobRecord]) -> list[list[JobRecord]]:
    """One subclient's jobs cut into full cycles, oldest first (jobs before the first full,
    such as incrementals picked by hand, form a cycle of their own)."""
    out: list[list[JobRecord]] = []
    for job in sorted(jobs, key=lambda j: j.id):
        if job.type == "full" or not out:
            out.append([job])
        else:
            out[-1].append(job)
    return out


def to_age(jobs: Iterable[JobRecord], copies: Iterable[CopySpec], now: float) -> list[tuple[int, str]]:
    """(job id, copy id) for every job a copy's retention lets go now."""
    jobs = [j for j in jobs if j.valid]
    copies = list(copies)
    out = []
    for copy in copies:
        if not (copy.retain_days or copy.retain_cycles):
            continue
        needed = _needed_downstream(jobs, copy, copies, now)
        held = [j for j in jobs if j.copies.get(copy.id) == CopyState.AVAILABLE]
        for sub in sorted({(j.client, j.subclient) for j in held}):
            out += [(j.id, copy.id) for j in _expired(copy, needed, [j for j in held if (j.client, j.subclient) == sub], now)]
    return out


def _needed_downstream(jobs: list[JobRecord], copy: CopySpec, copies: list[CopySpec], now: float) -> set[int]:
    """Jobs that a copy fed from ``copy`` has yet to copy, or whose rules will select them."""
    needed: set[int] = set()
    for fed in (c for c in copies if c.policy == copy.policy and c.source == copy.name):
        due = due_states(fed.heal)  # a damaged job it will heal needs its source's data too
        needed.update(j.id for j in jobs if j.copies.get(fed.id) in due)
        chosen = selected(jobs, fed.rules, copy.id, now)
        needed.update(j.id for j in jobs if j.id in chosen and fed.id not in j.copies)
    return needed


def _expired(copy: CopySpec, needed: set[int], held: list[JobRecord], now: float) -> list[JobRecord]:
    cuts = cycles(held)
    out = []
    for age, cycle in enumerate(reversed(cuts)):  # age 0: the newest cycle on this copy
        newest_end = max(j.ended or j.started for j in cycle)
        if age < copy.retain_cycles or now - newest_end < copy.retain_days * DAY:
            continue
        if age == 0 and not all(_elsewhere(j, copy.id) for j in cycle):
            continue  # this copy is the only one holding (part of) the newest cycle
        if any(j.id in needed for j in cycle):
            continue  # a copy fed from here still needs part of it
        out += cycle
    return out


def _elsewhere(job: JobRecord, copy_id: str) -> bool:
    return any(state == CopyState.AVAILABLE for other, state in job.copies.items() if other != copy_id)
