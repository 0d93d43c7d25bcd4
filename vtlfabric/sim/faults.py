"""Fault state that has no better home (links, libraries and MediaAgents keep their
own), the error a bad fault request gets, and the events every fault logs.
The faults are applied in jobs/faults.py; their names are in faultnames.py."""

from __future__ import annotations

import attrs
import structlog

from vtlfabric import errors
from vtlfabric.sim.faultnames import HEALING

log = structlog.get_logger()


class FaultError(errors.BadRequest):
    pass


@attrs.define
class Faults:
    failing_clients: set[str] = attrs.field(factory=set)  # the next backup fails part-way
    killing_clients: set[str] = attrs.field(factory=set)  # the running (else the next) backup is killed

    def take_backup_failure(self, client: str) -> bool:
        return _take(self.failing_clients, client)

    def take_backup_kill(self, client: str) -> bool:
        return _take(self.killing_clients, client)

    def disarm(self) -> list[tuple[str, str]]:
        """Forget every armed client fault; returns them, as (client, action)."""
        armed = [(c, "fail-backup") for c in sorted(self.failing_clients)]
        armed += [(c, "kill-backup") for c in sorted(self.killing_clients)]
        self.failing_clients.clear()
        self.killing_clients.clear()
        return armed


def _take(armed: set[str], client: str) -> bool:
    if client in armed:
        armed.discard(client)
        return True
    return False


def logged(target: str, action: str, **fields: object) -> None:
    """Every fault logs when it is set (fault.injected) and when it heals (fault.healed)."""
    log.warning("fault.healed" if action in HEALING else "fault.injected", target=target, action=action, **fields)
