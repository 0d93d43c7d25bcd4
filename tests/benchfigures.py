"""The bench's figures: one run of one operation, and every run of it as a table row.

Shared by tests/bench.py (our rows) and tests/benchbacula.py (the peer's rows), so the
peer's module needs nothing of the fabric.
"""

from __future__ import annotations

import statistics

import attrs

Window = tuple[float, float]  # due, woke: time.perf_counter(), the same clock in every process


@attrs.frozen
class Lag:
    """One operation's lag: the loop's worst and 99th percentile, the bystander's worst,
    and the loop's worst own lag (what the machine does not explain)."""

    max: float
    p99: float
    machine: float
    own: float

    @classmethod
    def of(cls, ours: list[Window], machine: list[Window]) -> Lag:
        lags = sorted(woke - due for due, woke in ours) or [0.0]
        p99 = statistics.quantiles(lags, n=100, method="inclusive")[98] if len(lags) >= 2 else lags[0]
        own = max((woke - due - _overlap((due, woke), machine) for due, woke in ours), default=0.0)
        return cls(lags[-1], p99, max((woke - due for due, woke in machine), default=0.0), own)


def _overlap(window: Window, others: list[Window]) -> float:
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
