"""The simulated WAN link: delivery, throughput model, partitions, corruption, taps, determinism, close."""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtlfabric.net.linkspec import KiB, LinkSpec, MiB
from vtlfabric.net.wan import Link, WanStream, local_stream_pair

MB = 10**6


def make_link(seed: int = 1, **overrides: Any) -> Link:
    spec = dict(name="wan", a="prod", b="dr", bandwidth=100 * MB, latency=0.02)
    spec.update(overrides)
    return Link(LinkSpec(**spec), random.Random(seed))


def pattern(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


async def read_all(stream: trio.abc.ReceiveStream, max_bytes: int | None = None) -> bytes:
    parts = []
    while data := await stream.receive_some(max_bytes):
        parts.append(data)
    return b"".join(parts)


async def timed_transfer(senders: list[tuple[WanStream, WanStream]], size: int) -> list[float]:
    """Send ``size`` bytes on each (near, far) pair at once; return when each receiver had them all."""
    start = trio.current_time()
    done: list[float] = [0.0] * len(senders)

    async def one(i: int, near: WanStream, far: WanStream) -> None:
        async def receive() -> None:
            got = 0
            while got < size:
                got += len(await far.receive_some())
            done[i] = trio.current_time() - start

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            await near.send_all(bytes(size))

    async with trio.open_nursery() as nursery:
        for i, (near, far) in enumerate(senders):
            nursery.start_soon(one, i, near, far)
    return done


# ---------------------------------------------------------------- delivery


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    writes=st.lists(st.integers(0, 20_000), max_size=12),
    backwrites=st.lists(st.integers(0, 5_000), max_size=4),
    reads=st.lists(st.one_of(st.none(), st.integers(1, 9_000)), min_size=1, max_size=8),
    jitter=st.sampled_from([0.0, 0.01]),
    loss=st.sampled_from([0.0, 0.2]),
    mss=st.sampled_from([97, 1500, 8192]),
    window=st.sampled_from([100, 3_000, 64 * KiB]),
    seed=st.integers(0, 2**32),
)
def test_bytes_arrive_intact_and_in_order(
    writes: list[int],
    backwrites: list[int],
    reads: list[int | None],
    jitter: float,
    loss: float,
    mss: int,
    window: int,
    seed: int,
) -> None:
    link = make_link(seed, bandwidth=1 * MB, latency=0.005, jitter=jitter, loss=loss, mss=mss, window=window)
    forward = [pattern(n, seed + i) for i, n in enumerate(writes)]
    backward = [pattern(n, ~seed - i) for i, n in enumerate(backwrites)]

    async def sender(stream: WanStream, chunks: list[bytes]) -> None:
        for chunk in chunks:
            await stream.send_all(chunk)
        await stream.send_eof()

    async def receiver(stream: WanStream, into: list[bytes]) -> None:
        i = 0
        while data := await stream.receive_some(reads[i % len(reads)]):
            limit = reads[i % len(reads)]
            assert limit is None or len(data) <= limit
            into.append(data)
            i += 1

    async def main() -> tuple[bytes, bytes]:
        near, far = link.open_stream("prod")
        got_far: list[bytes] = []
        got_near: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender, near, forward)
            nursery.start_soon(sender, far, backward)
            nursery.start_soon(receiver, far, got_far)
            nursery.start_soon(receiver, near, got_near)
        return b"".join(got_far), b"".join(got_near)

    at_far, at_near = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert at_far == b"".join(forward)
    assert at_near == b"".join(backward)
    assert link.stats.bytes_a_to_b == len(at_far) and link.stats.bytes_b_to_a == len(at_near)


def _plain_link() -> Link:
    return make_link(bandwidth=1 * MB, latency=0.01, jitter=0.005, loss=0.1, window=8000, mss=1000)


async def _plain_maker() -> tuple[WanStream, WanStream]:
    return _plain_link().open_stream("prod")


async def _clogged_maker() -> tuple[WanStream, WanStream]:
    """Both ways full: the window also counts what the peer has not read yet."""
    near, far = _plain_link().open_stream("prod")
    await near.send_all(b"c" * 8000)
    await far.send_all(b"c" * 8000)
    return near, far


async def _local_maker() -> tuple[WanStream, WanStream]:
    return local_stream_pair()


async def _clogged_local_maker() -> tuple[WanStream, WanStream]:
    near, far = local_stream_pair()
    await near.send_all(bytes(8 * MiB))
    await far.send_all(bytes(8 * MiB))
    return near, far


async def test_trio_stream_conformance(autojump_clock: Any) -> None:
    """Trio's own checks for a HalfCloseableStream: checkpoints, errors, busy, close, EOF."""
    await trio.testing.check_half_closeable_stream(_plain_maker, _clogged_maker)
    await trio.testing.check_half_closeable_stream(_local_maker, _clogged_local_maker)


async def test_local_pair_has_no_delay() -> None:
    near, far = local_stream_pair()
    start = trio.current_time()
    data = pattern(3 * MiB)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(near.send_all, data)
        received = b""
        while len(received) < len(data):
            received += await far.receive_some()
    await far.send_all(b"back")
    assert await near.receive_some() == b"back"
    assert received == data
    assert trio.current_time() - start < 0.5  # real clock: only CPU time


async def test_open_stream_checks_the_site() -> None:
    link = make_link()
    with pytest.raises(ValueError, match="prod"):
        link.open_stream("elsewhere")
    near, far = link.open_stream("dr")  # either end may open
    await near.send_all(b"from dr")
    assert await far.receive_some() == b"from dr"
    assert link.stats.bytes_b_to_a == 7


def test_spec_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        LinkSpec(name="x", a="p", b="d", bandwidth=0, latency=0.01)
    with pytest.raises(ValueError, match="loss"):
        LinkSpec(name="x", a="p", b="d", bandwidth=1, latency=0.01, loss=1.0)
    with pytest.raises(ValueError, match="window"):
        LinkSpec(name="x", a="p", b="d", bandwidth=1, latency=0.01, window=0)


# ---------------------------------------------------------------- throughput


async def test_one_stream_is_window_limited_on_a_long_fat_link(autojump_clock: Any) -> None:
    link = make_link(bandwidth=100 * MB, latency=0.05, window=1 * MiB)
    (elapsed,) = await timed_transfer([link.open_stream("prod")], 20 * MiB)
    rate = 20 * MiB / elapsed
    assert rate == pytest.approx(1 * MiB / 0.1, rel=0.05)  # window / RTT, far below the bandwidth


async def test_one_stream_is_bandwidth_limited_on_a_thin_link(autojump_clock: Any) -> None:
    link = make_link(bandwidth=10 * MB, latency=0.01, window=4 * MiB)
    (elapsed,) = await timed_transfer([link.open_stream("prod")], 20 * MiB)
    assert 20 * MiB / elapsed == pytest.approx(10 * MB, rel=0.05)


async def test_more_streams_fill_a_window_limited_link(autojump_clock: Any) -> None:
    one = await timed_transfer([make_link(latency=0.05, window=1 * MiB).open_stream("prod")], 10 * MiB)
    link = make_link(latency=0.05, window=1 * MiB)
    two = await timed_transfer([link.open_stream("prod"), link.open_stream("prod")], 10 * MiB)
    single_rate = 10 * MiB / one[0]
    pair_rate = 2 * 10 * MiB / max(two)
    assert pair_rate == pytest.approx(2 * single_rate, rel=0.05)


async def test_streams_share_the_bandwidth(autojump_clock: Any) -> None:
    link = make_link(bandwidth=10 * MB, latency=0.01, window=8 * MiB)
    times = await timed_transfer([link.open_stream("prod"), link.open_stream("prod")], 10 * MB)
    assert 2 * 10 * MB / max(times) == pytest.approx(10 * MB, rel=0.05)  # together: the link, not twice it
    assert min(times) == pytest.approx(max(times), rel=0.05)  # and fairly shared


async def test_directions_do_not_share_a_wire(autojump_clock: Any) -> None:
    link = make_link(bandwidth=10 * MB, latency=0.01, window=8 * MiB)
    near, far = link.open_stream("prod")
    back_far, back_near = link.open_stream("dr")
    times = await timed_transfer([(near, far), (back_far, back_near)], 10 * MB)
    assert max(times) == pytest.approx(1.0, rel=0.05)


async def test_loss_costs_retransmit_time(autojump_clock: Any) -> None:
    clean = await timed_transfer([make_link(latency=0.05, window=1 * MiB).open_stream("prod")], 8 * MiB)
    lossy_link = make_link(latency=0.05, window=1 * MiB, loss=0.2)
    lossy = await timed_transfer([lossy_link.open_stream("prod")], 8 * MiB)
    assert lossy_link.stats.retransmits > 0
    assert lossy[0] > clean[0] * 1.1


async def test_a_slow_reader_holds_back_its_sender(autojump_clock: Any) -> None:
    near, far = make_link(latency=0.01, window=1 * MiB).open_stream("prod")
    with trio.move_on_after(60):
        await near.send_all(bytes(3 * MiB))
    assert trio.current_time() >= 60  # blocked: nobody reads, the window stays full
    assert len(await far.receive_some()) <= 1 * MiB


# ---------------------------------------------------------------- partitions


async def test_partition_breaks_sender_and_peer_after_the_stall_timeout(autojump_clock: Any) -> None:
    link = make_link(latency=0.02, window=1 * MiB, stall_timeout=20.0)
    near, far = link.open_stream("prod")
    link.partition("both")
    assert link.partitioned == "both"
    start = trio.current_time()
    errors: dict[str, float] = {}

    async def receiver() -> None:
        with pytest.raises(trio.BrokenResourceError):
            await far.receive_some()
        errors["receiver"] = trio.current_time() - start

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        with pytest.raises(trio.BrokenResourceError):
            await near.send_all(bytes(4 * MiB))
        errors["sender"] = trio.current_time() - start
    assert errors["sender"] == pytest.approx(20.0, abs=0.5)
    assert errors["receiver"] == pytest.approx(20.0, abs=0.5)
    assert link.stats.streams_broken == 1
    with pytest.raises(trio.BrokenResourceError):
        await far.send_all(b"late")
    await near.aclose()
    await far.aclose()


async def test_small_send_into_a_partition_breaks_the_waiting_ends(autojump_clock: Any) -> None:
    """The sender's send_all returns (within the window); whoever waits afterwards learns of the break."""
    link = make_link(stall_timeout=10.0)
    near, far = link.open_stream("prod")
    link.partition("a->b")
    await near.send_all(b"request")
    start = trio.current_time()
    with pytest.raises(trio.BrokenResourceError):
        await near.receive_some()  # waiting for a reply that cannot come
    assert trio.current_time() - start == pytest.approx(10.0, abs=0.1)
    with pytest.raises(trio.BrokenResourceError):
        await far.receive_some()


async def test_lost_acks_stall_the_sender_too(autojump_clock: Any) -> None:
    link = make_link(window=256 * KiB, stall_timeout=5.0)
    near, far = link.open_stream("prod")
    link.partition("b->a")
    assert link.partitioned == "b->a"
    with pytest.raises(trio.BrokenResourceError):
        await near.send_all(bytes(1 * MiB))
    assert trio.current_time() == pytest.approx(5.0, abs=0.1)
    with pytest.raises(trio.BrokenResourceError):
        await far.receive_some()


async def test_heal_before_the_timeout_completes_delivery(autojump_clock: Any) -> None:
    link = make_link(latency=0.02, window=1 * MiB, stall_timeout=30.0)
    near, far = link.open_stream("prod")
    data = pattern(3 * MiB)
    link.partition("both")

    async def heal_later() -> None:
        await trio.sleep(10)
        assert link.partitioned == "both"
        link.heal()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(heal_later)
        nursery.start_soon(near.send_all, data)
        received = b""
        while len(received) < len(data):
            received += await far.receive_some()
    assert received == data
    assert trio.current_time() > 10
    assert link.partitioned is None
    assert link.stats.retransmits > 0
    assert link.stats.streams_broken == 0


async def test_heal_restores_lost_acks(autojump_clock: Any) -> None:
    link = make_link(window=256 * KiB, stall_timeout=30.0)
    near, far = link.open_stream("prod")
    data = pattern(1 * MiB)
    link.partition("b->a")

    async def heal_later() -> None:
        await trio.sleep(3)
        link.heal()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(heal_later)
        nursery.start_soon(near.send_all, data)
        received = b""
        while len(received) < len(data):
            received += await far.receive_some()
    assert received == data
    assert link.stats.retransmits > 0 and link.stats.streams_broken == 0


async def test_heal_after_the_timeout_is_too_late(autojump_clock: Any) -> None:
    link = make_link(stall_timeout=5.0)
    near, far = link.open_stream("prod")
    link.partition()
    await near.send_all(b"lost")
    await trio.sleep(6)
    link.heal()  # nobody looked yet, but the stall deadline has passed
    with pytest.raises(trio.BrokenResourceError):
        await far.receive_some()
    assert link.stats.streams_broken == 1


async def test_an_idle_receiver_never_times_out(autojump_clock: Any) -> None:
    link = make_link(stall_timeout=5.0)
    near, far = link.open_stream("prod")
    with trio.move_on_after(3600):  # a sender reading tape for an hour
        await far.receive_some()
        pytest.fail("received data nobody sent")
    link.partition()  # a partition with no traffic breaks nothing either
    await trio.sleep(3600)
    link.heal()
    await near.send_all(b"finally")
    assert await far.receive_some() == b"finally"
    assert link.stats.streams_broken == 0


def test_partition_direction_is_checked() -> None:
    with pytest.raises(ValueError, match="direction"):
        make_link().partition("sideways")


# ---------------------------------------------------------------- corruption and taps


async def test_corrupt_next_flips_exactly_one_byte_per_segment(autojump_clock: Any) -> None:
    link = make_link(mss=1000)
    near, far = link.open_stream("prod")
    data = pattern(10_000)
    link.corrupt_next(1)
    await near.send_all(data)
    received = b""
    while len(received) < len(data):
        received += await far.receive_some()
    diffs = [i for i, (x, y) in enumerate(zip(data, received, strict=True)) if x != y]
    assert len(diffs) == 1 and link.stats.corrupted == 1

    link.corrupt_next(3)
    await far.send_all(data)  # the other direction counts too
    back = b""
    while len(back) < len(data):
        back += await near.receive_some()
    diffs = [i for i, (x, y) in enumerate(zip(data, back, strict=True)) if x != y]
    assert len(diffs) == 3 and len({i // 1000 for i in diffs}) == 3  # one byte in each of three segments
    assert link.stats.corrupted == 4


async def test_tap_sees_every_byte_carried(autojump_clock: Any) -> None:
    link = make_link(mss=4096, loss=0.3)
    carried: dict[str, list[bytes]] = {"a->b": [], "b->a": []}
    remove = link.add_tap(lambda direction, segment: carried[direction].append(segment))
    near, far = link.open_stream("prod")
    forward, backward = pattern(100_000, 1), pattern(30_000, 2)
    link.corrupt_next(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(near.send_all, forward)
        nursery.start_soon(far.send_all, backward)
        got_far = b""
        while len(got_far) < len(forward):
            got_far += await far.receive_some()
    got_near = b""
    while len(got_near) < len(backward):
        got_near += await near.receive_some()
    assert b"".join(carried["a->b"]) + b"".join(carried["b->a"]) == got_far + got_near  # as carried: corrupted too
    remove()
    await near.send_all(b"unseen")
    assert b"unseen" not in b"".join(carried["a->b"])


# ---------------------------------------------------------------- determinism


async def _scenario(seed: int) -> tuple[list[tuple[float, int]], list[int], dict[str, Any]]:
    link = make_link(seed, bandwidth=5 * MB, latency=0.03, jitter=0.01, loss=0.05, window=256 * KiB, mss=16 * KiB)
    near, far = link.open_stream("prod")
    data = bytes(2 * MiB)
    arrivals: list[tuple[float, int]] = []

    async def sender() -> None:
        await near.send_all(data[:MiB])
        link.corrupt_next(2)
        link.partition("a->b")
        await near.send_all(data[MiB:])
        await near.aclose()

    async def healer() -> None:
        await trio.sleep(2.5)
        link.heal()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        nursery.start_soon(healer)
        received = b""
        while chunk := await far.receive_some():
            arrivals.append((trio.current_time(), len(chunk)))
            received += chunk
    corrupted = [i for i, byte in enumerate(received) if byte]
    return arrivals, corrupted, attrs.asdict(link.stats)


def _run_scenario(seed: int) -> tuple[list[tuple[float, int]], list[int], dict[str, Any]]:
    return trio.run(_scenario, seed, clock=trio.testing.MockClock(autojump_threshold=0))


def test_same_seed_same_timings_and_corruption() -> None:
    first, second = _run_scenario(7), _run_scenario(7)
    assert first == second
    arrivals, corrupted, stats = first
    assert len(corrupted) == 2 and stats["corrupted"] == 2 and stats["retransmits"] > 0
    assert arrivals[-1][0] > 2.5  # waited for the heal
    other = _run_scenario(8)
    assert other[0] != arrivals or other[1] != corrupted


# ---------------------------------------------------------------- closing


async def test_close_delivers_then_eof(autojump_clock: Any) -> None:
    link = make_link(latency=0.05)
    near, far = link.open_stream("prod")
    await near.send_all(b"last words")
    await near.aclose()
    start = trio.current_time()
    assert await read_all(far) == b"last words"
    assert trio.current_time() - start >= 0.04  # the data (and EOF) still had to cross
    assert await far.receive_some() == b""  # EOF stays EOF
    with pytest.raises(trio.ClosedResourceError):
        await near.send_all(b"more")
    with pytest.raises(trio.ClosedResourceError):
        await near.receive_some()
    with pytest.raises(trio.BrokenResourceError):
        await far.send_all(b"to a closed peer")
    await near.aclose()  # idempotent
    await far.aclose()
    assert link.active_streams == 0


async def test_send_eof_half_closes(autojump_clock: Any) -> None:
    near, far = make_link().open_stream("prod")
    await near.send_all(b"question")
    await near.send_eof()
    await near.send_eof()  # twice is fine
    with pytest.raises(trio.ClosedResourceError):
        await near.send_all(b"more")
    assert await read_all(far) == b"question"
    await far.send_all(b"answer")  # the other way still works
    await far.aclose()
    assert await read_all(near) == b"answer"


async def test_concurrent_sends_are_refused(autojump_clock: Any) -> None:
    near, _far = make_link(window=64 * KiB).open_stream("prod")
    with pytest.RaisesGroup(trio.BusyResourceError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(near.send_all, bytes(1 * MiB))
            nursery.start_soon(near.send_all, bytes(1 * MiB))


async def test_close_wakes_a_blocked_receiver(autojump_clock: Any) -> None:
    near, far = make_link().open_stream("prod")

    async def receiver() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await far.receive_some()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.sleep(1)
        await far.aclose()
    del near


async def test_wait_send_all_might_not_block(autojump_clock: Any) -> None:
    near, far = make_link(latency=0.05, window=64 * KiB, mss=64 * KiB).open_stream("prod")
    await near.send_all(bytes(64 * KiB))
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all, far)
        await near.wait_send_all_might_not_block()
        assert trio.current_time() - start >= 0.09  # the window freed once the ack came back
        await near.aclose()
