"""The world a scenario runs in: its config and site files, written into the run's
directory from the scenario's fabric, seed and scale.

The daemon reads them as it reads any config (and a SIGHUP reads them again), so a
scenario runs the real daemon on real files, never a second, simplified model.
"""

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from vtlfabric import config as config_mod
from vtlfabric.config import FabricConfig
from vtlfabric.config.reader import ConfigError
from vtlfabric.scenario.spec import Scenario
from vtlfabric.units import parse_size


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` laid over it: tables merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def client_seed(seed: int, client: str) -> int:
    """Each client's workload follows from the world's seed (str seeds hash stably)."""
    return random.Random(f"{seed}/client/{client}").randrange(2**31)


def build(scenario: Scenario, seed: int, root: Path) -> FabricConfig:
    """Write the scenario's fabric under ``root`` and load it, checked as any config is."""
    config = merged(tomllib.loads(scenario.config.read_text()), scenario.config_overrides)
    sites = [_site(scenario, seed, root, i, name) for i, name in enumerate(config.get("sites", []))]
    unknown = set(scenario.site_overrides) - set(sites)
    if unknown:
        raise ConfigError(scenario.file, f"fabric.site.{sorted(unknown)[0]}", "the fabric has no site of that name")
    config["sites"] = [str(root / "sites" / f"{name}.toml") for name in sites]
    config["daemon"] = merged(
        config.get("daemon", {}), {"state_dir": str(root / "state"), "seed": seed, "data_scale": scenario.scale}
    )
    config["daemon"].pop("socket", None)
    config.pop("metrics", None)  # no ports: runs go side by side
    if scenario.schedules is not None:
        config["schedule"] = list(scenario.schedules)
    _write(root / "fabric.toml", config)
    try:
        return config_mod.load(root / "fabric.toml")
    except ConfigError as e:
        raise ConfigError(scenario.file, "fabric", f"the fabric it makes does not load: {e}") from None


def _site(scenario: Scenario, seed: int, root: Path, index: int, file: str) -> str:
    """Write one site file of the world; return the site's name."""
    site = tomllib.loads((scenario.config.parent / file).read_text())
    name = str(site.get("name", f"site{index}"))
    site = merged(site, scenario.site_overrides.get(name, {}))
    for client in site.get("client", []):
        client["seed"] = client_seed(seed, str(client.get("name", "")))
    for library in site.get("library", []):
        if "capacity" not in library and "nominal_capacity" in library:  # real images stay small
            library["capacity"] = parse_size(library["nominal_capacity"]) // scenario.scale
    _write(root / "sites" / f"{name}.toml", site)
    return name


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data))
