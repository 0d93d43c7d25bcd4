"""A site file: its MediaAgent, its libraries and its clients."""

from __future__ import annotations

import re
from pathlib import Path

from vtlfabric import media
from vtlfabric.config.reader import NAME, Table, read_toml, show, unique
from vtlfabric.config.specs import ClientSpec, LibrarySpec, MediaAgentSpec, SiteSpec, SubclientSpec
from vtlfabric.vocab import HERCULES_MAX_BLOCK

_BARCODE = re.compile(r"([A-Z0-9]*?)([0-9]+)(L[0-9WXY]|[A-Z][0-9])")
MAX_DRIVES = 64
MAX_SLOTS = 10_000
# Larger than any cartridge made (LTO-10 holds 30 TB): a bigger one is a typo.
MAX_CAPACITY = 64 * 2**40
MAX_ROBOT_TIME = 3600.0
# Objects are synthesised whole in memory, one at a time, and a backup lists them all.
MAX_OBJECT_SIZE = 2**30
MAX_OBJECTS = 100_000  # per subclient, over all its content
# A positive change rate below this makes finding an object's last change walk back
# through millions of generations (site/client.py Workload.version).
MIN_CHANGE_RATE = 0.001
_LIBRARY_NAME = re.compile(r"[A-Za-z#@$][A-Za-z0-9_#@$.]{0,9}")  # an IBM i library name
_RESERVED_DIRS = ("libraries",)  # beside the index cache and disk library in a site's state dir


def barcode_ranges(value: str | list[object], limit: int) -> tuple[str, ...]:
    """One range, or a list of them (mixed media in one library); each barcode once."""
    ranges = [value] if isinstance(value, str) else value
    out: list[str] = []
    for text in ranges:
        out += barcode_range(text, limit - len(out))  # type: ignore[arg-type]
    if len(set(out)) != len(out):
        raise ValueError("the ranges overlap")
    for barcode in out:
        if barcode[-2:] not in media.MEDIA:
            raise ValueError(f"{barcode}: {barcode[-2:]} is not an LTO media type ({', '.join(media.MEDIA)})")
    return tuple(out)


def barcode_range(text: str, limit: int | None = None) -> tuple[str, ...]:
    """``"PR0001L8-PR0024L8"`` -> every barcode in the range (refused past ``limit`` of them)."""
    if not isinstance(text, str):
        raise ValueError(f"{show(text)} is not a barcode range such as 'PR0001L8-PR0024L8'")
    first, sep, last = text.partition("-")
    m1, m2 = _BARCODE.fullmatch(first), _BARCODE.fullmatch(last if sep else first)
    if not (m1 and m2) or len(first) != 8 or (sep and len(last) != 8):
        raise ValueError(f"{show(text)} is not a barcode range such as 'PR0001L8-PR0024L8'")
    if (m1.group(1), m1.group(3)) != (m2.group(1), m2.group(3)) or len(m1.group(2)) != len(m2.group(2)):
        raise ValueError(f"{text!r}: both ends must share prefix, width and media suffix")
    lo, hi = int(m1.group(2)), int(m2.group(2))
    if hi < lo:
        raise ValueError(f"{text!r}: the range is empty")
    if limit is not None and hi - lo + 1 > limit:  # before listing them: a range may hold a million
        raise ValueError(f"{text!r}: {hi - lo + 1} cartridges do not fit in {limit} slots")
    width = len(m1.group(2))
    return tuple(f"{m1.group(1)}{n:0{width}d}{m1.group(3)}" for n in range(lo, hi + 1))


def _library(t: Table, site: str) -> LibrarySpec:
    name = t.name()
    drives = t.integer("drives", 1, MAX_DRIVES)
    slots = t.integer("slots", 1, MAX_SLOTS)
    barcodes = t.convert("barcodes", lambda value: barcode_ranges(value, slots), (str, list))
    spec = LibrarySpec(
        site=site,
        name=name,
        drives=drives,
        slots=slots,
        barcodes=barcodes,
        capacity=t.size("capacity", high=MAX_CAPACITY),
        block_size=t.size("block_size", "32KiB", low=512, high=HERCULES_MAX_BLOCK),  # the largest block Hercules reads
        robot_time=t.duration("robot_time", 1.0, high=MAX_ROBOT_TIME),
        drive_type=t.choice("drive_type", tuple(media.DRIVES), media.default_drive(barcodes)),
        nominal_capacity=t.size("nominal_capacity", 0, high=MAX_CAPACITY),
        timing=t.get("timing", bool, True),
        station=t.integer("station", 1, 64, 4),
    )
    if spec.capacity < 4 * spec.block_size:
        raise t.error("capacity", "must hold at least four blocks")
    drive = media.DRIVES[spec.drive_type]
    unreadable = sorted({b[-2:] for b in barcodes if not drive.can_read(media.media_of(b))})
    if unreadable:
        raise t.error("barcodes", f"an {drive.name} drive cannot read {', '.join(unreadable)} cartridges (set drive_type)")
    t.done()
    return spec


def _content(t: Table) -> tuple[str, ...]:
    content = t.strings("content")
    for i, item in enumerate(content):
        kind, _, value = item.partition(":")
        if kind == "LIB" and _LIBRARY_NAME.fullmatch(value):
            continue
        if kind == "IFS" and _ifs_path(value):
            continue
        raise t.error(
            f"content[{i}]", f"{show(item)} is not 'LIB:NAME' (an IBM i library, 10 characters at most) or 'IFS:/absolute/path'"
        )
    return content


def _ifs_path(value: str) -> bool:
    parts = value.split("/")
    return value.startswith("/") and len(value) <= 1024 and value.isprintable() and not any(p in (".", "..") for p in parts)


def _subclient(t: Table) -> SubclientSpec:
    content = _content(t)
    spec = SubclientSpec(
        name=t.name(),
        content=content,
        objects=t.integer("objects", 1, MAX_OBJECTS, 8),
        min_size=t.size("min_size", "1KiB", high=MAX_OBJECT_SIZE),
        max_size=t.size("max_size", "64KiB", high=MAX_OBJECT_SIZE),
    )
    if spec.objects * len(content) > MAX_OBJECTS:
        raise t.error("objects", f"{spec.objects} objects for each of {len(content)} content items make more than {MAX_OBJECTS}")
    if spec.min_size > spec.max_size:
        raise t.error("min_size", "is larger than max_size")
    t.done()
    return spec


def _client(t: Table, site: str) -> ClientSpec:
    subclients = tuple(_subclient(s) for s in t.tables("subclient"))
    if not subclients:
        raise t.error("subclient", "a client needs at least one subclient")
    unique(t, "subclient", [s.name for s in subclients])
    spec = ClientSpec(
        site=site,
        name=t.name(),
        seed=t.get("seed", int),
        change_every=t.duration("change_every", "1m", low=1.0),  # a generation is fabric time // change_every
        change_rate=t.number("change_rate", 0.0, 1.0, 0.2),
        failure_rate=t.number("failure_rate", 0.0, 1.0, 0.0),
        subclients=subclients,
    )
    if 0 < spec.change_rate < MIN_CHANGE_RATE:
        raise t.error("change_rate", f"give 0 (objects never change) or at least {MIN_CHANGE_RATE}")
    t.done()
    return spec


def _directory(t: Table, name: str, default: str) -> str:
    """A directory of the MediaAgent's, under the site's state dir: one plain name, so
    a config can never point the daemon's writes elsewhere."""
    value = t.get(name, str, default)
    if not NAME.fullmatch(value) or value in _RESERVED_DIRS:
        raise t.error(
            name,
            f"{show(value)} is not a directory name (a letter, then letters, digits, _ . -; "
            f"32 at most; not {', '.join(_RESERVED_DIRS)})",
        )
    return value


def load_site(path: Path, key: str = "", origin: Path | None = None) -> SiteSpec:
    """A site file; ``origin`` and ``key`` name where the fabric file lists it."""
    t = read_toml(path, key, origin)
    name = t.name()
    ma = t.table("mediaagent")
    mediaagent = MediaAgentSpec(
        name=ma.name(),
        disk_library=_directory(ma, "disk_library", "disklib"),
        index_cache=_directory(ma, "index_cache", "indexcache"),
    )
    ma.done()
    libraries = tuple(_library(lib, name) for lib in t.tables("library"))
    clients = tuple(_client(c, name) for c in t.tables("client"))
    unique(t, "library", [lib.name for lib in libraries])
    t.done()
    return SiteSpec(name, path, mediaagent, libraries, clients)
