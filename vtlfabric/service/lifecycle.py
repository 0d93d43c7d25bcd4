"""What a running daemon tells its service manager, and how it answers signals.

SIGHUP reloads the config (RELOADING=1, then READY=1); SIGUSR1 starts a DR drill;
SIGUSR2 logs one status event; SIGTERM and SIGINT stop it (STOPPING=1). STATUS=
lines and WATCHDOG=1 pings go out from the Trio loop, and a ping only while the
loop runs and the catalog answers.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import attrs
import structlog
import trio

from vtlfabric.catalog import queries
from vtlfabric.config import FabricConfig
from vtlfabric.service.commands import Commands
from vtlfabric.service.notify import Notifier, monotonic_usec
from vtlfabric.service.reload import ReloadRefused, reload_config
from vtlfabric.service.scheduler import Scheduler

log = structlog.get_logger()
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
STATUS_EVERY = 10.0


@attrs.define
class Lifecycle:
    commands: Commands
    scheduler: Scheduler
    notifier: Notifier
    load_config: Callable[[], FabricConfig]  # the config file again, with the command line's overrides

    async def until_stop(self, signals: Any) -> str:
        """Answer signals until one says stop; return its name."""
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
                await self._answer(signum, name)
            else:
                await self.notifier.send(STOPPING=1, STATUS=f"stopping on {name}")
                log.info("daemon.stopping", signal=name)
                return name
        return "end of signals"

    async def _answer(self, signum: int, name: str) -> None:
        """A signal that asks for something: a failure is logged, never the daemon's end."""
        try:
            if signum == signal.SIGHUP:
                await self.reload()
            elif signum == signal.SIGUSR1:
                await self.commands.start_drill_on_signal()
            else:
                log.info("daemon.status", **await self.commands.cmd_status({}))
        except Exception:
            log.exception("daemon.signal_failed", signal=name)

    async def reload(self) -> None:
        await self.notifier.send(RELOADING=1, MONOTONIC_USEC=monotonic_usec(), STATUS="reloading the config")
        fabric = self.commands.fabric
        try:
            await reload_config(fabric, self.load_config)
        except ReloadRefused as e:
            log.error("config.reload_refused", config=str(fabric.config.file), error=str(e))
        else:
            self.scheduler.restart()  # no checkpoint since the new config went in: no old schedule fires on it
        await self.notifier.send(READY=1, STATUS=await self.status_line())

    async def status_line(self) -> str:
        try:
            return status_line(await self.commands.cmd_status({}))
        except Exception as e:  # a status report must never stop the daemon
            log.exception("daemon.status_failed")
            return f"status unavailable: {type(e).__name__}"

    async def report_status(self) -> None:
        while True:
            await trio.sleep(STATUS_EVERY)
            await self.notifier.send(STATUS=await self.status_line())

    async def watchdog(self, interval: float) -> None:
        """WATCHDOG=1 every ``interval`` seconds (half of WATCHDOG_USEC), each only if the
        catalog answers within half an interval. The pings keep a fixed cadence, so a slow
        answer never pushes one past systemd's limit. A stalled loop sends nothing, and
        systemd restarts the daemon."""
        due = trio.current_time()
        while True:
            with trio.move_on_after(interval / 2) as waited:
                await self.commands.fabric.catalog.call(queries.get_meta, "schema_version")
            if waited.cancelled_caught:
                log.error("watchdog.catalog_slow", waited=interval / 2)
            else:
                await self.notifier.send(WATCHDOG=1)
            due += interval
            await trio.sleep_until(due)


def status_line(status: dict[str, Any]) -> str:
    """One line a human reads in `systemctl status`."""
    running = status["running"]
    kinds = ", ".join(f"{sum(1 for op in running if op['kind'] == k)} {k}" for k in sorted({op["kind"] for op in running}))
    secondaries = [c for c in status["copies"] if not c["primary"]]
    last = max((c["last_auxcopy"] for c in secondaries if c["last_auxcopy"]), default="")
    lag = ", ".join(f"{c['id']} {c['to_copy']} job(s)" for c in secondaries if c["to_copy"])
    return (
        f"{len(running)} running" + (f" ({kinds})" if kinds else "") + f"; last aux copy {last or 'never'}; lag {lag or 'none'}"
    )
