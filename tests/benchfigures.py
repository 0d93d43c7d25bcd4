"""The bench's figures: one run of one operation, and every run of it as a table row.

Shared by tests/bench.py (our rows) and tests/benchbacula.py (the peer's rows), so the
peer's module needs nothing of the fabric.
"""

from __future__ import annotations

import statistics

import attrs

Window = tuple[float, float]  # due, woke: time.perf_counter(), the same clock in every process


@attrs.frozen
class Wake:
    """One wake of the lag probe: when it was due, when it woke, and the CPUs the loop's
    thread was on when it went to sleep and when it woke (none where unknown)."""

    due: float
    woke: float
    cpus: tuple[int, ...] = ()

    @property
    def late(self) -> float:
        return self.woke - self.due


@attrs.frozen
class Lag:
    """One operation's lag: the loop's worst and 99th percentile; the most of one wake's
    lateness the machine explains (``machine``: the bystander on the loop's CPU, or on
    every CPU, late meanwhile); the loop's worst own lag (the rest); and the CPU time the
    host took meanwhile (its steal time)."""

    max: float
    p99: float
    machine: float
    own: float
    stolen: float = 0.0

    @classmethod
    def of(cls, ours: list[Wake], bystanders: dict[int, list[Window]], stolen: float = 0.0) -> Lag:
        lags = sorted(wake.late for wake in ours) or [0.0]
        p99 = statistics.quantiles(lags, n=100, method="inclusive")[98] if len(lags) >= 2 else lags[0]
        everywhere = machine_stops(list(bystanders.values()))
        stalls = {cpus: _stalls(cpus, bystanders, everywhere) for cpus in {w.cpus for w in ours}}
        explained = [_overlap((w.due, w.woke), stalls[w.cpus]) for w in ours]
        own = max((w.late - part for w, part in zip(ours, explained, strict=True)), default=0.0)
        return cls(lags[-1], p99, max(explained, default=0.0), own, stolen)


def machine_stops(bystanders: list[list[Window]]) -> list[Window]:
    """When every CPU's bystander was late at once: nothing could run, ours or not."""
    if not bystanders:
        return []
    stops = _union(bystanders[0])
    for other in bystanders[1:]:
        stops = _intersection(stops, _union(other))
    return stops


def _stalls(cpus: tuple[int, ...], bystanders: dict[int, list[Window]], everywhere: list[Window]) -> list[Window]:
    """When the loop's CPUs, or every CPU, stalled: disjoint windows."""
    return _union([*everywhere, *(window for cpu in cpus for window in bystanders.get(cpu, []))])


def _union(windows: list[Window]) -> list[Window]:
    merged: list[Window] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _intersection(a: list[Window], b: list[Window]) -> list[Window]:
    """Of two sorted lists of disjoint windows."""
    found: list[Window] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            found.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return found


def _overlap(window: Window, others: list[Window]) -> float:
    """With ``others`` disjoint, so no stretch counts twice."""
    due, woke = window
    return sum(max(0.0, min(woke, b) - max(due, a)) for a, b in others)


NO_LAG = Lag(0.0, 0.0, 0.0, 0.0)  # what runs outside our loop: dd, the floor, Bacula


@attrs.frozen
class Figure:
    """One run of one operation."""

    name: str
    nbytes: int
    seconds: float
    lag: Lag = NO_LAG

    @property
    def rate(self) -> float:
        return self.nbytes / self.seconds / 2**20 if self.seconds else 0.0


@attrs.frozen
class Row:
    """Every run of one operation: the median rate, its spread, the worst loop lag."""

    name: str
    runs: tuple[Figure, ...]

    @property
    def nbytes(self) -> int:
        return self.runs[-1].nbytes

    @property
    def rates(self) -> list[float]:
        return [f.rate for f in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def lag(self) -> Lag:
        """The worst of each over the runs."""
        return Lag(*map(max, zip(*(attrs.astuple(f.lag) for f in self.runs), strict=True)))
