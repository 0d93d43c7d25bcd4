"""Any value of any TOML type at any one key of the shipped demo config: it loads, or it
fails with one ConfigError on one line naming the file and the key. Never a traceback.
And a config that loads is one the daemon can build a fabric from."""

from __future__ import annotations

import copy
import math
import os
import random
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import trio
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from tests.helpers import EPOCH
from vtlfabric import config, errors
from vtlfabric.catalog.db import Catalog
from vtlfabric.fabric import build
from vtlfabric.sim.clock import FabricClock

ROOT = Path(__file__).parent.parent
FABRIC = Path("config/vtlfabric.toml")  # as laid out in the repository, so its relative paths hold in a copy


def _files() -> dict[Path, dict[str, Any]]:
    """The fabric file and the site files it names, by path from the repository root."""
    fabric = tomllib.loads((ROOT / FABRIC).read_text())
    sites = [Path(os.path.normpath(FABRIC.parent / name)) for name in fabric["sites"]]
    return {FABRIC: fabric} | {p: tomllib.loads((ROOT / p).read_text()) for p in sites}


def _keys(value: dict[str, Any], path: tuple[Any, ...] = (), dotted: str = "") -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every key, with its path into the parsed TOML and its dotted name as ConfigError writes it."""
    for key, item in value.items():
        here = f"{dotted}.{key}" if dotted else key
        yield (*path, key), here
        if isinstance(item, dict):
            yield from _keys(item, (*path, key), here)
        elif isinstance(item, list) and item and all(isinstance(x, dict) for x in item):
            for i, table in enumerate(item):
                yield from _keys(table, (*path, key, i), f"{here}[{i}]")


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


FILES = _files()
KEYS = [(file, path, dotted) for file, doc in FILES.items() for path, dotted in _keys(doc)]
# Every name the demo defines: an edit that leaves a reference dangling (renaming a
# client, emptying a list of sites) is reported where the reference is, quoting it.
NAMES = sorted({_get(doc, path) for doc in FILES.values() for path, _ in _keys(doc) if path[-1] == "name"})

PLAUSIBLE = [
    "",
    " ",
    "0",
    "-1",
    "1",
    "1.5",
    "1e9",
    "inf",
    "nan",
    "max",
    "-1KiB",
    "0KiB",
    "2KiB",
    "60KiB",
    "64KiB",
    "1MiB",
    "16MiB",
    "1TB",
    "64TiB",
    "99999999999999999999TB",
    "0s",
    "0ms",
    "1ms",
    "1h",
    "3650d",
    "3651d",
    "9" * 400 + "s",
    "2 weeks",
    "0 days",
    "1001 months",
    "06:00",
    "25:00",
    "06:00+05:00",
    "2026-03-01",
    "2026-02-30",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-12:00",
    "PR0001L8-PR9999L8",
    "000001L8-999999L8",
    "LIB:",
    "LIB:X",
    "IFS:/x",
    "IFS:../x",
    "/",
    "..",
    "../..",
    "\x00",
    "a\nb",
    "x" * 5000,
    "localhost:0",
    "[::1]:99999",
    "0.0.0.0:1",
    "production",
    "dr/DRVTL",
    "IBMI/dr",
    "selective",
    "weekly",
    "friday",
    "full",
    "failover",
    "mlkem768-x25519",
]
_offsets = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))  # TOML offsets are whole minutes
SCALARS = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 1, 2, 64, 65, 512, 65535, 65536, 10**6, 2**31, 2**53, 2**63 - 1, 2**63, -(2**63), 10**30]),
    st.floats(),
    st.sampled_from([0.0, -0.0, 0.5, -1.5, 1e-300, 5e-324, 1e308, math.inf, -math.inf, math.nan]),
    st.booleans(),
    st.text(max_size=30),
    st.sampled_from(PLAUSIBLE),
    st.dates(),
    st.times(),
    st.datetimes(),
    st.datetimes(timezones=_offsets),
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6
)
# For the build: values of the key's own type, likely enough to load that building gets exercised.
_LIKE = {
    bool: st.booleans(),
    int: st.sampled_from([0, 1, 2, 64, 512, 9999, 10_000, 65535, 10**6, 2**53, 2**63 - 1]),
    float: st.sampled_from([0.0, 0.001, 0.3, 0.5, 1.0]),
    str: st.sampled_from(
        [
            "0",
            "1",
            "512",
            "2KiB",
            "60KiB",
            "64KiB",
            "16MiB",
            "64TiB",
            "1TB",
            "0s",
            "1ms",
            "1s",
            "1h",
            "3650d",
            "max",
            "x",
            "ab",
            "2 weeks",
            "3 cycles",
            "06:00",
            "2026-03-01",
            "localhost:0",
            "last",
            "monday",
            "selective",
            "weekly",
            "mlkem768-x25519",
            "chacha20-poly1305",
            "failover",
            "full",
            "LIB:X",
            "IFS:/x",
            "PR0001L8-PR0001L8",
            "XX0001L8-XX0002L8",
        ]
    ),
}


def _like(value: Any) -> st.SearchStrategy[Any]:
    if type(value) in _LIKE:
        return _LIKE[type(value)]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return st.lists(st.sampled_from([*value, "LIB:X", "IFS:/y", "x"]), max_size=3)
    return st.just(value)  # a table: its own keys are mutated one by one


LIKE_KEYS = st.sampled_from(KEYS).flatmap(lambda k: st.tuples(st.just(k), _like(_get(FILES[k[0]], k[1]))))


def _write(root: Path, file: Path, path: tuple[Any, ...], value: Any) -> None:
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, root / name)
    doc = copy.deepcopy(FILES[file])
    _get(doc, path[:-1])[path[-1]] = value
    (root / file).write_text(tomli_w.dumps(doc))


def _load(root: Path, file: Path, dotted: str, **overrides: Any) -> config.FabricConfig | None:
    try:
        config.load_daemon(root / FABRIC)  # what every `ctl` call reads to find the socket
    except config.ConfigError as e:
        assert len(str(e).splitlines()) == 1
    try:
        cfg = config.load(root / FABRIC, **overrides)
    except config.ConfigError as e:
        text = str(e)
        event("refused")
        note(f"ConfigError: {text}")
        assert len(text.splitlines()) == 1 and "\n" not in text
        assert e.file in {str(root / f) for f in FILES}, e.file
        leaf = dotted.rsplit(".", 1)[-1].split("[")[0]
        names_it = file.name in text and leaf in text
        dangling = any(f"'{name}" in text for name in NAMES)
        assert names_it or dangling, f"{text!r} names neither {file.name}: {dotted} nor a name it left dangling"
        return None
    event("loaded")
    return cfg


@given(key=st.sampled_from(KEYS), value=VALUES)
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_value_at_any_key_loads_or_names_file_and_key(key, value):
    file, path, dotted = key
    note(f"{file}: {dotted} = {value!r}")
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp), file, path, value)
        _load(Path(tmp), file, dotted)


@given(key_value=LIKE_KEYS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_config_that_loads_builds_a_fabric(key_value):
    (file, path, dotted), value = key_value
    note(f"{file}: {dotted} = {value!r}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root, file, path, value)
        # Never where the mutated config says: a state_dir of "/" must not write there.
        cfg = _load(root, file, dotted, state_dir=root / "fresh-state", socket=root / "control.sock")
        if cfg is not None:
            trio.run(_build, cfg)


async def _build(cfg: config.FabricConfig) -> None:
    cfg.daemon.state_dir.mkdir()
    catalog = await Catalog.open(cfg.daemon.state_dir / "catalog.db")
    try:
        await build(cfg, catalog, FabricClock.starting_at(EPOCH), random.Random(cfg.daemon.seed))
        event("built")
    except errors.FabricError as e:  # the daemon reports one at start-up as one line (cli.cmd_run)
        event(f"refused to build: {type(e).__name__}")
    finally:
        await catalog.aclose()


def test_the_demo_config_has_keys_in_every_file():
    assert {file for file, _, _ in KEYS} == set(FILES) and len(FILES) == 4
    assert any(dotted == "policy[0].copy[3].streams" for _, _, dotted in KEYS)


@pytest.mark.parametrize(
    "file, dotted, value, words",
    [
        ("sites/production.toml", "library[0].barcodes", -1, "expected a string"),
        ("sites/production.toml", "library[0].capacity", 10**30, "64-bit"),
        ("sites/production.toml", "library[0].capacity", "1000TiB", "between"),
        ("sites/production.toml", "library[0].slots", 0, "outside"),
        ("sites/production.toml", "client[0].subclient[0].max_size", "2GiB", "between"),
        ("sites/production.toml", "client[0].change_rate", 1e-9, "at least"),
        ("sites/dr.toml", "mediaagent.disk_library", "/etc", "directory name"),
        ("config/vtlfabric.toml", "link[0].bandwidth", 1e308, "between"),
        ("config/vtlfabric.toml", "link[0].latency", math.inf, "between"),
        ("config/vtlfabric.toml", "link[0].jitter", math.nan, "between"),
        ("config/vtlfabric.toml", "policy[0].copy[1].fallen_behind_age", 10**15, "between"),
        ("config/vtlfabric.toml", "policy[0].copy[2].every", "99999999 weeks", "rule"),
        ("config/vtlfabric.toml", "schedule[0].every", "1ms", "between"),
        ("config/vtlfabric.toml", "daemon.state_dir", "x" * 200, "socket"),
        ("config/vtlfabric.toml", "sites", ["\x00"], "file name"),
    ],
)
def test_absurd_values_are_refused_naming_file_and_key(tmp_path, file, dotted, value, words):
    _write(tmp_path, Path(file), _path_of(dotted), value)
    with pytest.raises(config.ConfigError) as info:
        config.load(tmp_path / FABRIC)
    assert info.value.file == str(tmp_path / file) and info.value.key.startswith(dotted), str(info.value)
    assert words in str(info.value)


def _path_of(dotted: str) -> tuple[Any, ...]:
    """``policy[0].copy[2].every`` as a path into the parsed TOML (the key may be one the demo leaves out)."""
    out: list[Any] = []
    for part in dotted.split("."):
        name, _, index = part.partition("[")
        out += [name, int(index[:-1])] if index else [name]
    return tuple(out)
