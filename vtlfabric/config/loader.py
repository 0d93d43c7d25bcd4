"""Load a whole fabric config: the fabric file, then each site file it names, then the
cross-file checks. Everything is checked before anything is built, so a bad config
changes nothing."""

from __future__ import annotations

from pathlib import Path

import attrs

from vtlfabric.config import policies, sections
from vtlfabric.config.checks import check_fabric
from vtlfabric.config.reader import read_toml
from vtlfabric.config.sites import load_site
from vtlfabric.config.specs import DaemonSpec, FabricConfig


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
    base = path.parent
    site_files = t.strings("sites")
    sites = tuple(load_site((base / f).resolve()) for f in site_files)
    daemon = sections.daemon(t.table("daemon", required=False), base)
    if state_dir is not None:
        daemon = attrs.evolve(daemon, state_dir=Path(state_dir).resolve())
    if socket is not None:
        daemon = attrs.evolve(daemon, socket=Path(socket).resolve())
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
