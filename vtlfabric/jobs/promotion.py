"""Promotion of a secondary copy to primary, and repair of a copy marked inoperative.

Used by ``ctl promote``/``ctl repair`` and by failover drills, so both follow one rule:
the promotion is one catalog transaction, the policy's aux copies stop at a
checkpoint and none starts until it is done, and the old primary becomes a
synchronous copy fed from the new one, inoperative until repaired.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import attrs
import structlog

from vtlfabric import errors
from vtlfabric.catalog import queries
from vtlfabric.config import CopySpec
from vtlfabric.fabric import Fabric
from vtlfabric.jobs import running
from vtlfabric.jobs.auxcopy import run_auxcopy
from vtlfabric.sim.clock import iso

log = structlog.get_logger()


class NotPromotable(errors.BadRequest):
    """The copy cannot be promoted at all (a bad request)."""


class PromotionRefused(errors.Refused):
    """Promoting now would lose jobs the operator has not accepted, or a fault still holds."""


@attrs.frozen
class PromotionReport:
    """What promoting a copy loses, and, once done, what it did."""

    copy: str
    old_primary: str
    old_primary_state: str
    lost_jobs: tuple[int, ...]
    lost_bytes: int
    newest_lost_backup: str  # ISO time, "" when nothing is lost
    caught_up: int = 0  # jobs a planned promotion copied first
    promoted: bool = False


async def assess(fabric: Fabric, copy: CopySpec) -> PromotionReport:
    """What promoting ``copy`` would lose: valid jobs on the primary it does not hold."""
    if copy.primary:
        raise NotPromotable(f"copy: {copy.id} is already the primary copy")
    if copy.rules.kind != "synchronous":
        raise NotPromotable(f"copy: {copy.id} is {copy.rules.kind}; only a synchronous copy holds every job and can be promoted")
    old = fabric.primary_of(copy.policy)
    loss = await fabric.catalog.call(queries.promotion_loss, copy.id, old.id)
    return PromotionReport(
        copy.id, old.id, fabric.inoperative(old) or "operational", loss.jobs, loss.bytes, iso(loss.newest_backup)
    )


async def promote(fabric: Fabric, copy: CopySpec, who: str, *, accept_loss: bool, planned: bool = False) -> PromotionReport:
    """Make ``copy`` the primary. Unless ``accept_loss``, refuse while the old primary still
    works (the caller shows the report first), as Commvault does.

    A *planned* promotion loses nothing, so it needs no ``accept_loss``: with backups held
    off, it first copies to ``copy`` every job it lacks, and is refused (changing nothing)
    if any is still missing."""
    report = await assess(fabric, copy)
    old = fabric.copy(report.old_primary)
    if not (accept_loss or planned) and not fabric.inoperative(old):
        raise PromotionRefused(loss_text(report) + f"; {old.id} is operational: run again with --yes to promote {copy.id}")
    async with AsyncExitStack() as held:
        await held.enter_async_context(fabric.role_gate(copy.policy).promotion())  # running backups finish first
        if fabric.primary_of(copy.policy).id != old.id:
            raise PromotionRefused(f"{fabric.primary_of(copy.policy).id} was promoted meanwhile")
        caught_up = (await run_auxcopy(fabric, copy.id)).jobs_copied if planned else 0
        for other in sorted((c for c in fabric.copies() if c.policy == copy.policy), key=lambda c: c.id):
            running.registry().stop("auxcopy", other.id, f"stopped for the promotion of {copy.id}")
            await held.enter_async_context(fabric.aux_lock(other.id))
        down = fabric.inoperative(old)
        why = f"was primary until {copy.id} was promoted" + (f" ({down})" if down else "")
        subclients = [
            f"{c}/{s.name}" for c in fabric.config.policy(copy.policy).clients for s in fabric.config.client(c).subclients
        ]
        try:
            loss = await fabric.catalog.call(
                queries.promote, copy.id, old.id, subclients, _followers(fabric, copy, old), why, who, fabric.now(), planned
            )
        except queries.Refused as e:
            raise PromotionRefused(str(e)) from None
        await fabric.reload_roles()
    log.warning("copy.promoted", copy=copy.id, old_primary=old.id, lost_jobs=list(loss.jobs), site=copy.site, who=who)
    return attrs.evolve(report, lost_jobs=loss.jobs, lost_bytes=loss.bytes, caught_up=caught_up, promoted=True)


def _followers(fabric: Fabric, new: CopySpec, old: CopySpec) -> list[str]:
    """Secondaries configured to copy from the primary follow the new primary, where their
    site can reach its site. The rest keep their source, and a copy whose source is the
    old primary waits until that is repaired."""
    configured_primary = fabric.config.policy(new.policy).primary
    return [
        c.id
        for c in fabric.copies()
        if c.policy == new.policy
        and not c.primary
        and c.id not in (new.id, old.id)
        and fabric.config.copy(c.id).source == configured_primary.name
        and (c.site == new.site or fabric.config.link_between(c.site, new.site) is not None)
    ]


async def repair(fabric: Fabric, copy: CopySpec, who: str) -> str:
    """Declare a copy usable again; refused while a fault on it still holds. Returns what it was."""
    fault = fabric.fault_on(copy)
    if fault:
        raise PromotionRefused(f"{fault}: clear that first (see ctl fault)")
    was = await fabric.catalog.call(queries.repair_copy, copy.id, who, fabric.now())
    await fabric.reload_roles()
    log.info("copy.repaired", copy=copy.id, was=was, who=who)
    return was


def loss_text(report: PromotionReport) -> str:
    if report.caught_up:
        return f"{report.caught_up} job(s) copied to {report.copy} first; it holds every valid job of {report.old_primary}"
    if not report.lost_jobs:
        return f"promoting {report.copy} loses nothing: it holds every valid job of {report.old_primary}"
    return (
        f"promoting {report.copy} loses {len(report.lost_jobs)} job(s) not yet copied from {report.old_primary} "
        f"({report.lost_bytes} bytes, newest backup {report.newest_lost_backup}): jobs {list(report.lost_jobs)}"
    )
