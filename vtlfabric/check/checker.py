"""Fold a history through every invariant, step by step, and keep what broke them.

A ``Checker`` is fed events in order (a scenario feeds it as it runs; ``check-history``
from a JSON-lines file: a scenario's ``--history`` or a daemon's JSON log). Each breach
is kept with its step, the event, and the earlier events it names, so a report shows
what broke the invariant and when, not only that it broke.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from vtlfabric.check.invariants import Event, Invariant, every

KEPT = 64  # recent events kept to quote the ones a breach names


@attrs.frozen
class Violation:
    invariant: str
    says: str
    step: int
    why: str
    events: tuple[tuple[int, Event], ...]  # the breaking event and those it names, by step

    def to_json(self) -> dict[str, Any]:
        return {
            "invariant": self.invariant,
            "says": self.says,
            "step": self.step,
            "why": self.why,
            "events": [json.loads(json.dumps({"step": n, **e}, default=str)) for n, e in self.events],
        }


@attrs.define
class Checker:
    invariants: list[Invariant] = attrs.field(factory=every)
    violations: list[Violation] = attrs.field(factory=list)
    steps: int = 0
    _recent: dict[int, Event] = attrs.field(factory=dict)

    def __call__(self, event: Event) -> None:
        n = self.steps
        self.steps += 1
        self._recent[n] = event
        self._recent.pop(n - KEPT, None)
        for invariant in self.invariants:
            breach = invariant.step(n, event)
            if breach is not None:
                quoted = [(m, self._recent[m]) for m in breach.because if m in self._recent]
                self.violations.append(Violation(invariant.name, invariant.says, n, breach.why, (*quoted, (n, event))))

    def feed(self, events: Iterable[Event]) -> Checker:
        for event in events:
            self(event)
        return self

    @property
    def exercised(self) -> dict[str, int]:
        """Invariant -> how many events it weighed."""
        return {i.name: i.exercised for i in self.invariants}

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "violations": [v.to_json() for v in self.violations],
            "exercised": self.exercised,
        }


class HistoryFormatError(Exception):
    """A history file line that is not one JSON object: names the file and line."""


def read_history(path: Path) -> Iterable[Event]:
    """The events of a JSON-lines history, in order (blank lines and non-event lines,
    such as a systemd journal's own, are an error: the file is not a history)."""
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                raise HistoryFormatError(f"{path}:{number}: not a JSON object") from None
            if not isinstance(event, dict) or "event" not in event:
                raise HistoryFormatError(f"{path}:{number}: no 'event' field: not a structlog event")
            yield event
