"""Which jobs rebuild a subclient's latest state on a copy: tested as a rule."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vtlfabric.catalog.records import JobRecord
from vtlfabric.jobs.restore import point_in_time
from vtlfabric.vocab import CopyState

COPY = "P/dr"


@st.composite
def histories(draw):
    """A subclient's jobs, with bases set as the backup planner sets them."""
    jobs, last_valid, last_full = [], None, None
    for i in range(1, draw(st.integers(1, 25)) + 1):
        kind = draw(st.sampled_from(["full", "incremental", "differential"]))
        if last_full is None:
            kind = "full"  # the planner converts anything to a full until one exists
        status = draw(st.sampled_from(["completed"] * 4 + ["failed", "killed"]))
        base = None if kind == "full" else last_full if kind == "differential" else last_valid
        on_copy = draw(st.sampled_from([CopyState.AVAILABLE] * 3 + [CopyState.TO_BE_COPIED]))
        copies = {"P/primary": CopyState.AVAILABLE, COPY: on_copy} if status == "completed" else {}
        jobs.append(JobRecord(i, "C", "S", "P", kind, kind, status, "", i, base, float(i), float(i), 1, 1, "d", copies))
        if status == "completed":
            last_valid = i
            last_full = i if kind == "full" else last_full
    return jobs


@given(histories(), st.sampled_from([None, COPY]))
def test_each_job_builds_on_the_one_before_it(jobs, copy):
    chain = point_in_time(jobs, copy)
    usable = [j for j in jobs if j.valid and (copy is None or j.copies[copy] == CopyState.AVAILABLE)]
    fulls = [j for j in usable if j.type == "full"]
    if not fulls:
        assert chain == []
        return
    assert chain[0] == fulls[-1], "the latest full the copy holds"
    assert all(j in usable for j in chain)
    for before, job in zip(chain, chain[1:]):
        assert job.base_generation == before.generation, f"job {job.id} is relative to {job.base_generation}, not to {before.id}"


@given(histories(), st.sampled_from([None, COPY]))
def test_it_reaches_the_last_job_before_the_first_gap(jobs, copy):
    chain = point_in_time(jobs, copy)
    if not chain:
        return
    later = [j for j in jobs if j.valid and j.id > chain[0].id]
    gap = next((j.id for j in later if copy is not None and j.copies[copy] != CopyState.AVAILABLE), None)
    reachable = [j for j in later if gap is None or j.id < gap]
    assert chain[-1] == (reachable[-1] if reachable else chain[0])


@given(histories())
def test_row_order_does_not_matter(jobs):
    assert point_in_time(list(reversed(jobs)), COPY) == point_in_time(jobs, COPY)
