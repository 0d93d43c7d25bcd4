"""The bench's figures: one run of one operation, and every run of it as a table row.

Shared by tests/bench.py (our rows) and tests/benchbacula.py (the peer's rows), so the
peer's module needs nothing of the fabric.
"""

from __future__ import annotations

import statistics

import attrs


@attrs.frozen
class Figure:
    """One run of one operation."""

    name: str
    nbytes: int
    seconds: float
    lag_max: float
    lag_p99: float

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
    def lag_max(self) -> float:
        return max(f.lag_max for f in self.runs)

    @property
    def lag_p99(self) -> float:
        return max(f.lag_p99 for f in self.runs)
