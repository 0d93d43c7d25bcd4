"""The daemon: one top-level nursery that owns every service of the fabric.

Start-up order follows the data: catalog, then sites (libraries are trimmed to
what the catalog committed), then the operations nursery, the scheduler and the
control socket; then it tells systemd it is ready. SIGTERM or Ctrl-C stops
taking work, gives running jobs the grace period, cancels the rest at their
last checkpoint, and the process exits 0. Signals and systemd's notify
protocol are in lifecycle.py.
"""

from __future__ import annotations

import fcntl
import gc
import os
import random
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO, Any

import attrs
import structlog
import trio

from vtlfabric import config as config_mod
from vtlfabric.catalog import queries
from vtlfabric.catalog.db import Catalog
from vtlfabric.config import FabricConfig
from vtlfabric.fabric import Fabric, build
from vtlfabric.jobs import running
from vtlfabric.service.commands import Commands
from vtlfabric.service.control import serve
from vtlfabric.service.events import EventBus
from vtlfabric.service.lifecycle import SIGNALS, Lifecycle
from vtlfabric.service.metrics import serve_metrics
from vtlfabric.service.notify import Notifier, watchdog_interval
from vtlfabric.service.operations import Operations
from vtlfabric.service.scheduler import Scheduler
from vtlfabric.sim.clock import FabricClock
from vtlfabric.vocab import VIRTUAL_EPOCH

log = structlog.get_logger()
# Fabric time is saved this often under a virtual clock (and at every stop): often enough
# that a kill -9 costs little of it, rarely enough that a simulated month is not spent
# committing the time.
SAVE_FABRIC_TIME_EVERY = 600.0


class AlreadyRunning(Exception):
    pass


def socket_path(config: FabricConfig) -> Path:
    return config.daemon.socket or config.daemon.state_dir / "control.sock"


@attrs.define
class StateLock:
    """An exclusive flock on ``<state>/daemon.lock``: one daemon per state dir.
    The kernel drops it when the process dies, so a crash never leaves it stale."""

    handle: IO[str]

    @classmethod
    def acquire(cls, state_dir: Path) -> StateLock:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(state_dir / "daemon.lock", "a+")  # noqa: SIM115 (held open for the daemon's life: that is the lock)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise AlreadyRunning(f"state dir {state_dir} is in use by a running daemon (pid {owner})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return cls(handle)

    def release(self) -> None:
        self.handle.close()


async def _fabric_epoch(catalog: Catalog, virtual: bool, epoch: float | None) -> float:
    if epoch is not None:  # the world's time, from outside (a scenario's next life after a kill -9)
        return epoch
    if not virtual:
        return time.time()  # clock-ok: the one wall-clock read; fabric time then follows Trio's clock
    saved = await catalog.call(queries.get_meta, "fabric_time")
    return float(saved) if saved else VIRTUAL_EPOCH


async def _check_scale(catalog: Catalog, config: FabricConfig) -> None:
    """A state dir's bytes were written at one data scale: reading them at another would
    misreport every size and time, so it is refused."""
    saved = await catalog.call(queries.get_meta, "data_scale")
    scale = config.daemon.data_scale
    if saved is None:
        await catalog.call(queries.set_meta, "data_scale", str(scale))
    elif int(saved) != scale:
        raise config_mod.ConfigError(
            config.file, "daemon.data_scale", f"is {scale}, but the state dir {config.daemon.state_dir} was written at {saved}"
        )


async def _schedule_anchor(fabric: Fabric) -> float:
    """Trio's time at the fabric's first start, where the schedules' grid begins: saved
    then, so every later start (after a crash too) keeps the same times of day."""
    saved = await fabric.catalog.call(queries.get_meta, "schedule_origin")
    if saved is None:
        saved = repr(fabric.now())
        await fabric.catalog.call(queries.set_meta, "schedule_origin", saved)
    return trio.current_time() - (fabric.now() - float(saved))


async def _save_fabric_time(fabric: Fabric) -> None:
    await fabric.catalog.call(queries.set_meta, "fabric_time", repr(fabric.now()))


async def _keep_fabric_time(fabric: Fabric) -> None:
    """Under a virtual clock, a restart resumes fabric time where it stopped."""
    while True:
        await trio.sleep(SAVE_FABRIC_TIME_EVERY)
        await _save_fabric_time_if_room(fabric)


async def _save_fabric_time_if_room(fabric: Fabric) -> None:
    try:
        await _save_fabric_time(fabric)
    except OSError as e:  # a full state dir: the daemon goes on (or stops) all the same
        log.warning("daemon.time_not_saved", error=str(e))


async def _recover(catalog: Catalog, now: float) -> None:
    """Work a killed daemon left running: backups are marked failed (their data stays
    on tape, never copied); aux copy runs are marked interrupted, and their jobs resume
    from the last committed chunk on the next run."""
    failed = await catalog.call(queries.fail_interrupted_jobs, now, "daemon stopped while the job ran")
    await catalog.call(queries.interrupt_aux_runs, now)
    drills = [d for d in await catalog.call(queries.drills) if d["status"] == "running" and d["mode"] == "failover"]
    await catalog.call(queries.interrupt_drills, now)
    for drill in drills:  # it may have stopped between its promotion and the fail-back
        log.error(
            "drill.interrupted",
            drill=drill["id"],
            mode="failover",
            hint="check `ctl copies`: if a DR copy is still primary, fail back with ctl repair and ctl promote --planned",
        )
    for job_id in failed:  # each as a backup that failed, for whoever reads the history
        log.warning("backup.failed", job_id=job_id, reason="daemon stopped while the job ran")
    if failed:
        log.warning("daemon.recovered", failed_jobs=failed)


async def run(
    config: FabricConfig,
    *,
    virtual_clock: bool = False,
    load_config: Callable[[], FabricConfig] | None = None,
    bus: EventBus | None = None,
    epoch: float | None = None,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the fabric until cancelled or signalled. SIGHUP reloads with ``load_config``
    (by default, the config's file as it is then). ``epoch``: the fabric time to start at
    (by default, the wall clock's; under a virtual clock, where the last run stopped)."""
    load_config = load_config or partial(config_mod.load, config.file)
    bus = bus or EventBus()
    bus.attach()
    catalog = await Catalog.open(config.daemon.state_dir / "catalog.db")
    try:
        await _check_scale(catalog, config)
        clock = FabricClock.starting_at(await _fabric_epoch(catalog, virtual_clock, epoch))
        await _recover(catalog, clock.now())
        fabric = await build(config, catalog, clock, random.Random(config.daemon.seed))
        with trio.open_signal_receiver(*SIGNALS) as signals:
            try:
                await _serve(fabric, signals, virtual_clock, load_config, bus, task_status)
            finally:
                with trio.CancelScope(shield=True):
                    await _save_fabric_time_if_room(fabric)
    finally:
        with trio.CancelScope(shield=True):
            await catalog.aclose()
    log.info("daemon.stopped")


async def _serve(
    fabric: Fabric, signals: Any, virtual_clock: bool, load_config: Callable[[], FabricConfig], bus: EventBus, task_status: Any
) -> None:
    """Serve until a signal, then stop taking work, give running jobs the grace period
    to finish, and cancel what remains: a cancelled job stops at its last checkpoint."""
    config = fabric.config
    notifier = Notifier.from_environ()
    async with trio.open_nursery() as jobs:
        ops = Operations(jobs)
        async with trio.open_nursery() as services:
            commands = Commands(fabric, ops, trio.current_time(), bus)
            scheduler = Scheduler(fabric, ops, anchor=await _schedule_anchor(fabric))
            lifecycle = Lifecycle(commands, scheduler, notifier, load_config)
            await services.start(serve, commands, socket_path(config))
            await services.start(scheduler.run)
            if config.metrics is not None:
                commands.endpoints["metrics"] = await services.start(serve_metrics, commands, config.metrics)
            if virtual_clock:
                services.start_soon(_keep_fabric_time, fabric)
            # What is built by now lives as long as the daemon: out of the cyclic collector's
            # reach, a full collection scans only what came since (one over it all took 15 ms
            # of the loop's time, with the GIL held).
            gc.freeze()
            log.info(
                "daemon.ready",
                pid=os.getpid(),
                config=str(config.file),
                state_dir=str(config.daemon.state_dir),
                socket=str(socket_path(config)),
                virtual_clock=virtual_clock,
                seed=config.daemon.seed,
            )
            await notifier.send(READY=1, MAINPID=os.getpid(), STATUS=await lifecycle.status_line())
            if notifier.enabled:
                services.start_soon(lifecycle.report_status)
            interval = watchdog_interval()
            if notifier.enabled and interval:
                services.start_soon(lifecycle.watchdog, interval)
            task_status.started(fabric)
            await lifecycle.until_stop(signals)
            services.cancel_scope.cancel()
        if ops.running():
            log.info("daemon.draining", running=sorted(w.id for w in ops.running()), grace=fabric.config.daemon.shutdown_grace)
        with trio.move_on_after(fabric.config.daemon.shutdown_grace):  # a reload may have changed it
            await ops.wait_idle()
        ops.stop_all(running.SHUTDOWN)  # each stops at its last checkpoint, and records why
    notifier.close()
