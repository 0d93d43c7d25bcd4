"""Small fabrics for tests: written as real config files, loaded the way the daemon loads them."""

from __future__ import annotations

import os
import random
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from vtlfabric import config as config_mod
from vtlfabric.catalog.db import Catalog
from vtlfabric.fabric import Fabric, build
from vtlfabric.sim.clock import FabricClock

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z

# CI replays the same examples every run (a red CI must be reproducible); a developer's
# `make test` explores new ones each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def site_toml(name: str, ma: str, library: str, prefix: str, *, clients: str = "", drives: int = 2,
              capacity: str = "4MiB", block_size: str = "32KiB", cartridges: int = 12, robot_time: str = "200ms") -> str:
    return textwrap.dedent(f"""\
        name = "{name}"

        [mediaagent]
        name = "{ma}"

        [[library]]
        name = "{library}"
        drives = {drives}
        slots = {cartridges + 4}
        barcodes = "{prefix}0001L8-{prefix}{cartridges:04d}L8"
        capacity = "{capacity}"
        block_size = "{block_size}"
        robot_time = "{robot_time}"
        """) + clients


CLIENTS = """
[[client]]
name = "IBMA"
seed = 11
change_every = "1h"
change_rate = 0.3

  [[client.subclient]]
  name = "ALLUSR"
  content = ["LIB:PAYROLL", "LIB:ORDERS"]
  objects = 6
  min_size = "2KiB"
  max_size = "200KiB"

  [[client.subclient]]
  name = "IFS"
  content = ["IFS:/home/app"]
  objects = 4
  min_size = "1KiB"
  max_size = "64KiB"

[[client]]
name = "IBMB"
seed = 22
change_every = "1h"
change_rate = 0.5

  [[client.subclient]]
  name = "ALLUSR"
  content = ["LIB:GL"]
  objects = 10
  min_size = "10KiB"
  max_size = "300KiB"
"""


def fabric_toml(*, streams: int = 2, link: str = "", schedules: str = "", chunk: str = "256KiB", extra_daemon: str = "") -> str:
    link = link or """
[[link]]
name = "wan"
sites = ["prod", "dr"]
bandwidth = "50MB"
latency = "20ms"
jitter = "2ms"
loss = 0.001
window = "1MiB"
stall_timeout = "20s"
"""
    return textwrap.dedent(f"""\
        sites = ["prod.toml", "dr.toml"]

        [daemon]
        state_dir = "state"
        seed = 7
        {extra_daemon}

        [encryption]
        chunk_size = "{chunk}"
        """) + link + textwrap.dedent(f"""
        [[policy]]
        name = "P"
        clients = ["IBMA", "IBMB"]

          [[policy.copy]]
          name = "primary"
          primary = true
          library = "prod/PVTL"

          [[policy.copy]]
          name = "dr"
          source = "primary"
          library = "dr/DVTL"
          streams = {streams}
        """) + schedules


def write_fabric(root: Path, *, prod: dict[str, Any] | None = None, dr: dict[str, Any] | None = None, **fabric: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "prod.toml").write_text(site_toml("prod", "prodma", "PVTL", "PR", clients=CLIENTS, **(prod or {})))
    (root / "dr.toml").write_text(site_toml("dr", "drma", "DVTL", "DR", **(dr or {})))
    path = root / "fabric.toml"
    path.write_text(fabric_toml(**fabric))
    return path


@pytest.fixture
def fabric_files(tmp_path: Path) -> Path:
    return write_fabric(tmp_path / "fabric")


@asynccontextmanager
async def open_fabric(path: Path, seed: int | None = None) -> AsyncIterator[Fabric]:
    """A fabric in this process, on whatever clock the test runs."""
    cfg = config_mod.load(path)
    cfg.daemon.state_dir.mkdir(parents=True, exist_ok=True)
    catalog = await Catalog.open(cfg.daemon.state_dir / "catalog.db")
    try:
        yield await build(cfg, catalog, FabricClock.starting_at(EPOCH), random.Random(cfg.daemon.seed if seed is None else seed))
    finally:
        await catalog.aclose()


@pytest.fixture
async def fabric(fabric_files: Path) -> AsyncIterator[Fabric]:
    """An in-process fabric. Tests that use it ask for ``autojump_clock`` themselves:
    pytest-trio only sees a clock the test function requests directly."""
    async with open_fabric(fabric_files) as fab:
        yield fab
