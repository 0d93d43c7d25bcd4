"""IBM i workloads are deterministic, and incrementals hold exactly what changed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vtlfabric.config import ClientSpec, SubclientSpec
from vtlfabric.site.client import Workload

SUB = SubclientSpec("ALLUSR", ("LIB:PAYROLL", "IFS:/home/app"), 7, 100, 5000)


def workload(seed: int = 1, rate: float = 0.3) -> Workload:
    return Workload(ClientSpec("prod", "C", seed, 60.0, rate, 0.0, (SUB,)))


def test_paths_look_like_ibm_i_objects():
    paths = workload().paths(SUB)
    assert len(paths) == 14
    assert all(p.startswith("/QSYS.LIB/PAYROLL.LIB/OBJ") for p in paths[:7])
    assert all(p.startswith("/home/app/file") for p in paths[7:])


@given(st.integers(0, 2**32), st.integers(0, 500))
def test_same_seed_same_data(seed, gen):
    a, b = workload(seed), workload(seed)
    objs = a.objects("ALLUSR", gen)
    assert objs == b.objects("ALLUSR", gen)
    assert [a.content(o) for o in objs[:3]] == [b.content(o) for o in objs[:3]]
    assert all(SUB.min_size <= o.size <= SUB.max_size and len(a.content(o)) == o.size for o in objs)


@given(st.integers(0, 2**32), st.integers(1, 300), st.integers(0, 300))
def test_incremental_holds_exactly_what_changed(seed, base, later):
    w = workload(seed)
    gen = base + later
    full_then = {o.path: o for o in w.objects("ALLUSR", base)}
    full_now = {o.path: o for o in w.objects("ALLUSR", gen)}
    incr = {o.path: o for o in w.objects("ALLUSR", gen, since=base)}
    changed = {p for p, o in full_now.items() if o != full_then[p]}
    assert set(incr) == changed
    # the full at `base` plus the incremental rebuild the state at `gen`
    assert {**full_then, **incr} == full_now


def test_data_changes_over_time():
    w = workload(rate=0.5)
    assert w.objects("ALLUSR", 1) != w.objects("ALLUSR", 40)
    assert w.objects("ALLUSR", 40, since=39) != []


def test_no_change_rate_means_nothing_changes():
    w = workload(rate=0.0)
    assert w.objects("ALLUSR", 100, since=0) == []


@given(st.integers(0, 2**32), st.lists(st.integers(0, 400), min_size=1, max_size=12))
def test_a_workload_answers_alike_whatever_it_was_asked_before(seed, generations):
    """It remembers where its last walk back through the generations ended: in any order
    of questions, each answer is the one a new workload gives."""
    asked = workload(seed)
    for gen in generations:
        assert asked.objects("ALLUSR", gen) == workload(seed).objects("ALLUSR", gen)


@given(st.integers(0, 2**32), st.sampled_from([1, 3, 4096, 65536]))
def test_at_scale_an_object_is_nominal_and_its_content_one_real_byte_per_scale(seed, scale):
    nominal = Workload(ClientSpec("prod", "C", seed, 60.0, 0.3, 0.0, (SUB,)), scale)
    for obj in nominal.objects("ALLUSR", 5):
        assert obj == next(o for o in workload(seed).objects("ALLUSR", 5) if o.path == obj.path), "sizes are nominal"
        assert len(nominal.content(obj)) == -(-obj.size // scale)
