"""What a loaded config is: frozen specs, and the vocabularies they are checked against.

A leaf: it imports nothing of ours but ``errors``, so every layer (tape, net, site,
jobs) can import its spec from here without an import cycle.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from vtlfabric import errors

COPY_KINDS = ("synchronous", "selective")
FREQUENCIES = ("all", "hourly", "daily", "weekly", "monthly", "quarterly", "half-yearly", "yearly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EVERY_UNITS = ("cycles", "days", "weeks", "months")
SCHEDULE_ACTIONS = ("backup", "auxcopy", "age")
DRILL_MODES = ("check", "failover")
READ_ERROR_ACTIONS = ("skip", "stop")  # what an aux copy does when it cannot read a job from its source

_KiB = 2**10
_MiB = 2**20


class NoPolicy(errors.NotFound):
    """A client that no storage policy lists: a backup has no copy to write to."""

    def __init__(self, client: str) -> None:
        errors.BadRequest.__init__(self, f"client {client!r} belongs to no storage policy")
        self.kind, self.name = "storage policy", client


# ---------------------------------------------------------------- sites


@attrs.frozen
class LibrarySpec:
    site: str
    name: str
    drives: int
    slots: int
    barcodes: tuple[str, ...]
    capacity: int  # real bytes of each cartridge image
    block_size: int
    robot_time: float  # seconds per robot move (slot, drive, mail station)
    drive_type: str = "LTO-8"  # every drive of the library is of this generation (vtlfabric/media.py)
    nominal_capacity: int = 0  # what a cartridge holds as the fabric reports it; 0: its media type's native capacity
    timing: bool = True  # drives take the time the model says to load, locate, move data, rewind and unload
    station: int = 4  # slots of the import/export (mail) station

    @property
    def id(self) -> str:
        return f"{self.site}/{self.name}"


@attrs.frozen
class SubclientSpec:
    name: str
    content: tuple[str, ...]
    objects: int
    min_size: int
    max_size: int


@attrs.frozen
class ClientSpec:
    site: str
    name: str
    seed: int
    change_every: float
    change_rate: float
    failure_rate: float
    subclients: tuple[SubclientSpec, ...]

    def subclient(self, name: str) -> SubclientSpec:
        for sub in self.subclients:
            if sub.name == name:
                return sub
        raise errors.NotFound(f"subclient of client {self.name}", name, [s.name for s in self.subclients])


@attrs.frozen
class MediaAgentSpec:
    name: str
    disk_library: str
    index_cache: str


@attrs.frozen
class SiteSpec:
    name: str
    file: Path
    mediaagent: MediaAgentSpec
    libraries: tuple[LibrarySpec, ...]
    clients: tuple[ClientSpec, ...]


# ---------------------------------------------------------------- links


def _positive(_: object, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if not value > 0:
        raise ValueError(f"link {attribute.name} must be positive, not {value!r}")


def _not_negative(_: object, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if not value >= 0:
        raise ValueError(f"link {attribute.name} cannot be negative ({value!r})")


def _probability(_: object, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if not 0 <= value < 1:
        raise ValueError(f"link {attribute.name} must be in [0, 1), not {value!r}")


@attrs.frozen
class LinkSpec:
    """What a WAN link is, as the config describes it. Sizes in bytes, times in seconds.

    The validators guard links built in code (tests, the local loopback link); the
    loader checks every key first, so a config never trips them."""

    name: str
    a: str
    b: str
    bandwidth: float = attrs.field(validator=_positive)  # bytes/s per direction, shared by all streams
    latency: float = attrs.field(validator=_not_negative)  # one way
    jitter: float = attrs.field(default=0.0, validator=_not_negative)
    loss: float = attrs.field(default=0.0, validator=_probability)
    window: int = attrs.field(default=4 * _MiB, validator=_positive)  # per stream, bytes in flight
    stall_timeout: float = attrs.field(default=30.0, validator=_positive)
    mss: int = attrs.field(default=64 * _KiB, validator=_positive)

    @property
    def rtt(self) -> float:
        return 2 * self.latency


# ---------------------------------------------------------------- policies


@attrs.frozen
class SelectionRules:
    """Which jobs of its source a secondary copy holds (see jobs/selection.py)."""

    kind: str = "synchronous"  # synchronous: every valid job; selective: fulls by frequency
    backups_from: float | None = None  # only jobs started on or after this (fabric time, UTC)
    frequency: str = "all"  # selective: which full of each period
    pick: str = "first"  # the first or the last full of a period
    week_starts: int = 4  # Monday is 0; Commvault's week starts on Friday
    day_starts: float = 0.0  # seconds after midnight UTC at which a day (and so every period) begins
    every: int = 0  # advanced rule: one full every N units (0: off)
    every_unit: str = ""  # cycles, days, weeks or months
    automatic: bool = True  # False: only jobs picked by hand
    defer: float = 0.0  # seconds a job must age before it is copied


@attrs.frozen
class CopySpec:
    policy: str
    name: str
    primary: bool
    library: str  # "site/library"
    source: str | None  # copy name within the policy
    kind: str
    streams: int  # 0: "max", as many as the drives on both sides allow
    rules: SelectionRules = SelectionRules()
    combine_streams: int = 0  # at most this many destination streams (0: no limit)
    throttle: float = 0.0  # bytes per hour across all streams (0: no limit)
    behind_bytes: int = 0  # flag the copy as fallen behind past this many bytes to copy (0: never)
    behind_age: float = 0.0  # ...or when its oldest uncopied job is older than this (seconds, 0: never)
    retain_days: float = 0.0  # a full cycle ages once older than this... (0: no limit by age)
    retain_cycles: int = 0  # ...and this many newer cycles are on the copy (0: no limit by cycles)
    media: tuple[str, ...] = ()  # the copy's own scratch pool: only these cartridges take its data (empty: any free one)
    on_read_error: str = "skip"  # a job whose source cannot be read: skip it and go on, or stop the stream
    heal: bool = True  # copy jobs found damaged on this copy again from its source, at the next aux copy

    @property
    def id(self) -> str:
        return f"{self.policy}/{self.name}"

    @property
    def site(self) -> str:
        return self.library.split("/", 1)[0]


@attrs.frozen
class PolicySpec:
    name: str
    clients: tuple[str, ...]
    copies: tuple[CopySpec, ...]

    @property
    def primary(self) -> CopySpec:
        for c in self.copies:
            if c.primary:
                return c
        raise errors.NotFound("primary copy in storage policy", self.name)


@attrs.frozen
class ScheduleSpec:
    name: str
    action: str  # "backup", "auxcopy" or "age"
    targets: tuple[str, ...]  # clients, copy ids, or policies
    job_type: str
    start: float
    every: float


# ---------------------------------------------------------------- the fabric


@attrs.frozen
class MetricsSpec:
    """Where Prometheus scrapes: a loopback address only, port 0 for any free one."""

    host: str
    port: int


@attrs.frozen
class EncryptionSpec:
    kem: str
    aead: str
    chunk_size: int


@attrs.frozen
class DaemonSpec:
    state_dir: Path
    seed: int
    socket: Path | None
    shutdown_grace: float
    socket_group: str | None = None  # members may use the control socket too (besides its owner and root)
    # One real byte stands for this many nominal bytes. Drives, links, throttles, lag, RPO,
    # RTO and reports see nominal bytes; tape images, sealing and verification real ones.
    data_scale: int = 1


@attrs.frozen
class DrillSpec:
    # check: restore and verify at DR only, touching no production state; failover: promote, back up, restore, fail back
    mode: str = "check"
    copies: tuple[str, ...] = ()  # the DR copies to drill (default: every synchronous copy away from its primary's site)


@attrs.frozen
class FabricConfig:
    file: Path
    daemon: DaemonSpec
    sites: tuple[SiteSpec, ...]
    links: tuple[LinkSpec, ...]
    encryption: EncryptionSpec
    policies: tuple[PolicySpec, ...]
    schedules: tuple[ScheduleSpec, ...]
    drill: DrillSpec = DrillSpec()
    metrics: MetricsSpec | None = None

    # Lookups by name raise NotFound (a BadRequest: exit 2) naming what is missing: a
    # request may name anything, and a bare StopIteration inside a coroutine becomes
    # a RuntimeError that tells the operator nothing.

    def drill_copies(self) -> list[CopySpec]:
        if self.drill.copies:
            return [self.copy(c) for c in self.drill.copies]
        return [
            c
            for p in self.policies
            for c in p.copies
            if not c.primary and c.rules.kind == "synchronous" and c.site != p.primary.site
        ]

    def site(self, name: str) -> SiteSpec:
        for s in self.sites:
            if s.name == name:
                return s
        raise errors.NotFound("site", name, [s.name for s in self.sites])

    def library(self, library_id: str) -> LibrarySpec:
        libraries = [lib for s in self.sites for lib in s.libraries]
        for lib in libraries:
            if lib.id == library_id:
                return lib
        raise errors.NotFound("library", library_id, [lib.id for lib in libraries])

    def client(self, name: str) -> ClientSpec:
        clients = [c for s in self.sites for c in s.clients]
        for client in clients:
            if client.name == name:
                return client
        raise errors.NotFound("client", name, [c.name for c in clients])

    def copies(self) -> tuple[CopySpec, ...]:
        return tuple(c for p in self.policies for c in p.copies)

    def copy(self, copy_id: str) -> CopySpec:
        for c in self.copies():
            if c.id == copy_id:
                return c
        raise errors.NotFound("copy", copy_id, [c.id for c in self.copies()])

    def policy(self, name: str) -> PolicySpec:
        for p in self.policies:
            if p.name == name:
                return p
        raise errors.NotFound("storage policy", name, [p.name for p in self.policies])

    def policy_of(self, client: str) -> PolicySpec:
        for p in self.policies:
            if client in p.clients:
                return p
        raise NoPolicy(client)

    def link_between(self, a: str, b: str) -> LinkSpec | None:
        for link in self.links:
            if {link.a, link.b} == {a, b}:
                return link
        return None
