"""``vtlfabric scenario run``: the real daemon, on a virtual clock, driven by a scenario.

One seed gives the whole world: the workload (each client's seed), every chance draw
of the fabric, the faults drawn by chance, and Trio's scheduling order. Blocking work
runs inline under the virtual clock (vtlfabric/blocking.py), so no event order depends
on a thread's speed, and the run's history hashes the same every time.

The daemon is started as ``vtlfabric run`` starts it, with its catalog, cartridge files
and signal handling: drills come as SIGUSR1 and the end as SIGTERM, sent to this
process, as systemd would send them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio
import trio.testing

from vtlfabric import errors
from vtlfabric.catalog import queries
from vtlfabric.check.wiretap import WireTap
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import faults as faults_mod
from vtlfabric.jobs.copystatus import CopyStatus, copy_statuses
from vtlfabric.scenario import report as report_mod
from vtlfabric.scenario.history import History
from vtlfabric.scenario.spec import ControlStep, FaultSpec, Scenario
from vtlfabric.scenario.world import build
from vtlfabric.service import daemon, logs
from vtlfabric.service.events import EventBus

log = structlog.get_logger()


def seed_trio_scheduler(seed: int) -> None:
    """Make Trio's scheduling order a function of the seed, as Hypothesis does when it is
    imported (trio/_core/_run.py, _hypothesis_plugin_setup): each batch of runnable tasks
    is put in creation order, then shuffled by Trio's own Random, seeded here. Without the
    sort, tasks woken at one instant (timers that expire together are common on a virtual
    clock) run in an order that follows their memory addresses. There is no public hook;
    tests/test_scenario.py checks that these two names are still there."""
    trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    trio._core._run._r.seed(seed)


def run(scenario: Scenario, seed: int, *, history_file: Path | None = None, wall: Any = None) -> dict[str, Any]:
    """Run the scenario with ``seed`` in a fresh directory; return its report.
    ``wall`` reads the wall clock for the report's wall_seconds (the CLI passes one)."""
    with tempfile.TemporaryDirectory(prefix=f"vtlfabric-{scenario.name}-") as tmp:
        root = Path(tmp)
        config = build(scenario, seed, root)
        lock = daemon.StateLock.acquire(config.daemon.state_dir)  # as `vtlfabric run` takes it
        sink = history_file.open("w") if history_file else None
        try:
            history = History.of_run(root, sink, scenario.liveness)
            bus = EventBus()
            logs.configure("json", "critical", bus, history=history)
            began = wall() if wall else 0.0
            seed_trio_scheduler(seed)
            clock = trio.testing.MockClock(autojump_threshold=0)
            outcome = trio.run(partial(_world, scenario, seed, config, bus), clock=clock)
            ended = wall() if wall else 0.0
        finally:
            lock.release()
            if sink is not None:
                sink.close()
    return report_mod.build(scenario, seed, outcome, history, wall_seconds=ended - began)


async def _world(scenario: Scenario, seed: int, config: Any, bus: EventBus) -> dict[str, Any]:
    async with trio.open_nursery() as world:
        fabric = await world.start(partial(daemon.run, config, virtual_clock=True, bus=bus))
        director = Director(scenario, fabric, random.Random(f"{seed}/faults"))
        director.check_targets()
        taps = [WireTap(name) for name in fabric.links]
        for tap in taps:
            fabric.links[tap.link].add_tap(tap)
        async with trio.open_nursery() as tasks:
            tasks.start_soon(director.sample)
            for fault in scenario.faults:
                tasks.start_soon(director.fault, fault)
            for at in scenario.drills:
                tasks.start_soon(director.drill, at)
            for step in scenario.ctl:
                tasks.start_soon(director.ctl, step, daemon.socket_path(config))
            await trio.sleep(scenario.duration)
            tasks.cancel_scope.cancel()
        for tap in taps:
            tap.report()
        outcome = await director.outcome(await director.sample_once())
        os.kill(os.getpid(), signal.SIGTERM)  # the daemon stops as it does under systemd
    return outcome


class Director:
    """Drives the world on its schedule: faults, their healing, drills, and lag samples."""

    def __init__(self, scenario: Scenario, fabric: Fabric, rng: random.Random) -> None:
        self.scenario, self.fabric, self.rng = scenario, fabric, rng
        self.start = trio.current_time()
        self.faults: list[dict[str, Any]] = []
        self.lag: dict[str, list[list[float]]] = {}
        self.steps: list[dict[str, Any]] = []

    def elapsed(self) -> float:
        return round(trio.current_time() - self.start, 3)

    def check_targets(self) -> None:
        """Names are checked before the run starts, not when a fault fires days in."""
        for i, fault in enumerate(self.scenario.faults):
            try:
                faults_mod.check_target(self.fabric, fault.target)
            except errors.BadRequest as e:
                raise errors.BadRequest(f"{self.scenario.file}: fault[{i}].target: {e}") from None

    async def fault(self, spec: FaultSpec) -> None:
        if spec.at is not None:
            await trio.sleep_until(self.start + spec.at)
            await self._fire(spec)
            return
        assert spec.every is not None
        quiet_from = self.start + self.scenario.duration - self.scenario.settle
        while True:
            await trio.sleep(self.rng.expovariate(1.0 / spec.every))
            if trio.current_time() >= quiet_from:  # the settling time: the fabric recovers before it is judged
                return
            await self._fire(spec)

    async def _fire(self, spec: FaultSpec) -> None:
        record: dict[str, Any] = {"at": self.elapsed(), "target": spec.target, "action": spec.action}
        record["lasting"] = spec.heal_action is not None  # False: a one-shot, over as it fires
        self.faults.append(record)
        try:
            record["done"] = await faults_mod.inject(self.fabric, spec.target, spec.action, spec.where)
        except errors.FabricError as e:
            record["refused"] = str(e)
            log.warning("fault.refused", target=spec.target, action=spec.action, why=str(e))
            return
        if spec.heal is not None and spec.heal_action is not None:
            await trio.sleep(spec.heal)
            await faults_mod.inject(self.fabric, spec.target, spec.heal_action)
            record["healed"] = self.elapsed()

    async def drill(self, at: float) -> None:
        await trio.sleep_until(self.start + at)
        os.kill(os.getpid(), signal.SIGUSR1)  # the daemon's own signal path, as `systemctl kill -s USR1`

    async def ctl(self, step: ControlStep, socket: Path) -> None:
        """A request over the daemon's control socket, as ``vtlfabric ctl`` makes it."""
        await trio.sleep_until(self.start + step.at)
        record: dict[str, Any] = {"at": self.elapsed(), "request": step.request}
        self.steps.append(record)
        async with await trio.open_unix_socket(str(socket)) as stream:
            await stream.send_all(json.dumps(step.request).encode() + b"\n")
            await stream.send_eof()
            reply = b""
            while chunk := await stream.receive_some():
                reply += chunk
        record["reply"] = json.loads(reply or b"{}")
        log.info("scenario.ctl", cmd=step.request["cmd"], ok=record["reply"].get("ok"))

    async def sample(self) -> None:
        while True:
            await self.sample_once()
            await trio.sleep(self.scenario.sample_every)

    async def sample_once(self) -> list[CopyStatus]:
        statuses = await copy_statuses(self.fabric)
        for status in statuses:
            if not status.primary:
                age = status.oldest_uncopied_age or 0.0
                self.lag.setdefault(status.id, []).append([self.elapsed(), age, status.to_copy, status.bytes_to_copy])
                log.info("copy.lag", copy=status.id, kind=status.kind, oldest_uncopied_seconds=age, to_copy=status.to_copy)
        return statuses

    async def outcome(self, statuses: list[CopyStatus]) -> dict[str, Any]:
        """The end of the run: ``statuses`` are the copies' as last sampled."""
        drills = await self.fabric.catalog.call(queries.drills)
        offset = self.fabric.now() - self.elapsed()  # fabric time at the run's start: its times become the run's
        backups = await self.fabric.catalog.call(queries.list_jobs)
        return {
            "simulated_seconds": self.elapsed(),
            "jobs": await self.fabric.catalog.call(queries.status_counts),
            "copies": {s.id: {"primary": s.primary, "available": s.available, "to_copy": s.to_copy} for s in statuses},
            "lag": self.lag,
            "faults": self.faults,
            "drills": [_drill(d, offset) for d in drills],
            "backups": [
                {"id": j.id, "at": round(j.started - offset, 3), "client": j.client, "type": j.type, "status": j.status}
                for j in backups
            ],
            "ctl": self.steps,
        }


def _drill(row: dict[str, Any], offset: float) -> dict[str, Any]:
    out = {"id": row["id"], "at": round(row["started"] - offset, 3), "status": row["status"], "summary": row["summary"]}
    if row["report"]:
        report = json.loads(Path(row["report"]).read_text())
        out["clients"] = [{k: c[k] for k in ("client", "copy", "passed", "rpo", "rto")} for c in report["clients"]]
    return out
