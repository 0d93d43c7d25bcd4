"""SIGHUP: load the config again and put it in force, or refuse it whole.

Policies, copies, schedules, WAN settings, drills and clients change in place;
running jobs keep the objects they hold and finish as they started. What the
state on disk is built from (the state dir, the socket, sites, MediaAgents and
libraries) needs a restart: a new config that changes it is refused, and the old
one stays in force.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from vtlfabric import blocking
from vtlfabric import config as config_mod
from vtlfabric.catalog import queries
from vtlfabric.config import FabricConfig
from vtlfabric.fabric import Fabric, copy_record
from vtlfabric.net.wan import Link
from vtlfabric.site.client import Workload

log = structlog.get_logger()


class ReloadRefused(Exception):
    pass


async def reload_config(fabric: Fabric, load: Callable[[], FabricConfig]) -> dict[str, Any]:
    """Load the config again (with the daemon's command-line overrides), check it can be
    applied without a restart, and apply it."""
    path = fabric.config.file
    try:
        new = await blocking.run_sync(load)
    except config_mod.ConfigError as e:
        raise ReloadRefused(str(e)) from None
    problems = needs_restart(fabric.config, new)
    if problems:
        raise ReloadRefused(f"{path}: needs a restart, not a reload: " + "; ".join(problems))
    changed = _changes(fabric.config, new)
    await fabric.catalog.call(queries.sync_copies, [copy_record(c) for c in new.copies()])
    roles = await fabric.catalog.call(queries.copies)
    _apply(fabric, new)  # and nothing awaited after it: the caller restarts the schedules before any fires
    fabric.roles = {r.id: r for r in roles}
    log.info("config.reloaded", config=str(path), changed=changed)
    return {"config": str(path), "changed": changed}


def needs_restart(old: FabricConfig, new: FabricConfig) -> list[str]:
    out = []
    if new.daemon.state_dir != old.daemon.state_dir:
        out.append("daemon.state_dir changed")
    if new.daemon.socket != old.daemon.socket:
        out.append("daemon.socket changed")
    if new.daemon.data_scale != old.daemon.data_scale:
        out.append("daemon.data_scale changed")
    if new.daemon.socket_group != old.daemon.socket_group:
        out.append("daemon.socket_group changed")
    if new.metrics != old.metrics:
        out.append("[metrics] changed")
    if new.encryption != old.encryption:
        out.append("[encryption] changed")
    before = {s.name: (s.mediaagent, s.libraries) for s in old.sites}
    after = {s.name: (s.mediaagent, s.libraries) for s in new.sites}
    if before != after:
        out.append("sites, MediaAgents or libraries changed")
    removed = sorted({c.id for c in old.copies()} - {c.id for c in new.copies()})
    if removed:
        out.append(f"copies removed ({', '.join(removed)}): the catalog holds their jobs and roles")
    for copy in new.copies():
        if copy.id in {c.id for c in old.copies()} and old.copy(copy.id).library != copy.library:
            out.append(f"copy {copy.id} moved to another library")
    return out


def _changes(old: FabricConfig, new: FabricConfig) -> list[str]:
    names = ("policies", "schedules", "links", "drill", "daemon")
    out = [name for name in names if getattr(old, name) != getattr(new, name)]
    if [c for s in old.sites for c in s.clients] != [c for s in new.sites for c in s.clients]:
        out.append("clients")
    return out


def _apply(fabric: Fabric, new: FabricConfig) -> None:
    """Synchronous on purpose: no other task sees half a config."""
    links = {}
    for spec in new.links:
        link = fabric.links.get(spec.name)
        if link is not None and (link.spec.a, link.spec.b) == (spec.a, spec.b):
            link.spec = spec  # its wires, partitions and stats carry on
        else:
            link = Link(spec, fabric.rng, scale=fabric.scale)
        links[spec.name] = link
    workloads = {}
    for client in (c for s in new.sites for c in s.clients):
        old = fabric.workloads.get(client.name)
        workloads[client.name] = old if old is not None and old.client == client else Workload(client, fabric.scale)
    fabric.links, fabric.workloads = links, workloads
    fabric.config = new
    fabric.reset_throttles()  # running streams keep theirs; new runs take the new rates
