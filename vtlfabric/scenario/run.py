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
from typing import IO, Any, NoReturn

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
from vtlfabric.sim.faultnames import HEALED_BY
from vtlfabric.sim.faults import logged
from vtlfabric.vocab import VIRTUAL_EPOCH

log = structlog.get_logger()
LIFE_FILE = "life.json"  # in the run's directory: what a life killed with the daemon leaves the next
RESTART_AFTER = 5.0  # seconds a killed daemon stays down, unless its fault says (RestartSec=5 in the unit)


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
    ``wall`` reads the wall clock for the report's wall_seconds (the CLI passes one).
    A scenario that kills the daemon runs it in a process of its own (scenario/lives.py)."""
    if scenario.kills_daemon:
        from vtlfabric.scenario import lives

        return lives.run(scenario, seed, history_file=history_file, wall=wall)
    with tempfile.TemporaryDirectory(prefix=f"vtlfabric-{scenario.name}-") as tmp:
        root = Path(tmp)
        config = build(scenario, seed, root)
        sink = history_file.open("w") if history_file else None
        try:
            began = wall() if wall else 0.0
            outcome, history = live(scenario, seed, root, config, sink)
            ended = wall() if wall else 0.0
        finally:
            if sink is not None:
                sink.close()
    return report_mod.build(scenario, seed, outcome, history, wall_seconds=ended - began)


def live(
    scenario: Scenario, seed: int, root: Path, config: Any, sink: IO[str] | None, carried: dict[str, Any] | None = None
) -> tuple[dict[str, Any], History]:
    """One life of the world: the daemon from its state dir, on a virtual clock, driven by
    the scenario until its end, or (``carried``: what an earlier life left, after a kill -9
    of the daemon) from where that life stopped."""
    lock = daemon.StateLock.acquire(config.daemon.state_dir)  # as `vtlfabric run` takes it
    try:
        history = History.of_run(root, sink, scenario.liveness)
        bus = EventBus()
        logs.configure("json", "critical", bus, history=history)
        seed_trio_scheduler(seed if carried is None else f"{seed}/life/{carried['life']}")
        clock = trio.testing.MockClock(autojump_threshold=0)
        if carried is not None:
            clock.jump(carried["resume_at"])  # the world's time went on while the daemon was down
        flush = sink.flush if sink is not None else (lambda: None)
        return trio.run(partial(_world, scenario, seed, config, bus, carried, flush), clock=clock), history
    finally:
        lock.release()


async def _world(
    scenario: Scenario, seed: int, config: Any, bus: EventBus, carried: dict[str, Any] | None, flush: Any
) -> dict[str, Any]:
    epoch = None if carried is None else VIRTUAL_EPOCH + carried["resume_at"] - carried["origin"]
    async with trio.open_nursery() as world:
        fabric = await world.start(partial(daemon.run, config, virtual_clock=True, bus=bus, epoch=epoch))
        life = carried["life"] if carried else 0
        director = Director(scenario, fabric, random.Random(f"{seed}/faults" + (f"/{life}" if life else "")), carried, flush)
        director.check_targets()
        taps = [WireTap(name) for name in fabric.links]
        for tap in taps:
            fabric.links[tap.link].add_tap(tap)
        async with trio.open_nursery() as tasks:
            await director.resume(tasks)
            tasks.start_soon(director.sample)
            tasks.start_soon(director.settle)
            for i, fault in enumerate(scenario.faults):
                tasks.start_soon(director.fault, i, fault)
            for at in scenario.drills:
                tasks.start_soon(director.drill, at)
            for step in scenario.ctl:
                tasks.start_soon(director.ctl, step, daemon.socket_path(config))
            await trio.sleep_until(director.start + scenario.duration)
            tasks.cancel_scope.cancel()
        for tap in taps:
            tap.report()
        outcome = await director.outcome(await director.sample_once())
        os.kill(os.getpid(), signal.SIGTERM)  # the daemon stops as it does under systemd
    return outcome


class Director:
    """Drives the world on its schedule: faults, their healing, drills, and lag samples.
    In a life after a kill -9 it goes on with what the earlier lives recorded (``carried``)."""

    def __init__(
        self,
        scenario: Scenario,
        fabric: Fabric,
        rng: random.Random,
        carried: dict[str, Any] | None = None,
        flush: Any = lambda: None,
    ) -> None:
        self.scenario, self.fabric, self.rng, self.flush = scenario, fabric, rng, flush
        carried = carried or {}
        self.life: int = carried.get("life", 0)
        self.start: float = carried.get("origin", trio.current_time())
        self.faults: list[dict[str, Any]] = carried.get("faults", [])
        self.lag: dict[str, list[list[float]]] = carried.get("lag", {})
        self.steps: list[dict[str, Any]] = carried.get("ctl", [])

    def elapsed(self) -> float:
        return round(trio.current_time() - self.start, 3)

    def past(self, at: float) -> bool:
        """Before this life began: done in an earlier one, or lost while the daemon was down."""
        return self.start + at < trio.current_time()

    def check_targets(self) -> None:
        """Names are checked before the run starts, not when a fault fires days in."""
        for i, fault in enumerate(self.scenario.faults):
            try:
                faults_mod.check_target(self.fabric, fault.target)
            except errors.BadRequest as e:
                raise errors.BadRequest(f"{self.scenario.file}: fault[{i}].target: {e}") from None

    async def resume(self, tasks: trio.Nursery) -> None:
        """After a kill -9: the daemon is back (its kill healed), and the faults in force
        when it died hold again (they were the world's, not the daemon's), until they heal."""
        for record in self.faults:
            if "done" not in record or "healed" in record or not record.get("lasting"):
                continue
            if record["action"] == "kill-9":
                record["healed"] = self.elapsed()
                logged(record["target"], "restart", life=self.life)
            else:
                await faults_mod.inject(self.fabric, record["target"], record["action"], record.get("where"))
                if "heal_at" in record:
                    tasks.start_soon(self._heal_at, record)

    async def settle(self) -> None:
        """The quiet tail: no fault by chance begins in it (``fault``), and none injected
        before it is left to bite in it (a link's pending corruptions, a client's armed
        failure), so the fabric is judged on how it recovers."""
        quiet_at = self.scenario.duration - self.scenario.settle
        if self.scenario.settle <= 0 or self.past(quiet_at):
            return
        await trio.sleep_until(self.start + quiet_at)
        faults_mod.disarm(self.fabric)

    async def fault(self, index: int, spec: FaultSpec) -> None:
        if spec.at is not None:
            if self.past(spec.at) and any(r.get("spec") == index for r in self.faults):
                return  # it fired in an earlier life
            await trio.sleep_until(self.start + spec.at)  # one due while the daemon was down fires now
            await self._fire(index, spec)
            return
        assert spec.every is not None
        quiet_from = self.start + self.scenario.duration - self.scenario.settle
        while True:
            await trio.sleep(self.rng.expovariate(1.0 / spec.every))
            if trio.current_time() >= quiet_from:  # the settling time: the fabric recovers before it is judged
                return
            await self._fire(index, spec)

    async def _fire(self, index: int, spec: FaultSpec) -> None:
        record: dict[str, Any] = {"at": self.elapsed(), "target": spec.target, "action": spec.action, "spec": index}
        record["lasting"] = spec.heal_action is not None  # False: a one-shot, over as it fires
        if spec.where is not None:
            record["where"] = spec.where
        if spec.heal is not None and spec.heal_action is not None:
            record["heal_at"] = round(record["at"] + spec.heal, 3)
        elif spec.action == "kill-9":  # systemd brings it back (RestartSec in the shipped unit)
            record["heal_at"] = round(record["at"] + RESTART_AFTER, 3)
        self.faults.append(record)
        if spec.action == "kill-9":
            self._die(record)
        try:
            record["done"] = await faults_mod.inject(self.fabric, spec.target, spec.action, spec.where)
        except errors.FabricError as e:
            record["refused"] = str(e)
            log.warning("fault.refused", target=spec.target, action=spec.action, why=str(e))
            return
        if "heal_at" in record:
            await self._heal_at(record)

    async def _heal_at(self, record: dict[str, Any]) -> None:
        """Heal the fault when due. A heal the fabric refuses (a MediaAgent cannot restart
        while the state disk is full) is tried again RESTART_AFTER later, as systemd
        restarts a service that failed to start, until it holds or the scenario ends."""
        await trio.sleep_until(self.start + record["heal_at"])
        kind = record["target"].partition(":")[0]
        heal = HEALED_BY[(kind, record["action"])]
        while True:
            try:
                await faults_mod.inject(self.fabric, record["target"], heal)
                break
            except errors.FabricError as e:
                record["heal_refused"] = record.get("heal_refused", 0) + 1
                log.warning("fault.heal_refused", target=record["target"], action=heal, why=str(e))
                await trio.sleep(RESTART_AFTER)
        record["healed"] = self.elapsed()

    def _die(self, record: dict[str, Any]) -> NoReturn:
        """kill -9 of this process, the daemon with it, once the next life knows where to
        go on from: the time it restarts, and what this one recorded."""
        record["done"] = "kill -9 of the daemon's process"
        carried = {
            "life": self.life + 1,
            "origin": self.start,
            "resume_at": self.start + record["heal_at"],
            "faults": self.faults,
            "lag": self.lag,
            "ctl": self.steps,
        }
        (self.fabric.config.daemon.state_dir.parent / LIFE_FILE).write_text(json.dumps(carried))
        logged(record["target"], record["action"], life=self.life)
        self.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable: SIGKILL cannot be caught")

    async def drill(self, at: float) -> None:
        if self.past(at):
            return
        await trio.sleep_until(self.start + at)
        os.kill(os.getpid(), signal.SIGUSR1)  # the daemon's own signal path, as `systemctl kill -s USR1`

    async def ctl(self, step: ControlStep, socket: Path) -> None:
        """A request over the daemon's control socket, as ``vtlfabric ctl`` makes it."""
        if self.past(step.at):
            return
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
