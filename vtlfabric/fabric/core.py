"""The fabric: every site, library, MediaAgent and link, built from one config.

It is the one object the jobs are handed. It holds no job state of its own:
that lives in the catalog.
"""

from __future__ import annotations

import random

import attrs
import trio

from vtlfabric import blocking, errors
from vtlfabric.catalog import queries
from vtlfabric.catalog.db import Catalog
from vtlfabric.catalog.records import CopyRecord
from vtlfabric.config import CopySpec, FabricConfig
from vtlfabric.fabric.gate import RoleGate
from vtlfabric.fabric.throttle import Throttle
from vtlfabric.net.secure import Keystore
from vtlfabric.net.wan import Link
from vtlfabric.sim.clock import FabricClock
from vtlfabric.sim.faults import Faults
from vtlfabric.site.client import Workload
from vtlfabric.site.mediaagent import MediaAgent
from vtlfabric.tape.broker import DriveBroker
from vtlfabric.tape.library import Library


@attrs.define(eq=False)
class Fabric:
    config: FabricConfig
    catalog: Catalog
    clock: FabricClock
    rng: random.Random
    keystore: Keystore
    mediaagents: dict[str, MediaAgent]  # by site
    libraries: dict[str, Library]  # by "site/name"
    links: dict[str, Link]  # by link name
    workloads: dict[str, Workload]  # by client
    broker: DriveBroker  # every library's drives are handed out by it, all of a request at once
    faults: Faults = attrs.field(factory=Faults)
    drill_lock: trio.Lock = attrs.field(factory=trio.Lock)  # drills never overlap
    roles: dict[str, CopyRecord] = attrs.field(factory=dict)  # by copy id: primary, source, inoperative
    skews: dict[str, float] = attrs.field(factory=dict)  # site -> how far its clock is off (a fault)
    _aux_locks: dict[str, trio.Lock] = attrs.field(factory=dict)
    _throttles: dict[str, Throttle] = attrs.field(factory=dict)
    _gates: dict[str, RoleGate] = attrs.field(factory=dict)

    def role_gate(self, policy: str) -> RoleGate:
        """Backups of a policy and its promotions exclude each other (see fabric/gate.py)."""
        return self._gates.setdefault(policy, RoleGate())

    def aux_lock(self, copy_id: str) -> trio.Lock:
        """One aux copy at a time per copy: a second request waits, then finds little to do."""
        return self._aux_locks.setdefault(copy_id, trio.Lock())

    def reset_throttles(self) -> None:
        self._throttles.clear()

    def throttle(self, copy: CopySpec) -> Throttle:
        """One per copy, shared by its streams and its runs."""
        return self._throttles.setdefault(copy.id, Throttle(copy.throttle, self.scale))

    def now(self) -> float:
        """The CommServe's time: the fabric's one clock."""
        return self.clock.now()

    def site_now(self, site: str) -> float:
        """The time as a site's own clock reads it: what its MediaAgent and clients stamp."""
        return self.clock.now() + self.skews.get(site, 0.0)

    @property
    def scale(self) -> int:
        """Nominal bytes per real byte (the config's data_scale; 1 but in scenarios)."""
        return self.config.daemon.data_scale

    def library_of(self, copy: CopySpec) -> Library:
        return self.libraries[copy.library]

    def mediaagent_of(self, copy: CopySpec) -> MediaAgent:
        return self.mediaagents[copy.site]

    def link_between(self, a: str, b: str) -> Link | None:
        spec = self.config.link_between(a, b)
        return self.links[spec.name] if spec else None

    def copy(self, copy_id: str) -> CopySpec:
        """A copy as the fabric stands now: its role (primary, source) comes from the
        catalog, where a promotion changes it; everything else from the config."""
        spec = self.config.copy(copy_id)
        role = self.roles.get(copy_id)
        if role is None:
            return spec
        source = role.source.split("/", 1)[1] if role.source else None
        return attrs.evolve(spec, primary=role.is_primary, source=source)

    def copies(self) -> list[CopySpec]:
        return [self.copy(c.id) for c in self.config.copies()]

    def primary_of(self, policy: str) -> CopySpec:
        """The policy's primary copy now (after any promotion)."""
        for copy in self.copies():
            if copy.policy == policy and copy.primary:
                return copy
        raise errors.NotFound("storage policy", policy, [p.name for p in self.config.policies])

    def inoperative(self, copy: CopySpec) -> str:
        """Why a copy cannot be used now ('' if it can): marked so in the catalog (after a
        promotion, until repaired), or a fault that holds now."""
        role = self.roles.get(copy.id)
        if role is not None and role.inoperative:
            return role.inoperative
        return self.fault_on(copy)

    def fault_on(self, copy: CopySpec) -> str:
        """A fault that makes the copy unusable now: its library offline, its MediaAgent
        unreachable, its site cut off from the WAN, or a failed cartridge of its data."""
        library = self.library_of(copy)
        if library.unavailable():
            return library.unavailable()
        links = [self.links[spec.name] for spec in self.config.links if copy.site in (spec.a, spec.b)]
        if links and all(link.partitioned for link in links):
            return f"the WAN to site {copy.site} is partitioned"
        failed = sorted(b for b, owner in library.failed_media.items() if owner == copy.id)
        return f"media failure: cartridge {', '.join(failed)} has failed" if failed else ""

    async def reload_roles(self) -> None:
        self.roles = {r.id: r for r in await self.catalog.call(queries.copies)}

    def source_of(self, copy: CopySpec) -> CopySpec:
        return self.copy(f"{copy.policy}/{copy.source}")


async def build(config: FabricConfig, catalog: Catalog, clock: FabricClock, rng: random.Random) -> Fabric:
    """Open every library (trimming cartridges to what the catalog committed) and wire the sites."""
    state = config.daemon.state_dir
    keystore = await blocking.run_sync(
        Keystore.load_or_create, state / "keys", [s.mediaagent.name for s in config.sites], config.encryption.kem
    )
    await catalog.call(queries.sync_copies, [copy_record(c) for c in config.copies()])
    libraries: dict[str, Library] = {}
    mediaagents: dict[str, MediaAgent] = {}
    broker = DriveBroker(clock.now)
    for site in config.sites:
        root = state / "sites" / site.name
        site_libs = {
            lib.id: Library(
                lib,
                root / "libraries" / lib.name,
                catalog,
                pools=_pools(config, lib.id),
                now=clock.now,
                broker=broker,
                scale=config.daemon.data_scale,
            )
            for lib in site.libraries
        }
        for library in site_libs.values():
            await library.start()
        libraries.update(site_libs)
        identity = keystore.identity(site.mediaagent.name)
        mediaagents[site.name] = MediaAgent.build(site, identity, site_libs, root)
    fabric = Fabric(
        config=config,
        catalog=catalog,
        clock=clock,
        rng=rng,
        keystore=keystore,
        mediaagents=mediaagents,
        libraries=libraries,
        links={spec.name: Link(spec, rng, scale=config.daemon.data_scale) for spec in config.links},
        workloads={c.name: Workload(c, config.daemon.data_scale) for s in config.sites for c in s.clients},
        broker=broker,
    )
    await fabric.reload_roles()
    return fabric


def _pools(config: FabricConfig, library_id: str) -> dict[str, frozenset[str]]:
    return {c.id: frozenset(c.media) for c in config.copies() if c.library == library_id and c.media}


def copy_record(copy: CopySpec) -> CopyRecord:
    source = f"{copy.policy}/{copy.source}" if copy.source else None
    return CopyRecord(copy.id, copy.policy, copy.library, source, copy.primary)
