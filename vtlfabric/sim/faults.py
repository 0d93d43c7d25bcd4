"""Faults injected at named points on the fabric's boundaries.

A fault names a target and an action, e.g. ``client:PRODIBM1 fail-backup``,
``link:prod-dr partition``, ``library:production/PRODVTL offline``,
``mediaagent:production unreachable``, ``cartridge:PRD001 fail``.

Block-level media faults: ``cartridge:B read-error [FILE.BLOCK|OFFSET]`` makes a block
(or, with no place, every data block) unreadable until ``cartridge:B clear``;
``cartridge:B write-error`` fails the next write to it. Each logs ``fault.fired`` when it
bites (see tape/stream.py).

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
from vtlfabric.sim.faultnames import ACTIONS, HEALING, PLACED, USAGE
from vtlfabric.vocab import DriveState

if TYPE_CHECKING:
    from vtlfabric.fabric import Fabric
    from vtlfabric.tape.library import Drive

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


async def inject(fabric: Fabric, target: str, action: str, where: str | None = None) -> str:
    """Apply one fault; return what was done. Raises FaultError on a bad target, action or place."""
    kind, _, name = target.partition(":")
    if kind not in ACTIONS or not name:
        raise FaultError(f"target {target!r}: expected one of {USAGE}")
    if action not in ACTIONS[kind]:
        raise FaultError(f"action {action!r}: {kind} faults are {', '.join(ACTIONS[kind])}")
    if where is not None and (kind, action) not in PLACED:
        raise FaultError(f"{kind} {action} takes no place (got {where!r})")
    if kind == "cartridge":
        return await _cartridge(fabric, name, action, where)
    if kind == "drive":
        return _drive(fabric, name, action)
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
    _logged(target, action)
    return f"{action} on {target}"


def check_target(fabric: Fabric, target: str) -> None:
    """Raise FaultError unless ``target`` names something the fabric has. Cartridges come
    and go with the catalog, so only their kind is checked here."""
    kind, _, name = target.partition(":")
    if kind not in ACTIONS or not name:
        raise FaultError(f"target {target!r}: expected one of {USAGE}")
    if kind == "drive":
        _find_drive(fabric, name)
    elif kind != "cartridge":
        _known(fabric, kind, name)


def _find_drive(fabric: Fabric, name: str) -> Drive:
    library_id, _, number = name.rpartition("#")
    library = fabric.libraries.get(library_id)
    drives = {str(d.number): d for d in library.drives()} if library else {}
    if number not in drives:
        known = [d.name for lib in fabric.libraries.values() for d in lib.drives()]
        raise FaultError(f"no drive named {name!r} (known: {', '.join(known)})")
    return drives[number]


def _drive(fabric: Fabric, name: str, action: str) -> str:
    drive = _find_drive(fabric, name)
    state = {"fail": DriveState.FAILED, "offline": DriveState.OFFLINE}.get(action, DriveState.EMPTY)
    drive.set_state(state, f"{action} by fault injection" if action in ("fail", "offline") else "")
    _logged(f"drive:{name}", action)
    return f"{action} on drive:{name}"


def _known(fabric: Fabric, kind: str, name: str) -> None:
    known = {
        "client": set(fabric.workloads),
        "link": set(fabric.links),
        "library": set(fabric.libraries),
        "mediaagent": set(fabric.mediaagents),
    }[kind]
    if name not in known:
        raise FaultError(f"no {kind} named {name!r} (known: {', '.join(sorted(known))})")


async def _cartridge(fabric: Fabric, barcode: str, action: str, where: str | None) -> str:
    cart = next((c for c in await fabric.catalog.call(queries.cartridges) if c.barcode == barcode), None)
    if cart is None:
        raise FaultError(f"no cartridge with barcode {barcode!r}")
    library = fabric.libraries[cart.library]
    target = f"cartridge:{barcode}"
    done = f"{action} on {target}"
    if action == "fail":
        library.failed_media[barcode] = cart.copy_id
    elif action == "repair":
        library.failed_media.pop(barcode, None)
    elif action == "read-error":
        try:
            fault = library.block_faults.add_read(barcode, where)
        except ValueError as e:
            raise FaultError(f"read-error: {e}") from None
        done = f"read-error at {fault} on {target}"
    elif action == "write-error":
        library.block_faults.add_write(barcode)
        done = f"write-error (the next write) on {target}"
    else:
        cleared = library.block_faults.clear(barcode)
        _logged(target, action, barcode=barcode, cleared=cleared)
        return f"cleared {', '.join(cleared) or 'nothing'} on {target}"
    _logged(target, action, barcode=barcode, where=where)
    return done


def _logged(target: str, action: str, **fields: object) -> None:
    """Every fault logs when it is set (fault.injected) and when it heals (fault.healed)."""
    log.warning("fault.healed" if action in HEALING else "fault.injected", target=target, action=action, **fields)
