"""The fabric file's other sections: [daemon], [metrics], [drill], [encryption] and the WAN links."""

from __future__ import annotations

import grp
import ipaddress
from pathlib import Path

from vtlfabric.config.reader import Table
from vtlfabric.config.specs import DRILL_MODES, DaemonSpec, DrillSpec, EncryptionSpec, LinkSpec, MetricsSpec
from vtlfabric.units import parse_duration, parse_size
from vtlfabric.vocab import AEADS, DEFAULT_AEAD, DEFAULT_KEM, KEMS


def link(t: Table) -> LinkSpec:
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


def daemon(t: Table, base: Path) -> DaemonSpec:
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


def metrics(t: Table) -> MetricsSpec | None:
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


def drill(t: Table) -> DrillSpec:
    spec = DrillSpec(mode=t.choice("mode", DRILL_MODES, "check"), copies=t.strings("copies", ()))
    t.done()
    return spec


def encryption(t: Table) -> EncryptionSpec:
    spec = EncryptionSpec(
        kem=t.choice("kem", KEMS, DEFAULT_KEM),
        aead=t.choice("aead", AEADS, DEFAULT_AEAD),
        chunk_size=t.convert("chunk_size", parse_size, "1MiB"),
    )
    if not 64 * 1024 <= spec.chunk_size <= 16 * 2**20:
        raise t.error("chunk_size", "must be between 64KiB and 16MiB")
    t.done()
    return spec
