"""The fabric file's storage policies (their copies and selection rules) and schedules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

from vtlfabric.config.reader import MISSING, Table, unique
from vtlfabric.config.specs import (
    COPY_KINDS,
    EVERY_UNITS,
    FREQUENCIES,
    SCHEDULE_ACTIONS,
    WEEKDAYS,
    CopySpec,
    PolicySpec,
    ScheduleSpec,
    SelectionRules,
)
from vtlfabric.units import parse_duration, parse_size
from vtlfabric.vocab import DAY, JOB_TYPES, MAX_STREAMS


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
        streams=t.convert("streams", _streams, 1),
        rules=SelectionRules() if primary else _rules(t, kind),
        combine_streams=t.number("combine_streams", 1, MAX_STREAMS, 0, kind=int) if t.has("combine_streams") else 0,
        throttle=float(t.convert("throttle", parse_size, 0)),
        behind_bytes=t.convert("fallen_behind_bytes", parse_size, 0),
        behind_age=t.convert("fallen_behind_age", parse_duration, 0),
        retain_days=float(t.number("retain_days", 0, 36500, 0)),
        retain_cycles=t.number("retain_cycles", 0, 1000, 0, kind=int),
    )
    t.done()
    return spec


def _rules(t: Table, kind: str) -> SelectionRules:
    selective_only = ("frequency", "pick", "week_starts", "day_starts", "every")
    if kind == "synchronous":
        for key in selective_only:
            if t.has(key):
                raise t.error(key, "applies only to a selective copy (kind = \"selective\")")
    every, unit = t.convert("every", _every) if t.has("every") else (0, "")
    rules = SelectionRules(
        kind=kind,
        backups_from=t.convert("backups_from", _instant) if t.has("backups_from") else None,
        frequency=t.choice("frequency", FREQUENCIES, "all"),
        pick=t.choice("pick", ("first", "last"), "first"),
        week_starts=WEEKDAYS.index(t.choice("week_starts", WEEKDAYS, "friday")),
        day_starts=t.convert("day_starts", _time_of_day, "00:00"),
        every=every,
        every_unit=unit,
        automatic=t.get("automatic", bool, True),
        defer=t.number("defer_days", 0, 3650, 0) * DAY,
    )
    if rules.every and t.has("frequency"):
        raise t.error("every", "give either frequency or every, not both")
    return rules


def _streams(value: Any) -> int:
    if value == "max":
        return 0
    if isinstance(value, int) and 1 <= value <= MAX_STREAMS:
        return value
    raise ValueError(f"{value!r}: give a number of streams from 1 to {MAX_STREAMS}, or \"max\"")


def _instant(value: Any) -> float:
    """A TOML date or date-time (or the same as a string), as fabric time; dates are UTC midnight."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date such as 2026-03-01 or 2026-03-01T06:00:00") from None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    raise ValueError(f"{value!r} is not a date")


def _time_of_day(value: Any) -> float:
    text = value.isoformat() if isinstance(value, dtime) else str(value)
    try:
        at = dtime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day such as \"06:00\"") from None
    return at.hour * 3600.0 + at.minute * 60.0 + at.second


def _every(value: Any) -> tuple[int, str]:
    number, _, unit = str(value).strip().partition(" ")
    unit = unit.strip()
    if not number.isdigit() or int(number) < 1 or unit not in EVERY_UNITS:
        raise ValueError(f"{value!r} is not a rule such as \"2 weeks\" (units: {', '.join(EVERY_UNITS)})")
    return int(number), unit


def policy(t: Table) -> PolicySpec:
    name = t.name()
    copies = tuple(copy(c, name) for c in t.tables("copy"))
    spec = PolicySpec(name=name, clients=t.strings("clients"), copies=copies)
    unique(t, "copy", [c.name for c in copies])
    if sum(c.primary for c in copies) != 1:
        raise t.error("copy", "a policy needs exactly one copy with primary = true")
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
        start=t.convert("start", parse_duration, 0.0),
        every=t.convert("every", parse_duration, "30m" if action == "auxcopy" else MISSING),  # Commvault's auto-copy default
    )
    if spec.every <= 0:
        raise t.error("every", "must be positive")
    t.done()
    return spec
