"""A MediaAgent's crash and restart (``mediaagent:SITE crash``, then ``restart``).

A crash takes the MediaAgent down: its libraries hand out no drive and do no I/O, and
the work running on it (its backups, and the aux copies it sends or receives) is
stopped through its handle, as a kill would stop it, with the crash as the reason.
Stopped work leaves what it committed: a backup ends failed, an aux copy's jobs resume
from their last checkpoint. Work that runs on no known site (a restore, a drill) fails
at its next drive I/O there.

A restart reloads the MediaAgent's state from disk, as the daemon's start does: once
its drives are empty, each library is opened again and every cartridge is trimmed to
what the catalog committed, and what was kept in memory (image maps) is dropped. A
restart that cannot reload (the daemon's state disk is full, so the catalog refuses
the cartridges' homecoming) leaves the MediaAgent down and is refused; the reload is
safe to run again, so a later restart picks up where it stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from vtlfabric.errors import Refused
from vtlfabric.jobs import running

if TYPE_CHECKING:
    from vtlfabric.fabric import Fabric

log = structlog.get_logger()


def crash(fabric: Fabric, site: str) -> str:
    agent = fabric.mediaagents[site]
    why = f"MediaAgent {agent.name} of site {site} crashed"
    for library in agent.libraries.values():
        library.crashed = why
    stopped = running.registry().stop_where(lambda w: site in w.sites, why)
    log.warning("mediaagent.crashed", site=site, mediaagent=agent.name, stopped=sorted(w.id for w in stopped))
    return f"crashed {agent.name}: stopped {', '.join(sorted(w.id for w in stopped)) or 'nothing'}"


async def restart(fabric: Fabric, site: str) -> str:
    agent = fabric.mediaagents[site]
    if not any(library.crashed for library in agent.libraries.values()):
        return f"{agent.name} is running: nothing to restart"
    try:
        for library in agent.libraries.values():
            await library.drained()
            await library.reload()
    except OSError as e:  # StateFull, or no room for a relabelled image: it stays down
        log.error("mediaagent.restart_failed", site=site, mediaagent=agent.name, error=str(e))
        raise Refused(f"cannot restart {agent.name} of site {site}, it stays down: {e}") from e
    for library in agent.libraries.values():
        library.crashed = ""
    log.info("mediaagent.restarted", site=site, mediaagent=agent.name)
    return f"restarted {agent.name}"
