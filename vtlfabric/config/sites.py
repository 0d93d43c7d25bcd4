"""A site file: its MediaAgent, its libraries and its clients."""

from __future__ import annotations

import re
from pathlib import Path

from vtlfabric.config.reader import Table, read_toml, unique
from vtlfabric.config.specs import ClientSpec, LibrarySpec, MediaAgentSpec, SiteSpec, SubclientSpec
from vtlfabric.units import parse_duration, parse_size
from vtlfabric.vocab import HERCULES_MAX_BLOCK

_BARCODE = re.compile(r"^([A-Z0-9]*?)(\d+)(L\d|[A-Z]\d)$")


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
    if not 512 <= spec.block_size <= HERCULES_MAX_BLOCK:
        raise t.error("block_size", f"must be between 512 and {HERCULES_MAX_BLOCK} bytes (the largest block Hercules reads)")
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
    unique(t, "subclient", [s.name for s in subclients])
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
    t = read_toml(path)
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
    unique(t, "library", [lib.name for lib in libraries])
    t.done()
    return SiteSpec(name, path, mediaagent, libraries, clients)
