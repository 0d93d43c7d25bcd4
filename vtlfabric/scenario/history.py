"""The ordered event history of a run, hashed as it happens.

A structlog processor, like the event bus: it sees every event the fabric logs, at
every level, in order. Wall-clock fields are left out (the virtual clock's ``t`` stays),
and the run's own directory is written as ``$RUN``, so two runs of one seed, in one
process or two, hash alike exactly when they did the same things at the same times.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any

import attrs

from vtlfabric.check.checker import Checker
from vtlfabric.check.invariants import every

WALL_CLOCK_FIELDS = frozenset({"timestamp", "pid", "wall_seconds"})


@attrs.define(eq=False)
class History:
    root: str  # the run's directory, as it appears in paths
    sink: IO[str] | None = None  # a JSON-lines copy of the history, if asked for
    checker: Checker | None = None
    events: int = 0
    counts: dict[str, int] = attrs.field(factory=dict)  # event name -> how many
    _sha: Any = attrs.field(factory=hashlib.sha256)

    @classmethod
    def of_run(cls, root: Path, sink: IO[str] | None = None, liveness: float | None = None) -> History:
        return cls(str(root), sink, Checker(every(liveness)))

    def __call__(self, _logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        line = self.line(event)
        if self.checker is not None:  # the invariants, judged at every step
            self.checker({k: v for k, v in event.items() if k not in WALL_CLOCK_FIELDS and k != "exc_info"})
        self._sha.update(line.encode() + b"\n")
        self.events += 1
        name = str(event.get("event", ""))
        self.counts[name] = self.counts.get(name, 0) + 1
        if self.sink is not None:
            self.sink.write(line + "\n")
        return event

    def line(self, event: dict[str, Any]) -> str:
        kept = {k: v for k, v in event.items() if k not in WALL_CLOCK_FIELDS and k != "exc_info"}
        return json.dumps(kept, sort_keys=True, default=str).replace(self.root, "$RUN")

    def sha256(self) -> str:
        return self._sha.hexdigest()
