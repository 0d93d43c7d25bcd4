"""The fabric file's storage policies (their copies and selection rules) and schedules."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from datetime import time as dtime

from vtlfabric.config.reader import MISSING, Table, show, unique
from vtlfabric.config.sites import MAX_SLOTS, barcode_ranges
from vtlfabric.config.specs import (
    COPY_KINDS,
    EVERY_UNITS,
    FREQUENCIES,
    READ_ERROR_ACTIONS,
    SCHEDULE_ACTIONS,
    WEEKDAYS,
    CopySpec,
    PolicySpec,
    ScheduleSpec,
    SelectionRules,
)
from vtlfabric.vocab import DAY, JOB_TYPES, MAX_STREAMS

_EVERY = re.compile(r"([0-9]{1,6}) +([a-z]+)")
MAX_EVERY = 1000  # 1000 months is 83 years: past that, the calendar runs out before the rule matters
# The scheduler adds the period to fabric time (about 1.8e9 s): far below a second it
# would fire in a loop, and a schedule more often than once a second is no backup plan.
MIN_EVERY = 1.0


def copy(t: Table, policy: str) -> CopySpec:
    primary = t.get("primary", bool, False)
    kind = t.choice("kind", COPY_KINDS, "synchronous")
    spec = CopySpec(
        policy=policy,
        name=t.name(),
        primary=primary,
        library=t.get("library", str),
        source=None if primary else t.get("source", str, "primary"),
        kind=kind,
        streams=t.convert("streams", _streams, (int, str), 1),
        rules=SelectionRules() if primary else _rules(t, kind),
        combine_streams=t.integer("combine_streams", 1, MAX_STREAMS) if t.has("combine_streams") else 0,
        throttle=float(t.size("throttle", 0)),
        behind_bytes=t.size("fallen_behind_bytes", 0),
        behind_age=t.duration("fallen_behind_age", 0),
        retain_days=float(t.number("retain_days", 0, 36500, 0)),
        retain_cycles=t.integer("retain_cycles", 0, 1000, 0),
        media=t.convert("media", lambda value: barcode_ranges(value, MAX_SLOTS), (str, list), ()) if t.has("media") else (),
        # On the primary too: a promotion can make it a secondary copy.
        on_read_error=t.choice("on_read_error", READ_ERROR_ACTIONS, "skip"),
        heal=t.get("heal", bool, True),
    )
    t.done()
    return spec


def _rules(t: Table, kind: str) -> SelectionRules:
    selective_only = ("frequency", "pick", "week_starts", "day_starts", "every")
    if kind == "synchronous":
        for key in selective_only:
            if t.has(key):
                raise t.error(key, 'applies only to a selective copy (kind = "selective")')
    every, unit = t.convert("every", _every, str) if t.has("every") else (0, "")
    rules = SelectionRules(
        kind=kind,
        backups_from=t.convert("backups_from", _instant, (str, date)) if t.has("backups_from") else None,
        frequency=t.choice("frequency", FREQUENCIES, "all"),
        pick=t.choice("pick", ("first", "last"), "first"),
        week_starts=WEEKDAYS.index(t.choice("week_starts", WEEKDAYS, "friday")),
        day_starts=t.convert("day_starts", _time_of_day, (str, dtime), "00:00"),
        every=every,
        every_unit=unit,
        automatic=t.get("automatic", bool, True),
        defer=t.number("defer_days", 0, 3650, 0) * DAY,
    )
    if rules.every and t.has("frequency"):
        raise t.error("every", "give either frequency or every, not both")
    return rules


def _streams(value: int | str) -> int:
    if value == "max":
        return 0
    if isinstance(value, int) and 1 <= value <= MAX_STREAMS:
        return value
    raise ValueError(f'{show(value)}: give a number of streams from 1 to {MAX_STREAMS}, or "max"')


def _instant(value: str | date) -> float:
    """A TOML date or date-time (or the same as a string), as fabric time; dates are UTC midnight."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{show(value)} is not a date such as 2026-03-01 or 2026-03-01T06:00:00") from None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError):  # an offset that takes year 1 or 9999 past the calendar's end
        raise ValueError(f"{show(value)} is outside the years 1 to 9999") from None


def _time_of_day(value: str | dtime) -> float:
    if isinstance(value, str):
        try:
            value = dtime.fromisoformat(value)
        except ValueError:
            raise ValueError(f'{show(value)} is not a time of day such as "06:00"') from None
    if value.tzinfo is not None:  # days start at a time of day UTC: an offset would silently shift it
        raise ValueError(f"{show(value.isoformat())}: give the time of day in UTC, without an offset")
    return value.hour * 3600.0 + value.minute * 60.0 + value.second


def _every(value: str) -> tuple[int, str]:
    match = _EVERY.fullmatch(value.strip())
    if not match or not 1 <= int(match.group(1)) <= MAX_EVERY or match.group(2) not in EVERY_UNITS:
        raise ValueError(f'{show(value)} is not a rule such as "2 weeks" (1 to {MAX_EVERY} {", ".join(EVERY_UNITS)})')
    return int(match.group(1)), match.group(2)


def policy(t: Table) -> PolicySpec:
    name = t.name()
    copies = tuple(copy(c, name) for c in t.tables("copy"))
    spec = PolicySpec(name=name, clients=t.strings("clients"), copies=copies)
    unique(t, "copy", [c.name for c in copies])
    primaries = [j for j, c in enumerate(copies) if c.primary]
    if len(primaries) != 1:
        key = f"copy[{primaries[1]}].primary" if primaries else "copy"
        raise t.error(key, "a policy needs exactly one copy with primary = true")
    t.done()
    return spec


def schedule(t: Table) -> ScheduleSpec:
    actions = [a for a in SCHEDULE_ACTIONS if a in t.data]
    if len(actions) != 1:
        raise t.error("backup", "a schedule has one of backup = [clients], auxcopy = [copies] or age = [policies]")
    action = actions[0]
    has_backup = action == "backup"
    spec = ScheduleSpec(
        name=t.name(),
        action=action,
        targets=t.strings(action),
        job_type=t.choice("type", JOB_TYPES, "incremental") if has_backup else "",
        start=t.duration("start", 0.0),
        every=t.duration("every", "30m" if action == "auxcopy" else MISSING, low=MIN_EVERY),  # Commvault's auto-copy default
    )
    t.done()
    return spec
