"""The copy rules, tested hard: pure functions of catalog records, rules and time."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from vtlfabric.catalog.records import JobRecord
from vtlfabric.config import FREQUENCIES, SelectionRules
from vtlfabric.jobs.selection import jobs_to_copy, period, selected, to_register
from vtlfabric.vocab import CopyState

SRC, DST = "P/primary", "P/dr"
STATUSES = ("completed", "completed", "completed", "failed", "killed", "running")
T0 = datetime(2025, 11, 20, tzinfo=UTC).timestamp()  # spans month, quarter, half-year and year ends
SPAN = 500 * 86400.0


def job(
    i: int,
    started: float,
    kind: str = "full",
    status: str = "completed",
    copies: dict | None = None,
    client: str = "C",
    subclient: str = "S",
) -> JobRecord:
    if copies is None:
        copies = {SRC: CopyState.AVAILABLE} if status == "completed" else {}
    return JobRecord(i, client, subclient, "P", kind, kind, status, "", 1, None, started, started + 60, 1, 100, "d", copies)


@st.composite
def histories(draw, max_jobs: int = 40, manual: bool = False):
    """Jobs at random times over ~16 months; optionally some rows already on the copy."""
    times = sorted(draw(st.lists(st.floats(T0, T0 + SPAN), max_size=max_jobs)))
    out = []
    for i, t in enumerate(times, 1):
        status = draw(st.sampled_from(STATUSES))
        copies = {SRC: CopyState.AVAILABLE} if status == "completed" else {}
        if manual and status == "completed" and draw(st.booleans()):
            copies[DST] = draw(
                st.sampled_from([CopyState.TO_BE_COPIED, CopyState.AVAILABLE, CopyState.DO_NOT_COPY, CopyState.BAD])
            )
        kind = draw(st.sampled_from(["full", "full", "incremental", "differential"]))
        out.append(job(i, t, kind, status, copies, draw(st.sampled_from("AB")), draw(st.sampled_from(["ALLUSR", "IFS"]))))
    return out


rules_st = st.builds(
    SelectionRules,
    kind=st.just("selective"),
    frequency=st.sampled_from(FREQUENCIES[1:]),
    pick=st.sampled_from(["first", "last"]),
    week_starts=st.integers(0, 6),
    day_starts=st.sampled_from([0.0, 6 * 3600.0, 23.5 * 3600.0]),
)
now_st = st.floats(T0, T0 + SPAN + 400 * 86400)


def copy_everything(jobs: list[JobRecord], rules: SelectionRules, now: float) -> set[int]:
    """What the copy holds after registering and copying all it selects, as the aux copy does."""
    new = {j.id for j in to_register(jobs, rules, DST, SRC, now)}
    rows = [attrs.evolve(j, copies={**j.copies, DST: CopyState.TO_BE_COPIED}) if j.id in new else j for j in jobs]
    todo = {j.id for j in jobs_to_copy(rows, DST, SRC)}
    return todo | {j.id for j in jobs if j.copies.get(DST) == CopyState.AVAILABLE}


@given(histories(), st.one_of(st.none(), st.floats(T0, T0 + SPAN)), now_st)
def test_a_synchronous_copy_holds_exactly_the_valid_jobs_from_its_start_date(jobs, start, now):
    rules = SelectionRules(backups_from=start)
    held = copy_everything(jobs, rules, max(now, T0 + SPAN))
    assert held == {j.id for j in jobs if j.valid and (start is None or j.started >= start)}


@settings(max_examples=300)
@given(histories(), rules_st, now_st)
def test_a_selective_copy_holds_one_full_per_period(jobs, rules, now):
    chosen = [j for j in jobs if j.id in selected(jobs, rules, SRC, now)]
    fulls = sorted((j for j in jobs if j.valid and j.type == "full"), key=lambda j: (j.started, j.id))
    by_period: dict[object, list[JobRecord]] = {}
    for j in fulls:
        by_period.setdefault((j.client, j.subclient, period(j.started, rules)[0]), []).append(j)
    expected = set()
    for members in by_period.values():
        if rules.pick == "first":
            expected.add(members[0].id)
        elif period(members[-1].started, rules)[2] <= now:  # the last is known once the period ends
            expected.add(members[-1].id)
    assert {j.id for j in chosen} == expected
    keys = [(j.client, j.subclient, period(j.started, rules)[0]) for j in chosen]
    assert len(keys) == len(set(keys)), "never two fulls of one subclient in one period"
    assert all(j.valid and j.type == "full" for j in chosen)


def test_an_instant_a_hair_before_midnight_is_in_the_day_it_ends():
    """datetime rounds to the microsecond: 0.2 us before midnight must not round into the
    next day's period (hypothesis found it)."""
    midnight = datetime(2027, 4, 2, tzinfo=UTC).timestamp()
    t = midnight - 2e-7
    _key, start, end = period(t, SelectionRules(kind="selective", frequency="daily"))
    assert (start, end) == (midnight - 86400, midnight)


def test_every_n_months_counts_from_the_instant_itself():
    """A full a hair before midnight, and one a month later to the instant: the second is
    due (it would not be if the first's time were rounded up to midnight)."""
    first = datetime(2027, 1, 15, tzinfo=UTC).timestamp() - 2e-7
    second = datetime(2027, 2, 15, tzinfo=UTC).timestamp() - 2e-7
    rules = SelectionRules(kind="selective", every=1, every_unit="months")
    assert selected([job(1, first), job(2, second)], rules, SRC, second + 86400) == {1, 2}


@given(st.floats(T0, T0 + SPAN), rules_st)
def test_periods_contain_their_instant_and_start_where_the_rules_say(t, rules):
    _key, start, end = period(t, rules)
    assert start <= t < end
    begin = datetime.fromtimestamp(start - rules.day_starts, UTC)
    if rules.frequency != "hourly":
        assert (begin.hour, begin.minute) == (0, 0)
    if rules.frequency == "weekly":
        assert begin.weekday() == rules.week_starts and end - start == 7 * 86400
    if rules.frequency in ("monthly", "quarterly", "half-yearly", "yearly"):
        step = {"monthly": 1, "quarterly": 3, "half-yearly": 6, "yearly": 12}[rules.frequency]
        assert begin.day == 1 and (begin.month - 1) % step == 0
    assert period(end, rules)[1] == end, "periods tile time"


@given(histories(manual=True), st.one_of(st.just(SelectionRules()), rules_st), now_st)
def test_manual_choices_win_and_invalid_jobs_never_qualify(jobs, rules, now):
    new = {j.id for j in to_register(jobs, rules, DST, SRC, now)}
    for j in jobs:
        if DST in j.copies:
            assert j.id not in new, "a row already there is never overruled"
        if not j.valid:
            assert j.id not in new
    picked = {j.id for j in jobs if j.copies.get(DST) == CopyState.TO_BE_COPIED}
    assert picked <= {j.id for j in jobs_to_copy(jobs, DST, SRC)}, "a pick is copied whatever its type"


@given(histories(), st.one_of(st.just(SelectionRules()), rules_st), now_st, st.randoms())
def test_the_result_does_not_depend_on_row_order(jobs, rules, now, rnd):
    shuffled = list(jobs)
    rnd.shuffle(shuffled)
    assert to_register(shuffled, rules, DST, SRC, now) == to_register(jobs, rules, DST, SRC, now)
    assert selected(shuffled, rules, SRC, now) == selected(jobs, rules, SRC, now)


@given(histories(), st.integers(1, 5), st.sampled_from(["cycles", "days", "weeks", "months"]))
def test_every_n_rule_spaces_the_chosen_fulls(jobs, n, unit):
    rules = SelectionRules(kind="selective", every=n, every_unit=unit)
    jobs = [j for j in jobs if (j.client, j.subclient) == ("A", "IFS")]  # the rule runs per subclient
    fulls = sorted((j for j in jobs if j.valid and j.type == "full"), key=lambda j: (j.started, j.id))
    chosen = [j for j in fulls if j.id in selected(jobs, rules, SRC, T0 + SPAN)]
    if fulls:
        assert chosen[0] == fulls[0]
    if unit == "cycles":
        assert chosen == fulls[::n]
    else:
        gap = {"days": 1, "weeks": 7, "months": 28}[unit] * n * 86400
        assert all(b.started - a.started >= gap for a, b in zip(chosen, chosen[1:]))


def test_defer_holds_a_job_until_it_is_old_enough():
    rules = SelectionRules(defer=2 * 86400)
    jobs = [job(1, T0)]
    assert to_register(jobs, rules, DST, SRC, T0 + 86400) == []
    assert to_register(jobs, rules, DST, SRC, T0 + 2 * 86400) == jobs


def test_no_automatic_selection_leaves_only_picks():
    rules = SelectionRules(automatic=False)
    jobs = [job(1, T0), job(2, T0 + 60, "incremental", copies={SRC: CopyState.AVAILABLE, DST: CopyState.TO_BE_COPIED})]
    assert to_register(jobs, rules, DST, SRC, T0 + SPAN) == []
    assert [j.id for j in jobs_to_copy(jobs, DST, SRC)] == [2]


def test_commvault_default_week_starts_on_friday():
    thursday = datetime(2026, 3, 5, 12, tzinfo=UTC).timestamp()
    friday = datetime(2026, 3, 6, 0, 30, tzinfo=UTC).timestamp()
    rules = SelectionRules(kind="selective", frequency="weekly")
    assert period(thursday, rules)[0] != period(friday, rules)[0]
    assert datetime.fromtimestamp(period(friday, rules)[1], UTC).strftime("%A") == "Friday"


def test_a_job_waits_for_its_source_in_a_cascade():
    rows = [job(1, T0, copies={SRC: CopyState.AVAILABLE, DST: CopyState.PARTIALLY_COPIED, "P/vault": CopyState.TO_BE_COPIED})]
    assert jobs_to_copy(rows, "P/vault", DST) == [], "not on the DR copy yet"
    done = [attrs.evolve(rows[0], copies={**rows[0].copies, DST: CopyState.AVAILABLE})]
    assert jobs_to_copy(done, "P/vault", DST) == done
