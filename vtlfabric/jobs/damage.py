"""Damage found by reading a copy's data, and what marking it means.

A read that finds a job's data on a copy damaged (a block the drive cannot read, data
cut short, a garbled image, bytes that do not match the backup) marks the job *damaged*
on that copy, with why: data verification, a restore, and an aux copy reading its
source all do, here. A damaged job is not *available*: no restore picks it and nothing
copies from it. A secondary copy that heals (``heal = true``, the default) copies it
again from its source at its next aux copy; the primary has no source to heal from, so
its damaged jobs are only marked, and ``ctl copies`` flags the copy.
"""

from __future__ import annotations

import structlog

from vtlfabric.catalog import queries
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.tape.image import TapeFormatError
from vtlfabric.tape.library import MediaReadError
from vtlfabric.tape.stream import DataMissing

log = structlog.get_logger()

# What a read of a job raises when the media cannot give its data back. Not damage: a
# library offline, a failed cartridge (a fault that repair undoes), a missing index.
DAMAGE = (MediaReadError, DataMissing, TapeFormatError)


def heals(copy: CopySpec) -> bool:
    """Whether the copy's damaged jobs are copied again from its source."""
    return copy.heal and not copy.primary


def heal_plan(copy: CopySpec) -> str:
    if copy.primary:
        return "the primary has no source to heal from"
    if copy.heal:
        return f"the next aux copy copies them again from {copy.policy}/{copy.source}"
    return "heal is off: recopy them by hand"


async def mark_damaged(fabric: Fabric, copy: CopySpec, job_id: int, reason: str) -> bool:
    """Mark a job damaged on a copy (if it was available there); return whether it was."""
    changed = await fabric.catalog.call(queries.mark_damaged, job_id, copy.id, reason, fabric.now())
    if changed:
        log.error("copy.damaged", job_id=job_id, copy=copy.id, reason=reason, heal=heals(copy))
    return changed
