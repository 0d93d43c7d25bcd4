"""The synchronous copy rule, tested hard: a pure function of catalog records."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vtlfabric.catalog.queries import AVAILABLE, PARTIALLY_COPIED, TO_BE_COPIED
from vtlfabric.catalog.records import JobRecord
from vtlfabric.jobs.selection import jobs_to_copy

SRC, DST = "P/primary", "P/dr"
STATUSES = ("completed", "failed", "killed", "running")


@st.composite
def jobs(draw):
    n = draw(st.integers(0, 30))
    out = []
    for i in range(1, n + 1):
        status = draw(st.sampled_from(STATUSES))
        copies = {}
        if status == "completed":
            copies[SRC] = draw(st.sampled_from([AVAILABLE, AVAILABLE, "bad"]))
            copies[DST] = draw(st.sampled_from([TO_BE_COPIED, PARTIALLY_COPIED, AVAILABLE]))
        started = draw(st.integers(0, 50)) * 60.0
        out.append(JobRecord(i, "C", "S", "P", draw(st.sampled_from(["full", "incremental", "differential"])), "full",
                             status, "", 1, None, started, started + 1, 1, 100, "d", copies))
    return out


@given(jobs(), st.randoms())
def test_sync_copy_takes_every_valid_job_not_yet_there(rows, rnd):
    chosen = jobs_to_copy(rows, DST, SRC)
    expected = {j.id for j in rows if j.status == "completed" and j.copies[SRC] == AVAILABLE and j.copies[DST] != AVAILABLE}
    assert {j.id for j in chosen} == expected
    assert all(j.valid for j in chosen), "failed and killed jobs never qualify"
    assert [(j.started, j.id) for j in chosen] == sorted((j.started, j.id) for j in chosen), "oldest first"
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert jobs_to_copy(shuffled, DST, SRC) == chosen, "row order does not matter"


def test_available_job_is_never_chosen_again():
    job = JobRecord(1, "C", "S", "P", "full", "full", "completed", "", 1, None, 0.0, 1.0, 1, 1, "d", {SRC: AVAILABLE, DST: AVAILABLE})
    assert jobs_to_copy([job], DST, SRC) == []
