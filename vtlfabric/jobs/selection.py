"""Which jobs a secondary copy holds: pure functions of catalog records, rules and time.

Two steps. ``to_register`` says which jobs the copy's rules select that the copy
has no row for yet; the aux copy writes those rows (*to be copied*) in one
transaction. A row, once there, is what counts: manual picks, *do not copy*,
*bad*, *damaged* and *aged* rows are never overruled by the rules. ``jobs_to_copy``
then says which rows to copy now: the due ones whose data the source holds, and on a
copy that heals, the damaged ones too (copied again from the start).

Periods are computed in UTC, with each day starting at ``day_starts``; weeks
start on ``week_starts``; months on the 1st, quarters on 1 Jan/Apr/Jul/Oct,
half-years on 1 Jan/Jul.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from vtlfabric.catalog.records import JobRecord
from vtlfabric.config import SelectionRules
from vtlfabric.vocab import DAY, PENDING_STATES, CopyState


def _key(job: JobRecord) -> tuple[float, int]:
    return (job.started, job.id)


# A job the rules may select is on the source copy, or on its way there.
SOURCE_STATES: tuple[str, ...] = (CopyState.AVAILABLE, *PENDING_STATES)


def due_states(heal: bool) -> tuple[CopyState, ...]:
    """The states of the jobs a copy still has to copy: damaged ones too if it heals."""
    return (*PENDING_STATES, CopyState.DAMAGED) if heal else PENDING_STATES


def jobs_to_copy(jobs: Iterable[JobRecord], copy_id: str, source_id: str, heal: bool = False) -> list[JobRecord]:
    """The jobs due on the copy whose data is available on its source, oldest first
    (by start time, then id, whatever the row order)."""
    due_on_copy = due_states(heal)
    due = [
        job
        for job in jobs
        if job.valid and job.copies.get(copy_id) in due_on_copy and job.copies.get(source_id) == CopyState.AVAILABLE
    ]
    return sorted(due, key=_key)


def to_register(jobs: Iterable[JobRecord], rules: SelectionRules, copy_id: str, source_id: str, now: float) -> list[JobRecord]:
    """Jobs the rules select that have no row on the copy yet and are old enough (defer)."""
    jobs = list(jobs)
    chosen = selected(jobs, rules, source_id, now)
    return sorted(
        (j for j in jobs if j.id in chosen and copy_id not in j.copies and j.started + rules.defer <= now),
        key=_key,
    )


def selected(jobs: Iterable[JobRecord], rules: SelectionRules, source_id: str, now: float) -> set[int]:
    """The ids of the jobs the rules put on the copy, among valid jobs its source holds
    or will hold. Selective rules apply to each subclient's fulls on their own. A 'last
    of the period' full is chosen only once its period has ended."""
    if not rules.automatic:
        return set()
    candidates = [
        j
        for j in jobs
        if j.valid
        and j.copies.get(source_id) in SOURCE_STATES
        and (rules.backups_from is None or j.started >= rules.backups_from)
    ]
    if rules.kind == "synchronous":
        return {j.id for j in candidates}
    chosen: set[int] = set()
    for fulls in _fulls_by_subclient(candidates).values():  # as Commvault: each subclient's own fulls
        if rules.every:
            chosen.update(j.id for j in _every(fulls, rules))
        elif rules.frequency == "all":
            chosen.update(j.id for j in fulls)
        else:
            chosen.update(j.id for j in _one_per_period(fulls, rules, now))
    return chosen


def _fulls_by_subclient(jobs: list[JobRecord]) -> dict[tuple[str, str], list[JobRecord]]:
    groups: dict[tuple[str, str], list[JobRecord]] = {}
    for job in sorted((j for j in jobs if j.type == "full"), key=_key):
        groups.setdefault((job.client, job.subclient), []).append(job)
    return groups


def _one_per_period(fulls: list[JobRecord], rules: SelectionRules, now: float) -> list[JobRecord]:
    periods: dict[object, list[JobRecord]] = {}
    for job in fulls:
        periods.setdefault(period(job.started, rules)[0], []).append(job)
    out = []
    for members in periods.values():
        if rules.pick == "first":
            out.append(members[0])
        elif period(members[-1].started, rules)[2] <= now:
            out.append(members[-1])
    return out


def period(t: float, rules: SelectionRules) -> tuple[object, float, float]:
    """The period holding fabric time ``t``, for the rules' frequency: (key, start, end)."""
    freq = rules.frequency
    if freq == "hourly":
        start = t // 3600 * 3600
        return start, start, start + 3600
    day = _day_of(t, rules)
    if freq == "daily":
        first, nxt = day, day + timedelta(days=1)
    elif freq == "weekly":
        first = day - timedelta(days=(day.weekday() - rules.week_starts) % 7)
        nxt = first + timedelta(days=7)
    else:
        months = {"monthly": 1, "quarterly": 3, "half-yearly": 6, "yearly": 12}[freq]
        first = date(day.year, (day.month - 1) // months * months + 1, 1)
        nxt = _add_months(first, months)
    return first, _instant(first, rules), _instant(nxt, rules)


def _day_of(t: float, rules: SelectionRules) -> date:
    """The calendar day ``t`` belongs to, when days start at ``day_starts``. (Whole seconds:
    datetime rounds to the microsecond, and 0.2 us before midnight would be the next day.)"""
    return datetime.fromtimestamp(math.floor(t - rules.day_starts), UTC).date()


def _instant(day: date, rules: SelectionRules) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() + rules.day_starts


def _add_months(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _every(fulls: list[JobRecord], rules: SelectionRules) -> list[JobRecord]:
    """Advanced rule: every Nth full (cycles), or the first full at least N days, weeks or
    months after the last one chosen."""
    if rules.every_unit == "cycles":
        return fulls[:: rules.every]
    out: list[JobRecord] = []
    for job in fulls:
        if not out or job.started >= _after(out[-1].started, rules):
            out.append(job)
    return out


def _after(t: float, rules: SelectionRules) -> float:
    if rules.every_unit == "months":
        whole = math.floor(t)  # as in _day_of: the fraction is added back, never rounded
        moment = datetime.fromtimestamp(whole, UTC)
        shifted = _add_months(moment.date(), rules.every)
        return datetime.combine(shifted, moment.timetz()).timestamp() + (t - whole)
    return t + rules.every * DAY * (7 if rules.every_unit == "weeks" else 1)
