"""Load a whole fabric config: the fabric file, then each site file it names, then the
cross-file checks. Everything is checked before anything is built, so a bad config
changes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from vtlfabric.config import policies, sections
from vtlfabric.config.checks import check_fabric
from vtlfabric.config.reader import ConfigError, Table, read_toml, show
from vtlfabric.config.sites import load_site
from vtlfabric.config.specs import DaemonSpec, FabricConfig, SiteSpec

# A Unix socket's path must fit sun_path (108 bytes with its NUL); a longer one fails
# only when the daemon binds it, after the fabric is built.
MAX_SOCKET_PATH = 107


def load_daemon(path: Path | str) -> DaemonSpec:
    """Only the [daemon] table: enough to find a running daemon's socket even while the
    rest of the file is being edited (and may not load)."""
    path = Path(path).resolve()
    return sections.daemon(read_toml(path).table("daemon", required=False), path.parent)


def load(path: Path | str, state_dir: Path | str | None = None, socket: Path | str | None = None) -> FabricConfig:
    """Read and check the whole fabric config; raise one ConfigError or return it whole.
    ``state_dir`` and ``socket`` override the config's (systemd hands them to us)."""
    path = Path(path).resolve()
    t = read_toml(path)
    sites = tuple(_site(t, i, f) for i, f in enumerate(t.strings("sites")))
    daemon = sections.daemon(t.table("daemon", required=False), path.parent)
    if state_dir is not None:
        daemon = attrs.evolve(daemon, state_dir=Path(state_dir).resolve())
    if socket is not None:
        daemon = attrs.evolve(daemon, socket=Path(socket).resolve())
    _check_socket(t, daemon)
    config = FabricConfig(
        file=path,
        daemon=daemon,
        sites=sites,
        links=tuple(sections.link(link) for link in t.tables("link")),
        encryption=sections.encryption(t.table("encryption", required=False)),
        drill=sections.drill(t.table("drill", required=False)),
        metrics=sections.metrics(t.table("metrics", required=False)),
        policies=tuple(policies.policy(p) for p in t.tables("policy")),
        schedules=tuple(policies.schedule(s) for s in t.tables("schedule")),
    )
    t.done()
    check_fabric(t, config)
    return config


def _site(t: Table, index: int, name: str) -> SiteSpec:
    key = f"sites[{index}]"
    if not name or "\0" in name:
        raise t.error(key, f"{show(name)} is not a file name")
    try:
        path = (t.file.parent / name).resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
        raise t.error(key, f"{show(name)} cannot be resolved: {e}") from None
    return load_site(path, t.key(key), t.file)


def _check_socket(t: Table, daemon: DaemonSpec) -> None:
    path = daemon.socket or daemon.state_dir / "control.sock"  # as service/daemon.py's socket_path puts it
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ConfigError(
            t.file,
            "daemon.socket" if daemon.socket else "daemon.state_dir",
            f"the control socket {path} is longer than the {MAX_SOCKET_PATH} bytes a Unix socket path "
            "may have: give [daemon] socket a shorter path",
        )
