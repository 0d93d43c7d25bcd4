"""A scenario file, ``config/scenarios/NAME.toml``, read and checked at the edge.

It names the fabric it starts from (a config, its sites, and overrides for either),
the data scale, the schedules, how long to run in simulated time, the faults (at fixed
times, or drawn by seeded chance at a rate), the drills, and what must hold at the end.
Every error names the file and the key, as the config's do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from vtlfabric.config.reader import ConfigError, Table, read_toml
from vtlfabric.config.sections import MAX_DATA_SCALE
from vtlfabric.sim.faultnames import ACTIONS, HEALED_BY, PLACED
from vtlfabric.vocab import DAY, JobStatus

MAX_DURATION = 366 * DAY  # a year: longer runs belong in several scenarios


@attrs.frozen
class FaultSpec:
    """A fault at a fixed time (``at``), or by chance (``every``: the mean time between firings)."""

    target: str
    action: str
    where: str | None = None
    at: float | None = None
    every: float | None = None
    heal: float | None = None  # heal this long after it fires (None: it stays)

    @property
    def heal_action(self) -> str | None:
        return HEALED_BY.get((self.target.partition(":")[0], self.action))


@attrs.frozen
class ControlStep:
    """A request sent to the daemon's control socket at ``at``, as ``vtlfabric ctl`` sends it."""

    at: float
    request: dict[str, Any]


@attrs.frozen
class Expect:
    """What must hold at the end of a regression scenario. Empty: nothing is judged."""

    min_jobs: dict[str, int] = attrs.field(factory=dict)  # job status -> at least
    max_jobs: dict[str, int] = attrs.field(factory=dict)  # job status -> at most
    min_available: dict[str, int] = attrs.field(factory=dict)  # copy id -> jobs available on it at the end
    max_lag: dict[str, float] = attrs.field(factory=dict)  # copy id -> seconds its oldest uncopied job may reach
    caught_up: tuple[str, ...] = ()  # copies with nothing left to copy at the end
    drills_passed: int = 0
    min_faults: int = 0  # faults that fired, at least
    primary: dict[str, str] = attrs.field(factory=dict)  # policy -> copy that is primary at the end


@attrs.frozen
class Scenario:
    file: Path
    name: str
    description: str
    config: Path
    seed: int
    scale: int
    duration: float
    sample_every: float
    settle: float  # the quiet tail: no fault by chance begins in it, none armed before bites in it (run.py)
    liveness: float | None  # once every fault has healed, each synchronous copy catches up within this (None: not judged)
    config_overrides: dict[str, Any]
    site_overrides: dict[str, dict[str, Any]]
    schedules: tuple[dict[str, Any], ...] | None  # None: the config's own
    faults: tuple[FaultSpec, ...]
    drills: tuple[float, ...]
    ctl: tuple[ControlStep, ...]
    expect: Expect

    @property
    def kills_daemon(self) -> bool:
        """A daemon:self kill-9 fault: the run needs the daemon in a process it can kill."""
        return any(f.action == "kill-9" for f in self.faults)


def load(path: Path | str) -> Scenario:
    """Read a scenario file; raise one ConfigError naming the file and key, or return it whole."""
    path = Path(path).resolve()
    t = read_toml(path)
    fabric = t.table("fabric")
    config = (path.parent / fabric.get("config", str)).resolve()
    if not config.is_file():
        raise fabric.error("config", f"file {config} does not exist")
    sites = fabric.table("site", required=False)
    scenario = Scenario(
        file=path,
        name=t.get("name", str, path.stem),
        description=t.get("description", str, ""),
        config=config,
        seed=t.integer("seed", 0, 2**63 - 1, 0),
        scale=t.integer("scale", 1, MAX_DATA_SCALE, 1),
        duration=t.duration("duration", low=1.0, high=MAX_DURATION),
        sample_every=t.duration("sample_every", "1h", low=60.0, high=MAX_DURATION),
        settle=t.duration("settle", "0s", low=0.0, high=MAX_DURATION),
        liveness=t.duration("liveness", low=60.0, high=MAX_DURATION) if t.has("liveness") else None,
        config_overrides=fabric.get("set", dict, {}),
        site_overrides={name: sites.get(name, dict) for name in list(sites.data)},
        schedules=tuple(s.data for s in t.tables("schedule")) if t.has("schedule") else None,
        faults=tuple(_fault(f) for f in t.tables("fault")),
        drills=tuple(_at(d) for d in t.tables("drill")),
        ctl=tuple(_ctl(c) for c in t.tables("ctl")),
        expect=_expect(t.table("expect", required=False)),
    )
    fabric.done()
    t.done()
    timed = [("fault", f.at) for f in scenario.faults] + [("drill", at) for at in scenario.drills]
    timed += [("ctl", c.at) for c in scenario.ctl]
    for kind in ("fault", "drill", "ctl"):
        for i, at in enumerate(at for k, at in timed if k == kind):
            if at is not None and at >= scenario.duration:
                raise ConfigError(path, f"{kind}[{i}].at", "is not before the end of the scenario (duration)")
    return scenario


def _at(t: Table) -> float:
    at = t.duration("at", high=MAX_DURATION)
    t.done()
    return at


def _ctl(t: Table) -> ControlStep:
    request = t.get("request", dict)
    if not isinstance(request.get("cmd"), str):
        raise t.error("request", 'needs cmd, as `vtlfabric ctl` sends it: {cmd = "promote", copy = "IBMI/dr"}')
    step = ControlStep(t.duration("at", high=MAX_DURATION), request)
    t.done()
    return step


def _fault(t: Table) -> FaultSpec:
    target = t.get("target", str)
    kind, _, name = target.partition(":")
    if kind not in ACTIONS or not name:
        raise t.error("target", f"{target!r} is not KIND:NAME with KIND one of {', '.join(ACTIONS)}")
    action = t.choice("action", ACTIONS[kind])
    where = t.get("where", str, None)
    if where is not None and (kind, action) not in PLACED:
        raise t.error("where", f"{kind} {action} takes no place")
    if t.has("at") == t.has("every"):
        raise t.error("at", "give either at (a fixed time) or every (a mean time between firings, by chance)")
    heal = t.duration("heal", None, low=1.0, high=MAX_DURATION) if t.has("heal") else None
    if heal is not None and (kind, action) not in HEALED_BY:
        raise t.error("heal", f"{kind} {action} has no healing action")
    spec = FaultSpec(
        target,
        action,
        where,
        at=t.duration("at", high=MAX_DURATION) if t.has("at") else None,
        every=t.duration("every", low=60.0, high=MAX_DURATION) if t.has("every") else None,
        heal=heal,
    )
    t.done()
    return spec


def _counts(t: Table, name: str) -> dict[str, int]:
    table = t.table(name, required=False)
    statuses = tuple(s.value for s in JobStatus)
    for status in table.data:
        if status not in statuses:
            raise table.error(status, f"is not a job status ({', '.join(statuses)})")
    return {status: table.integer(status, 0, 2**31) for status in list(table.data)}


def _expect(t: Table) -> Expect:
    lag = t.table("max_lag", required=False)
    available = t.table("min_available", required=False)
    primary = t.table("primary", required=False)
    expect = Expect(
        min_jobs=_counts(t, "min_jobs"),
        max_jobs=_counts(t, "max_jobs"),
        min_available={c: available.integer(c, 0, 2**31) for c in list(available.data)},
        max_lag={c: lag.duration(c, high=MAX_DURATION) for c in list(lag.data)},
        caught_up=t.strings("caught_up", ()),
        drills_passed=t.integer("drills_passed", 0, 10_000, 0),
        min_faults=t.integer("min_faults", 0, 10**6, 0),
        primary={p: primary.get(p, str) for p in list(primary.data)},
    )
    t.done()
    return expect
