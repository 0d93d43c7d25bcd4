"""Faults injected at named points on the fabric's boundaries.

A fault names a target and an action, e.g. ``client:PRODIBM1 fail-backup``,
``link:prod-dr partition``, ``library:production/PRODVTL robot-fail``,
``mediaagent:production crash``, ``cartridge:PRD001 wrong-label``. The names are in
sim/faultnames.py; the state a fault leaves lives with what it breaks (a link, a
library, a MediaAgent's disk) or in sim/faults.py.

Block-level media faults: ``cartridge:B read-error [FILE.BLOCK|OFFSET]`` makes a block
(or, with no place, every data block) unreadable until ``cartridge:B clear``;
``cartridge:B write-error`` fails the next write to it. Each logs ``fault.fired`` when it
bites (see tape/stream.py), as a robot's failed pick and a killed backup do.

Five of them make a copy inoperative (see Fabric.inoperative): its library offline,
its MediaAgent unreachable or crashed, every WAN link of its site partitioned, or a
failed cartridge holding its data.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, NoReturn

import structlog
import trio

from vtlfabric.catalog import queries
from vtlfabric.jobs import crash
from vtlfabric.sim.faultnames import ACTIONS, PLACED, USAGE
from vtlfabric.sim.faults import FaultError, logged
from vtlfabric.units import parse_duration, parse_size
from vtlfabric.vocab import DriveState

if TYPE_CHECKING:
    from vtlfabric.fabric import Fabric
    from vtlfabric.tape.library import Drive

__all__ = ["FaultError", "check_target", "disarm", "in_force", "inject"]
log = structlog.get_logger()


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
    if kind == "daemon":
        return _daemon(fabric, target, action)
    done = f"{action} on {target}"
    if kind == "client":
        (fabric.faults.failing_clients if action == "fail-backup" else fabric.faults.killing_clients).add(name)
    elif kind == "link":
        done = _link(fabric, name, action, where) or done
    elif kind == "mediaagent":
        done = await _mediaagent(fabric, name, action) or done
    elif kind == "site":
        done = _site(fabric, name, action, where)
    else:
        _library(fabric, name, action)
    logged(target, action, **({"where": where} if where else {}))
    return done


def in_force(fabric: Fabric) -> list[str]:
    """Every fault that holds now, as ``TARGET ACTION (what)``: what ctl status shows.
    One-shot faults still armed (a backup to fail or kill, a write to fail) count too."""
    out = [f"link:{n} partition ({link.partitioned})" for n, link in fabric.links.items() if link.partitioned]
    out += [f"link:{n} degrade ({_spoken(link.degraded)})" for n, link in fabric.links.items() if link.degraded]
    out += [f"link:{n} corrupt ({link.corrupt_pending} segment(s))" for n, link in fabric.links.items() if link.corrupt_pending]
    for lib_id, lib in fabric.libraries.items():
        out += [f"library:{lib_id} offline"] * lib.offline + [f"library:{lib_id} robot-fail"] * lib.robot_failing
        out += [f"cartridge:{b} fail" for b in sorted(lib.failed_media)]
        out += [f"cartridge:{b} read-error ({', '.join(map(str, where))})" for b, where in sorted(lib.block_faults.reads.items())]
        out += [f"cartridge:{b} write-error" for b in sorted(lib.block_faults.writes)]
        out += [f"cartridge:{b} wrong-label (reads {label})" for b, label in sorted(lib.mislabelled.items())]
        out += [f"drive:{d.name} {d.state.value} ({d.why})" for d in lib.drives() if d.why]
    for site, agent in fabric.mediaagents.items():
        libraries = list(agent.libraries.values())
        out += [f"mediaagent:{site} unreachable"] * any(lib.unreachable for lib in libraries)
        out += [f"mediaagent:{site} crash"] * any(lib.crashed for lib in libraries)
        out += [f"mediaagent:{site} disk-full"] * agent.disk_library.space.full
    out += [f"site:{site} skew ({skew:+g}s)" for site, skew in sorted(fabric.skews.items())]
    out += ["daemon:self state-full"] * fabric.catalog.full
    out += [f"client:{c} fail-backup (armed)" for c in sorted(fabric.faults.failing_clients)]
    out += [f"client:{c} kill-backup (armed)" for c in sorted(fabric.faults.killing_clients)]
    return out


def disarm(fabric: Fabric) -> None:
    """Cancel the one-shot faults still waiting to bite: a link's corruptions of segments
    not yet carried, a client's next backup to fail or kill. A scenario's quiet tail
    begins with this, so a fault injected before it cannot bite in it. Each is logged as
    ``fault.disarmed``."""
    done = []
    for name, link in fabric.links.items():
        if pending := link.cancel_corruption():
            done.append((f"link:{name}", "corrupt", pending))
    done += [(f"client:{client}", action, 1) for client, action in fabric.faults.disarm()]
    for target, action, count in done:
        log.warning("fault.disarmed", target=target, action=action, count=count)


def _spoken(degraded: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(degraded.items()))


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


def _link(fabric: Fabric, name: str, action: str, where: str | None) -> str:
    link = fabric.links[name]
    if action == "heal":
        link.heal()
    elif action == "corrupt":
        link.corrupt_next(1)
    elif action == "degrade":
        now = link.degrade(**_degradation(link.spec.bandwidth, link.spec.latency, where))
        return f"degraded link:{name} to {now.bandwidth:.0f} B/s, {now.latency * 1000:g} ms, loss {now.loss:g}"
    elif action == "restore":
        link.restore()
    else:
        link.partition({"partition": "both", "partition-a-b": "a->b", "partition-b-a": "b->a"}[action])
    return ""


def _degradation(bandwidth: float, latency: float, where: str | None) -> dict[str, float]:
    """``bandwidth=SIZE,latency=DURATION,loss=FRACTION`` (any of them), or by default a
    tenth of the bandwidth, four times the latency and 2% loss."""
    if not where:
        return {"bandwidth": bandwidth / 10, "latency": latency * 4, "loss": 0.02}
    parse = {"bandwidth": lambda v: float(parse_size(v)), "latency": parse_duration, "loss": float}
    out: dict[str, float] = {}
    for part in where.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in parse or not value.strip():
            raise FaultError(f"degrade {where!r}: give {PLACED[('link', 'degrade')]}")
        try:
            out[key] = parse[key](value.strip())
        except ValueError as e:
            raise FaultError(f"degrade {key}: {e}") from None
    if out.get("bandwidth", 1.0) <= 0 or out.get("latency", 0.0) < 0 or not 0.0 <= out.get("loss", 0.0) <= 0.5:
        raise FaultError(f"degrade {where!r}: bandwidth must be positive, latency not negative, loss from 0 to 0.5")
    return out


def _daemon(fabric: Fabric, target: str, action: str) -> str:
    if action == "restart":
        raise FaultError("a killed daemon is restarted by systemd (Restart=on-failure), or by a scenario's next life")
    logged(target, action)
    if action == "kill-9":
        _kill_9()
    full = action == "state-full"
    _fill_state_dir(fabric, full)
    return f"state directory {fabric.config.daemon.state_dir} {'full' if full else 'has room again'}"


async def kill_9_after(seconds: float) -> NoReturn:
    """``daemon:self kill-9`` a moment from now (ctl's reply goes out first)."""
    await trio.sleep(seconds)
    logged("daemon:self", "kill-9")
    _kill_9()


def _kill_9() -> NoReturn:
    """kill -9 of this very process: nothing is cleaned up, nothing is flushed; what the
    catalog committed is what a restart (systemd's, or a scenario's next life) finds."""
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL cannot be caught")


def _fill_state_dir(fabric: Fabric, full: bool) -> None:
    """Everything the daemon writes lies in its state directory: the catalog, the
    cartridge images, the index caches and disk libraries. Full, each write fails."""
    fabric.catalog.full = full
    for library in fabric.libraries.values():
        library.state_full = full
    for agent in fabric.mediaagents.values():
        agent.index_cache.space.state_full = full
        agent.disk_library.space.state_full = full


def _site(fabric: Fabric, site: str, action: str, where: str | None) -> str:
    """A site's clock off by ``where`` (signed; default 5 minutes ahead), until sync."""
    if action == "sync":
        fabric.skews.pop(site, None)
        return f"clock of site {site} in sync"
    text = (where or "+5m").strip()
    sign = -1.0 if text.startswith("-") else 1.0
    try:
        skew = sign * parse_duration(text.lstrip("+-"))
    except ValueError as e:
        raise FaultError(f"skew {text!r}: {e}") from None
    fabric.skews[site] = skew
    return f"clock of site {site} {'ahead' if skew >= 0 else 'behind'} by {abs(skew):g}s"


def _library(fabric: Fabric, name: str, action: str) -> None:
    library = fabric.libraries[name]
    if action in ("offline", "online"):
        library.offline = action == "offline"
    else:
        library.robot_failing = action == "robot-fail"


async def _mediaagent(fabric: Fabric, site: str, action: str) -> str:
    if action == "crash":
        return crash.crash(fabric, site)
    if action == "restart":
        return await crash.restart(fabric, site)
    agent = fabric.mediaagents[site]
    if action in ("disk-full", "disk-freed"):
        agent.disk_library.space.full = action == "disk-full"
    else:
        for library in agent.libraries.values():
            library.unreachable = action == "unreachable"
    return ""


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
    logged(f"drive:{name}", action)
    return f"{action} on drive:{name}"


def _known(fabric: Fabric, kind: str, name: str) -> None:
    known = {
        "client": set(fabric.workloads),
        "link": set(fabric.links),
        "library": set(fabric.libraries),
        "mediaagent": set(fabric.mediaagents),
        "site": set(fabric.mediaagents),
        "daemon": {"self"},
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
    elif action == "wrong-label":
        # The mount reads the label of the next volume in the library: what a robot whose
        # inventory is wrong brings.
        others = [b for b in library.spec.barcodes if b != barcode]
        library.mislabelled[barcode] = others[library.spec.barcodes.index(barcode) % len(others)] if others else "NOLABL"
        done = f"wrong-label ({library.mislabelled[barcode]}) on {target}"
    else:
        cleared = library.block_faults.clear(barcode)
        if library.mislabelled.pop(barcode, None):
            cleared.append("wrong-label")
        logged(target, action, barcode=barcode, cleared=cleared)
        return f"cleared {', '.join(cleared) or 'nothing'} on {target}"
    logged(target, action, barcode=barcode, where=where)
    return done
