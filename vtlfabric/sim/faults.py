"""Faults injected at named points on the fabric's boundaries.

A fault names a target and an action, e.g. ``client:PRODIBM1 fail-backup``,
``link:prod-dr partition``, ``library:production/PRODVTL offline``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import structlog

if TYPE_CHECKING:
    from vtlfabric.fabric import Fabric

log = structlog.get_logger()

ACTIONS = {
    "client": ("fail-backup",),
    "link": ("partition", "partition-a-b", "partition-b-a", "heal", "corrupt"),
    "library": ("offline", "online"),
}


class FaultError(ValueError):
    pass


@attrs.define
class Faults:
    """Fault state that has no better home (links and libraries keep their own)."""

    failing_clients: set[str] = attrs.field(factory=set)

    def take_backup_failure(self, client: str) -> bool:
        if client in self.failing_clients:
            self.failing_clients.discard(client)
            return True
        return False


def inject(fabric: Fabric, target: str, action: str) -> str:
    """Apply one fault; return what was done. Raises FaultError on a bad target or action."""
    kind, _, name = target.partition(":")
    if kind not in ACTIONS or not name:
        raise FaultError(f"target {target!r}: expected client:NAME, link:NAME or library:SITE/NAME")
    if action not in ACTIONS[kind]:
        raise FaultError(f"action {action!r}: {kind} faults are {', '.join(ACTIONS[kind])}")
    _known(fabric, kind, name)
    if kind == "client":
        fabric.faults.failing_clients.add(name)
    elif kind == "link":
        link = fabric.links[name]
        if action == "heal":
            link.heal()
        elif action == "corrupt":
            link.corrupt_next(1)
        else:
            link.partition({"partition": "both", "partition-a-b": "a->b", "partition-b-a": "b->a"}[action])
    else:
        fabric.libraries[name].offline = action == "offline"
    log.warning("fault.injected", target=target, action=action)
    return f"{action} on {target}"


def _known(fabric: Fabric, kind: str, name: str) -> None:
    known = {
        "client": set(fabric.workloads),
        "link": set(fabric.links),
        "library": set(fabric.libraries),
    }[kind]
    if name not in known:
        raise FaultError(f"no {kind} named {name!r} (known: {', '.join(sorted(known))})")
