"""The fabric file's other sections: [daemon], [metrics], [drill], [encryption] and the WAN links."""

from __future__ import annotations

import grp
import ipaddress
import re
from pathlib import Path

from vtlfabric.config.reader import Table, show
from vtlfabric.config.specs import DRILL_MODES, DaemonSpec, DrillSpec, EncryptionSpec, LinkSpec, MetricsSpec
from vtlfabric.vocab import AEADS, DAY, DEFAULT_AEAD, DEFAULT_KEM, KEMS

# A link faster than this is no constraint at all; much slower, and a test never ends.
MAX_BANDWIDTH = 10**12  # bytes per second
MAX_DELAY = 10.0  # seconds of latency or jitter: a geostationary hop is 0.3
MIN_WINDOW, MAX_WINDOW = 2**10, 2**30  # a smaller window sends segments of a few bytes
MIN_MSS = 512  # below this, a gigabyte is millions of segments: the model, not the link, is slow
MAX_GRACE = DAY
MAX_DATA_SCALE = 2**30  # a real byte for each GiB: beyond that, no job would write a byte
_LISTEN = re.compile(r"(.*):([0-9]{1,5})")


def link(t: Table) -> LinkSpec:
    ends = t.strings("sites")
    if len(ends) != 2 or ends[0] == ends[1]:
        raise t.error("sites", "a link joins two different sites")
    spec = LinkSpec(
        name=t.name(),
        a=ends[0],
        b=ends[1],
        bandwidth=float(t.size("bandwidth", low=1, high=MAX_BANDWIDTH)),
        latency=t.duration("latency", "10ms", high=MAX_DELAY),
        jitter=t.duration("jitter", 0.0, high=MAX_DELAY),
        loss=t.number("loss", 0.0, 0.5, 0.0),
        window=t.size("window", "4MiB", low=MIN_WINDOW, high=MAX_WINDOW),
        stall_timeout=t.duration("stall_timeout", "30s", low=0.001),
        mss=t.size("mss", "64KiB", low=MIN_MSS, high=MAX_WINDOW),
    )
    t.done()
    return spec


def _path(t: Table, name: str, base: Path, default: str) -> Path | None:
    """A path relative to the config file's directory ('' and no default: none)."""
    value = t.get(name, str, default)
    if not value:
        return None
    if "\0" in value:
        raise t.error(name, f"{show(value)} is not a path (it holds a NUL)")
    try:
        return (base / value).resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
        raise t.error(name, f"{show(value)} cannot be resolved: {e}") from None


def daemon(t: Table, base: Path) -> DaemonSpec:
    state_dir = _path(t, "state_dir", base, "state")
    if state_dir is None:
        raise t.error("state_dir", 'is empty: leave it out for the default, "state" beside this file')
    spec = DaemonSpec(
        state_dir=state_dir,
        seed=t.get("seed", int, 0),
        socket=_path(t, "socket", base, ""),
        shutdown_grace=t.duration("shutdown_grace", "10s", high=MAX_GRACE),
        socket_group=t.get("socket_group", str, None),
        data_scale=t.integer("data_scale", 1, MAX_DATA_SCALE, 1),
    )
    if spec.socket_group is not None:
        try:
            grp.getgrnam(spec.socket_group)
        except (KeyError, ValueError):  # ValueError: a NUL in the name
            raise t.error("socket_group", f"no group named {show(spec.socket_group)} on this host") from None
    t.done()
    return spec


def metrics(t: Table) -> MetricsSpec | None:
    listen = t.get("listen", str, "")
    t.done()
    if not listen:
        return None
    match = _LISTEN.fullmatch(listen)
    if not match or int(match.group(2)) > 65535:
        raise t.error("listen", f'{show(listen)} is not HOST:PORT, e.g. "127.0.0.1:9464"')
    host, port = match.group(1).strip("[]"), int(match.group(2))
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise t.error("listen", f"{show(host)} is not a loopback address: metrics are served on 127.0.0.1 or ::1 only")
    return MetricsSpec("127.0.0.1" if host == "localhost" else host, port)


def drill(t: Table) -> DrillSpec:
    spec = DrillSpec(mode=t.choice("mode", DRILL_MODES, "check"), copies=t.strings("copies", ()))
    t.done()
    return spec


def encryption(t: Table) -> EncryptionSpec:
    spec = EncryptionSpec(
        kem=t.choice("kem", KEMS, DEFAULT_KEM),
        aead=t.choice("aead", AEADS, DEFAULT_AEAD),
        chunk_size=t.size("chunk_size", "4MiB", low=64 * 2**10, high=16 * 2**20),
    )
    t.done()
    return spec
