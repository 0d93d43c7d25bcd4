"""Faults injected at named points on the fabric's boundaries.

A fault names a target and an action, e.g. ``client:PRODIBM1 fail-backup``,
``link:prod-dr partition``, ``library:production/PRODVTL offline``,
``mediaagent:production unreachable``, ``cartridge:PRD001 fail``.

Four of them make a copy inoperative (see Fabric.inoperative): its library offline,
its MediaAgent unreachable, every WAN link of its site partitioned, or a failed
cartridge holding its data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import structlog

from vtlfabric import errors
from vtlfabric.catalog import queries
from vtlfabric.sim.faultnames import ACTIONS, USAGE

if TYPE_CHECKING:
    from vtlfabric.fabric import Fabric

log = structlog.get_logger()


class FaultError(errors.BadRequest):
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


async def inject(fabric: Fabric, target: str, action: str) -> str:
    """Apply one fault; return what was done. Raises FaultError on a bad target or action."""
    kind, _, name = target.partition(":")
    if kind not in ACTIONS or not name:
        raise FaultError(f"target {target!r}: expected one of {USAGE}")
    if action not in ACTIONS[kind]:
        raise FaultError(f"action {action!r}: {kind} faults are {', '.join(ACTIONS[kind])}")
    if kind == "cartridge":
        await _cartridge(fabric, name, action)
        log.warning("fault.injected", target=target, action=action, barcode=name)
        return f"{action} on {target}"
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
    elif kind == "mediaagent":
        for library in fabric.mediaagents[name].libraries.values():
            library.unreachable = action == "unreachable"
    else:
        fabric.libraries[name].offline = action == "offline"
    log.warning("fault.injected", target=target, action=action)
    return f"{action} on {target}"


def _known(fabric: Fabric, kind: str, name: str) -> None:
    known = {
        "client": set(fabric.workloads),
        "link": set(fabric.links),
        "library": set(fabric.libraries),
        "mediaagent": set(fabric.mediaagents),
    }[kind]
    if name not in known:
        raise FaultError(f"no {kind} named {name!r} (known: {', '.join(sorted(known))})")


async def _cartridge(fabric: Fabric, barcode: str, action: str) -> None:
    cart = next((c for c in await fabric.catalog.call(queries.cartridges) if c.barcode == barcode), None)
    if cart is None:
        raise FaultError(f"no cartridge with barcode {barcode!r}")
    failed = fabric.libraries[cart.library].failed_media
    if action == "fail":
        failed[barcode] = cart.copy_id
    else:
        failed.pop(barcode, None)
