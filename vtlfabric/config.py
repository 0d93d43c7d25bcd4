"""TOML config -> frozen attrs specs.

Everything is checked before anything is built, so a bad config changes nothing.
Every error is one ``ConfigError`` naming the file and the dotted key.
"""

from __future__ import annotations

import grp
import ipaddress
import re
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any, TypeVar

import attrs

from vtlfabric.net.linkspec import LinkSpec
from vtlfabric.tape.image import MAX_BLOCK_SIZE
from vtlfabric.units import parse_duration, parse_size

T = TypeVar("T")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
_BARCODE = re.compile(r"^([A-Z0-9]*?)(\d+)(L\d|[A-Z]\d)$")
COPY_KINDS = ("synchronous", "selective")
FREQUENCIES = ("all", "hourly", "daily", "weekly", "monthly", "quarterly", "half-yearly", "yearly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EVERY_UNITS = ("cycles", "days", "weeks", "months")
SCHEDULE_ACTIONS = ("backup", "auxcopy", "age")
DRILL_MODES = ("check", "failover")
JOB_TYPES = ("full", "incremental", "differential")
KEMS = ("x25519", "mlkem768-x25519")
AEADS = ("aes-256-gcm", "chacha20-poly1305")


class ConfigError(Exception):
    """One clear message: the file, the key, what is wrong."""

    def __init__(self, file: Path | str, key: str, message: str) -> None:
        self.file, self.key, self.message = str(file), key, message
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{where}: {message}")


# ---------------------------------------------------------------- specs


@attrs.frozen
class LibrarySpec:
    site: str
    name: str
    drives: int
    slots: int
    barcodes: tuple[str, ...]
    capacity: int
    block_size: int
    robot_time: float

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
        raise KeyError(name)


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
        return next(c for c in self.copies if c.primary)


@attrs.frozen
class ScheduleSpec:
    name: str
    action: str  # "backup", "auxcopy" or "age"
    targets: tuple[str, ...]  # clients, copy ids, or policies
    job_type: str
    start: float
    every: float


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


@attrs.frozen
class DrillSpec:
    mode: str = "check"  # check: restore and verify at DR only, touching no production state; failover: promote, back up, restore, fail back
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

    def drill_copies(self) -> list[CopySpec]:
        if self.drill.copies:
            return [self.copy(c) for c in self.drill.copies]
        return [c for p in self.policies for c in p.copies
                if not c.primary and c.rules.kind == "synchronous" and c.site != p.primary.site]

    def site(self, name: str) -> SiteSpec:
        return next(s for s in self.sites if s.name == name)

    def library(self, library_id: str) -> LibrarySpec:
        return next(lib for s in self.sites for lib in s.libraries if lib.id == library_id)

    def client(self, name: str) -> ClientSpec:
        for site in self.sites:
            for client in site.clients:
                if client.name == name:
                    return client
        raise KeyError(name)

    def copies(self) -> tuple[CopySpec, ...]:
        return tuple(c for p in self.policies for c in p.copies)

    def copy(self, copy_id: str) -> CopySpec:
        for c in self.copies():
            if c.id == copy_id:
                return c
        raise KeyError(copy_id)

    def policy(self, name: str) -> PolicySpec:
        return next(p for p in self.policies if p.name == name)

    def policy_of(self, client: str) -> PolicySpec:
        return next(p for p in self.policies if client in p.clients)

    def link_between(self, a: str, b: str) -> LinkSpec | None:
        for link in self.links:
            if {link.a, link.b} == {a, b}:
                return link
        return None


# ---------------------------------------------------------------- reading


_MISSING: Any = object()


@attrs.define
class Table:
    """A TOML table that knows where it came from and which keys were read."""

    file: Path
    where: str
    data: dict[str, Any]
    seen: set[str] = attrs.field(factory=set)

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), message)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise self.error(name, "is required")
            return default
        value = self.data[name]
        if isinstance(value, bool) and bool not in _as_tuple(kind) or not isinstance(value, kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {type(value).__name__} {value!r}")
        return value

    def has(self, name: str) -> bool:
        return name in self.data

    def convert(self, name: str, fn: Callable[[Any], T], default: Any = _MISSING) -> T:
        raw = self.get(name, (int, float, str, date, dtime), default)  # TOML dates are datetime.date (or datetime) values
        try:
            return fn(raw)
        except ValueError as e:
            raise self.error(name, str(e)) from None

    def name(self, name: str = "name") -> str:
        value = self.get(name, str)
        if not _NAME.match(value):
            raise self.error(name, f"{value!r} is not a valid name (letters, digits, _ . -; 32 at most)")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _MISSING) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise self.error(name, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def number(self, name: str, low: float, high: float, default: Any = _MISSING, kind: type | tuple = (int, float)) -> Any:
        value = self.get(name, kind, default)
        if not low <= value <= high:
            raise self.error(name, f"{value} is outside {low}..{high}")
        return value

    def table(self, name: str, required: bool = True) -> Table:
        raw = self.get(name, dict, _MISSING if required else {})
        return Table(self.file, self.key(name), raw)

    def tables(self, name: str) -> list[Table]:
        raw = self.get(name, list, [])
        out = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise self.error(f"{name}[{i}]", "expected a table")
            out.append(Table(self.file, f"{self.key(name)}[{i}]", item))
        return out

    def strings(self, name: str, default: Any = _MISSING) -> tuple[str, ...]:
        value = self.get(name, list, default)
        if not all(isinstance(v, str) for v in value):
            raise self.error(name, "expected a list of strings")
        return tuple(value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise self.error(unknown[0], "unknown key")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _read_toml(path: Path, key: str = "", origin: Path | None = None) -> Table:
    try:
        with path.open("rb") as f:
            return Table(path, "", tomllib.load(f))
    except FileNotFoundError:
        raise ConfigError(origin or path, key, f"file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, "", f"cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"not valid TOML: {e}") from None


# ---------------------------------------------------------------- sites


def barcode_range(text: str) -> tuple[str, ...]:
    """``"PR0001L8-PR0024L8"`` -> every barcode in the range."""
    first, sep, last = text.partition("-")
    m1, m2 = _BARCODE.match(first), _BARCODE.match(last if sep else first)
    if not (m1 and m2) or len(first) != 8 or (sep and len(last) != 8):
        raise ValueError(f"{text!r} is not a barcode range such as 'PR0001L8-PR0024L8'")
    if (m1.group(1), m1.group(3)) != (m2.group(1), m2.group(3)) or len(m1.group(2)) != len(m2.group(2)):
        raise ValueError(f"{text!r}: both ends must share prefix, width and media suffix")
    lo, hi = int(m1.group(2)), int(m2.group(2))
    if hi < lo:
        raise ValueError(f"{text!r}: the range is empty")
    width = len(m1.group(2))
    return tuple(f"{m1.group(1)}{n:0{width}d}{m1.group(3)}" for n in range(lo, hi + 1))


def _library(t: Table, site: str) -> LibrarySpec:
    spec = LibrarySpec(
        site=site,
        name=t.name(),
        drives=t.number("drives", 1, 64, kind=int),
        slots=t.number("slots", 1, 10_000, kind=int),
        barcodes=t.convert("barcodes", barcode_range),
        capacity=t.convert("capacity", parse_size),
        block_size=t.convert("block_size", parse_size, "32KiB"),
        robot_time=t.convert("robot_time", parse_duration, 1.0),
    )
    if len(spec.barcodes) > spec.slots:
        raise t.error("barcodes", f"{len(spec.barcodes)} cartridges do not fit in {spec.slots} slots")
    if not 512 <= spec.block_size <= MAX_BLOCK_SIZE:
        raise t.error("block_size", f"must be between 512 and {MAX_BLOCK_SIZE} bytes (the largest block Hercules reads)")
    if spec.capacity < 4 * spec.block_size:
        raise t.error("capacity", "must hold at least four blocks")
    t.done()
    return spec


def _subclient(t: Table) -> SubclientSpec:
    content = t.strings("content")
    for item in content:
        kind, _, value = item.partition(":")
        if kind not in ("LIB", "IFS") or not value:
            raise t.error("content", f"{item!r} is not 'LIB:NAME' or 'IFS:/path'")
    spec = SubclientSpec(
        name=t.name(),
        content=content,
        objects=t.number("objects", 1, 100_000, 8, kind=int),
        min_size=t.convert("min_size", parse_size, "1KiB"),
        max_size=t.convert("max_size", parse_size, "64KiB"),
    )
    if spec.min_size > spec.max_size:
        raise t.error("min_size", "is larger than max_size")
    t.done()
    return spec


def _client(t: Table, site: str) -> ClientSpec:
    subclients = tuple(_subclient(s) for s in t.tables("subclient"))
    if not subclients:
        raise t.error("subclient", "a client needs at least one subclient")
    _unique(t, "subclient", [s.name for s in subclients])
    spec = ClientSpec(
        site=site,
        name=t.name(),
        seed=t.get("seed", int),
        change_every=t.convert("change_every", parse_duration, "1m"),
        change_rate=t.number("change_rate", 0.0, 1.0, 0.2),
        failure_rate=t.number("failure_rate", 0.0, 1.0, 0.0),
        subclients=subclients,
    )
    if spec.change_every <= 0:
        raise t.error("change_every", "must be positive")
    t.done()
    return spec


def load_site(path: Path) -> SiteSpec:
    t = _read_toml(path)
    name = t.name()
    ma = t.table("mediaagent")
    mediaagent = MediaAgentSpec(
        name=ma.name(),
        disk_library=ma.get("disk_library", str, "disklib"),
        index_cache=ma.get("index_cache", str, "indexcache"),
    )
    ma.done()
    libraries = tuple(_library(lib, name) for lib in t.tables("library"))
    clients = tuple(_client(c, name) for c in t.tables("client"))
    _unique(t, "library", [lib.name for lib in libraries])
    t.done()
    return SiteSpec(name, path, mediaagent, libraries, clients)


# ---------------------------------------------------------------- fabric


def _link(t: Table) -> LinkSpec:
    ends = t.strings("sites")
    if len(ends) != 2 or ends[0] == ends[1]:
        raise t.error("sites", "a link joins two different sites")
    bandwidth = float(t.convert("bandwidth", parse_size))
    if bandwidth <= 0:
        raise t.error("bandwidth", "must be positive (bytes per second)")
    spec = LinkSpec(
        name=t.name(),
        a=ends[0],
        b=ends[1],
        bandwidth=bandwidth,
        latency=t.convert("latency", parse_duration, "10ms"),
        jitter=t.convert("jitter", parse_duration, 0.0),
        loss=t.number("loss", 0.0, 0.5, 0.0),
        window=t.convert("window", parse_size, "4MiB"),
        stall_timeout=t.convert("stall_timeout", parse_duration, "30s"),
    )
    for key in ("window", "stall_timeout"):
        if getattr(spec, key) <= 0:
            raise t.error(key, "must be positive")
    t.done()
    return spec


def _copy(t: Table, policy: str) -> CopySpec:
    primary = t.get("primary", bool, False)
    kind = t.choice("kind", COPY_KINDS, "synchronous")
    spec = CopySpec(
        policy=policy,
        name=t.name(),
        primary=primary,
        library=t.get("library", str),
        source=None if primary else t.get("source", str, "primary"),
        kind=kind,
        streams=t.convert("streams", _streams, 1),
        rules=SelectionRules() if primary else _rules(t, kind),
        combine_streams=t.number("combine_streams", 1, 64, 0, kind=int) if t.has("combine_streams") else 0,
        throttle=float(t.convert("throttle", parse_size, 0)),
        behind_bytes=t.convert("fallen_behind_bytes", parse_size, 0),
        behind_age=t.convert("fallen_behind_age", parse_duration, 0),
        retain_days=float(t.number("retain_days", 0, 36500, 0)),
        retain_cycles=t.number("retain_cycles", 0, 1000, 0, kind=int),
    )
    t.done()
    return spec


def _rules(t: Table, kind: str) -> SelectionRules:
    selective_only = ("frequency", "pick", "week_starts", "day_starts", "every")
    if kind == "synchronous":
        for key in selective_only:
            if t.has(key):
                raise t.error(key, "applies only to a selective copy (kind = \"selective\")")
    every, unit = t.convert("every", _every) if t.has("every") else (0, "")
    rules = SelectionRules(
        kind=kind,
        backups_from=t.convert("backups_from", _instant) if t.has("backups_from") else None,
        frequency=t.choice("frequency", FREQUENCIES, "all"),
        pick=t.choice("pick", ("first", "last"), "first"),
        week_starts=WEEKDAYS.index(t.choice("week_starts", WEEKDAYS, "friday")),
        day_starts=t.convert("day_starts", _time_of_day, "00:00"),
        every=every,
        every_unit=unit,
        automatic=t.get("automatic", bool, True),
        defer=t.number("defer_days", 0, 3650, 0) * 86400.0,
    )
    if rules.every and t.has("frequency"):
        raise t.error("every", "give either frequency or every, not both")
    return rules


def _streams(value: Any) -> int:
    if value == "max":
        return 0
    if isinstance(value, int) and 1 <= value <= 64:
        return value
    raise ValueError(f"{value!r}: give a number of streams from 1 to 64, or \"max\"")


def _instant(value: Any) -> float:
    """A TOML date or date-time (or the same as a string), as fabric time; dates are UTC midnight."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date such as 2026-03-01 or 2026-03-01T06:00:00") from None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    raise ValueError(f"{value!r} is not a date")


def _time_of_day(value: Any) -> float:
    text = value.isoformat() if isinstance(value, dtime) else str(value)
    try:
        at = dtime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day such as \"06:00\"") from None
    return at.hour * 3600.0 + at.minute * 60.0 + at.second


def _every(value: Any) -> tuple[int, str]:
    number, _, unit = str(value).strip().partition(" ")
    unit = unit.strip()
    if not number.isdigit() or int(number) < 1 or unit not in EVERY_UNITS:
        raise ValueError(f"{value!r} is not a rule such as \"2 weeks\" (units: {', '.join(EVERY_UNITS)})")
    return int(number), unit


def _policy(t: Table) -> PolicySpec:
    name = t.name()
    copies = tuple(_copy(c, name) for c in t.tables("copy"))
    spec = PolicySpec(name=name, clients=t.strings("clients"), copies=copies)
    _unique(t, "copy", [c.name for c in copies])
    if sum(c.primary for c in copies) != 1:
        raise t.error("copy", "a policy needs exactly one copy with primary = true")
    t.done()
    return spec


def _schedule(t: Table) -> ScheduleSpec:
    actions = [a for a in SCHEDULE_ACTIONS if a in t.data]
    if len(actions) != 1:
        raise t.error("backup", "a schedule has one of backup = [clients], auxcopy = [copies] or age = [policies]")
    action = actions[0]
    has_backup = action == "backup"
    spec = ScheduleSpec(
        name=t.name(),
        action=action,
        targets=t.strings(action),
        job_type=t.choice("type", JOB_TYPES, "incremental") if has_backup else "",
        start=t.convert("start", parse_duration, 0.0),
        every=t.convert("every", parse_duration, "30m" if action == "auxcopy" else _MISSING),  # Commvault's auto-copy default
    )
    if spec.every <= 0:
        raise t.error("every", "must be positive")
    t.done()
    return spec


def _daemon(t: Table, base: Path) -> DaemonSpec:
    socket = t.get("socket", str, "")
    spec = DaemonSpec(
        state_dir=(base / t.get("state_dir", str, "state")).resolve(),
        seed=t.get("seed", int, 0),
        socket=(base / socket).resolve() if socket else None,
        shutdown_grace=t.convert("shutdown_grace", parse_duration, "10s"),
        socket_group=t.get("socket_group", str, None),
    )
    if spec.socket_group is not None:
        try:
            grp.getgrnam(spec.socket_group)
        except KeyError:
            raise t.error("socket_group", f"no group named {spec.socket_group!r} on this host") from None
    t.done()
    return spec


def _metrics(t: Table) -> MetricsSpec | None:
    listen = t.get("listen", str, "")
    t.done()
    if not listen:
        return None
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise t.error("listen", f"{listen!r} is not HOST:PORT, e.g. \"127.0.0.1:9464\"")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise t.error("listen", f"{host!r} is not a loopback address: metrics are served on 127.0.0.1 or ::1 only")
    return MetricsSpec("127.0.0.1" if host == "localhost" else host, int(port))


def _drill(t: Table) -> DrillSpec:
    spec = DrillSpec(mode=t.choice("mode", DRILL_MODES, "check"), copies=t.strings("copies", ()))
    t.done()
    return spec


def _encryption(t: Table) -> EncryptionSpec:
    spec = EncryptionSpec(
        kem=t.choice("kem", KEMS, "x25519"),
        aead=t.choice("aead", AEADS, "aes-256-gcm"),
        chunk_size=t.convert("chunk_size", parse_size, "1MiB"),
    )
    if not 64 * 1024 <= spec.chunk_size <= 16 * 2**20:
        raise t.error("chunk_size", "must be between 64KiB and 16MiB")
    t.done()
    return spec


def load_daemon(path: Path | str) -> DaemonSpec:
    """Only the [daemon] table: enough to find a running daemon's socket even while the
    rest of the file is being edited (and may not load)."""
    path = Path(path).resolve()
    return _daemon(_read_toml(path).table("daemon", required=False), path.parent)


def load(path: Path | str, state_dir: Path | str | None = None, socket: Path | str | None = None) -> FabricConfig:
    """Read and check the whole fabric config; raise one ConfigError or return it whole.
    ``state_dir`` and ``socket`` override the config's (systemd hands them to us)."""
    path = Path(path).resolve()
    t = _read_toml(path)
    base = path.parent
    site_files = t.strings("sites")
    sites = tuple(load_site((base / f).resolve()) for f in site_files)
    daemon = _daemon(t.table("daemon", required=False), base)
    if state_dir is not None:
        daemon = attrs.evolve(daemon, state_dir=Path(state_dir).resolve())
    if socket is not None:
        daemon = attrs.evolve(daemon, socket=Path(socket).resolve())
    config = FabricConfig(
        file=path,
        daemon=daemon,
        sites=sites,
        links=tuple(_link(link) for link in t.tables("link")),
        encryption=_encryption(t.table("encryption", required=False)),
        drill=_drill(t.table("drill", required=False)),
        metrics=_metrics(t.table("metrics", required=False)),
        policies=tuple(_policy(p) for p in t.tables("policy")),
        schedules=tuple(_schedule(s) for s in t.tables("schedule")),
    )
    t.done()
    _check_fabric(t, config)
    return config


def _unique(t: Table, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(t.file, f"{t.key(key)}[{i}].name", f"duplicate name {name!r}")
        seen.add(name)


def _check_fabric(t: Table, config: FabricConfig) -> None:
    """Cross-file rules: names unique fabric-wide, references resolve, ranges disjoint."""
    _unique(t, "sites", [s.name for s in config.sites])
    _unique(t, "link", [link.name for link in config.links])
    _unique(t, "policy", [p.name for p in config.policies])
    _unique(t, "schedule", [s.name for s in config.schedules])
    _check_sites(config)
    site_names = {s.name for s in config.sites}
    for i, link in enumerate(config.links):
        for end in (link.a, link.b):
            if end not in site_names:
                raise ConfigError(t.file, f"link[{i}].sites", f"no site named {end!r}")
    _check_policies(t, config)
    _check_schedules(t, config)
    secondaries = {c.id for c in config.copies() if not c.primary}
    for target in config.drill.copies:
        if target not in secondaries:
            raise ConfigError(t.file, "drill.copies", f"{target!r} is not a secondary copy (POLICY/COPY)")


def _check_sites(config: FabricConfig) -> None:
    owners: dict[str, str] = {}
    names: dict[str, Path] = {}
    for site in config.sites:
        for kind, items in (("mediaagent", [site.mediaagent]), ("client", site.clients)):
            for i, item in enumerate(items):
                if item.name in names:
                    key = "mediaagent.name" if kind == "mediaagent" else f"client[{i}].name"
                    raise ConfigError(site.file, key, f"{item.name!r} is already defined in {names[item.name]}")
                names[item.name] = site.file
        for i, lib in enumerate(site.libraries):
            for barcode in lib.barcodes:
                if barcode in owners:
                    raise ConfigError(site.file, f"library[{i}].barcodes", f"{barcode} overlaps library {owners[barcode]}")
                owners[barcode] = lib.id


def _check_policies(t: Table, config: FabricConfig) -> None:
    libraries = {lib.id for s in config.sites for lib in s.libraries}
    clients = {c.name for s in config.sites for c in s.clients}
    claimed: dict[str, str] = {}
    for i, policy in enumerate(config.policies):
        for client in policy.clients:
            if client not in clients:
                raise ConfigError(t.file, f"policy[{i}].clients", f"no client named {client!r}")
            if client in claimed:
                raise ConfigError(t.file, f"policy[{i}].clients", f"{client!r} already belongs to policy {claimed[client]}")
            claimed[client] = policy.name
        names = {c.name for c in policy.copies}
        for j, copy in enumerate(policy.copies):
            if copy.library not in libraries:
                raise ConfigError(t.file, f"policy[{i}].copy[{j}].library", f"no library {copy.library!r} (write it as site/library)")
            if copy.source is not None and (copy.source not in names or copy.source == copy.name):
                raise ConfigError(t.file, f"policy[{i}].copy[{j}].source", f"no other copy named {copy.source!r} in policy {policy.name}")
            if copy.source is not None:
                src = next(c for c in policy.copies if c.name == copy.source)
                if src.site != copy.site and config.link_between(src.site, copy.site) is None:
                    raise ConfigError(t.file, f"policy[{i}].copy[{j}].library", f"no link joins site {src.site} to site {copy.site}")
                if src.kind == "selective":
                    raise ConfigError(t.file, f"policy[{i}].copy[{j}].source",
                                      f"copy {src.name} is selective: a copy's source must be the primary or a synchronous copy")
        _check_acyclic(t, i, policy)


def _check_acyclic(t: Table, index: int, policy: PolicySpec) -> None:
    sources = {c.name: c.source for c in policy.copies}
    for j, copy in enumerate(policy.copies):
        seen, name = set(), copy.name
        while name is not None:
            if name in seen:
                raise ConfigError(t.file, f"policy[{index}].copy[{j}].source", "copy sources form a loop")
            seen.add(name)
            name = sources[name]


def _check_schedules(t: Table, config: FabricConfig) -> None:
    clients = {c.name for s in config.sites for c in s.clients}
    copies = {c.id for c in config.copies() if not c.primary}
    for i, sched in enumerate(config.schedules):
        known, what = {
            "backup": (clients, "client"), "auxcopy": (copies, "secondary copy (POLICY/COPY)"),
            "age": ({p.name for p in config.policies}, "policy"),
        }[sched.action]
        for target in sched.targets:
            if target not in known:
                raise ConfigError(t.file, f"schedule[{i}].{sched.action}", f"{target!r} is not a known {what}")
        if sched.action == "backup":
            for target in sched.targets:
                if not any(target in p.clients for p in config.policies):
                    raise ConfigError(t.file, f"schedule[{i}].backup", f"client {target!r} belongs to no policy")
