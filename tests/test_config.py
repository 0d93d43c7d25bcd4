"""Bad config fails at start with one message naming the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import edit_config, write_fabric
from vtlfabric import config, errors
from vtlfabric.units import parse_duration, parse_size

SHIPPED = Path(__file__).parent.parent / "config" / "vtlfabric.toml"


def test_shipped_demo_config_loads():
    cfg = config.load(SHIPPED)
    assert [s.name for s in cfg.sites] == ["production", "dr", "dr2"]
    assert {c.id for c in cfg.copies()} == {"IBMI/primary", "IBMI/dr", "IBMI/vault", "IBMI/dr2"}
    assert cfg.copy("IBMI/vault").rules.frequency == "weekly" and cfg.copy("IBMI/vault").source == "dr"
    assert cfg.copy("IBMI/dr").site == "dr"
    assert cfg.link_between("dr", "production").name == "prod-dr"


def test_link_segment_size_is_a_key(tmp_path):
    path = write_fabric(tmp_path)
    [default] = config.load(path).links
    edit_config(tmp_path / "fabric.toml", 'window = "1MiB"', 'window = "1MiB"\nmss = "256KiB"')
    [link] = config.load(path).links
    assert (default.mss, link.mss) == (64 * 2**10, 256 * 2**10)


def _error(path: Path) -> config.ConfigError:
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    return info.value


@pytest.mark.parametrize(
    "file, old, new, key, words",
    [
        ("fabric.toml", "[encryption]", "[encryption]\nciphr = 1", "encryption.ciphr", "unknown key"),
        ("fabric.toml", "seed = 7", 'seed = "seven"', "daemon.seed", "int"),
        ("fabric.toml", 'library = "dr/DVTL"', 'library = "dr/NOPE"', "library", "dr/NOPE"),
        ("fabric.toml", 'source = "primary"', 'source = "ghost"', "source", "ghost"),
        ("dr.toml", 'barcodes = "DR0001L8-DR0012L8"', 'barcodes = "PR0010L8-PR0020L8"', "barcodes", "overlap"),
        ("prod.toml", 'name = "IBMB"', 'name = "IBMA"', "client", "already defined"),
        ("prod.toml", 'capacity = "4MiB"', 'capacity = "lots"', "capacity", "size"),
        ("fabric.toml", 'bandwidth = "50MB"', "bandwidth = 0", "bandwidth", "positive"),
        ("fabric.toml", 'chunk_size = "256KiB"', 'chunk_size = "1KiB"', "chunk_size", "between"),
        ("fabric.toml", "[encryption]", '[metrics]\nlisten = "0.0.0.0:9464"\n[encryption]', "metrics.listen", "not a loopback"),
        ("fabric.toml", "[encryption]", '[metrics]\nlisten = "9464"\n[encryption]', "metrics.listen", "HOST:PORT"),
        ("fabric.toml", "seed = 7", "seed = 7\nsocket_group = 5", "daemon.socket_group", "str"),
        # Values of the wrong type or absurd size: each was a traceback, or a daemon that broke later.
        ("prod.toml", 'barcodes = "PR0001L8-PR0012L8"', "barcodes = -1", "library[0].barcodes", "expected a string"),
        ("prod.toml", 'barcodes = "PR0001L8-PR0012L8"', 'barcodes = "000001L8-999999L8"', "library[0].barcodes", "do not fit"),
        ("prod.toml", 'capacity = "4MiB"', "capacity = 1000000000000000000000000000000", "library[0].capacity", "64-bit"),
        ("prod.toml", 'capacity = "4MiB"', 'capacity = "100TiB"', "library[0].capacity", "between"),
        ("prod.toml", 'robot_time = "200ms"', "robot_time = nan", "library[0].robot_time", "between"),
        ("prod.toml", 'change_every = "1h"', "change_every = 1e-300", "client[0].change_every", "between"),
        ("prod.toml", "change_rate = 0.3", "change_rate = 1e-9", "client[0].change_rate", "at least"),
        ("prod.toml", "objects = 6", "objects = 100000", "client[0].subclient[0].objects", "more than"),
        ("prod.toml", 'max_size = "200KiB"', 'max_size = "5GiB"', "client[0].subclient[0].max_size", "between"),
        ("prod.toml", 'content = ["IFS:/home/app"]', 'content = ["IFS:/home/../../etc"]', "subclient[1].content[0]", "IFS:/"),
        ("prod.toml", 'name = "prodma"', 'name = "prodma"\ndisk_library = "/etc"', "mediaagent.disk_library", "directory name"),
        ("fabric.toml", 'bandwidth = "50MB"', "bandwidth = 1e308", "link[0].bandwidth", "between"),
        ("fabric.toml", 'latency = "20ms"', "latency = inf", "link[0].latency", "between"),
        ("fabric.toml", 'window = "1MiB"', "window = 0", "link[0].window", "positive"),
        ("fabric.toml", 'window = "1MiB"', 'window = "1MiB"\nmss = 100', "link[0].mss", "between"),
        ("fabric.toml", "seed = 7", "seed = 7\nshutdown_grace = inf", "daemon.shutdown_grace", "between"),
        ("fabric.toml", 'state_dir = "state"', 'state_dir = "a\\u0000b"', "daemon.state_dir", "NUL"),
        ("fabric.toml", "[encryption]", '[metrics]\nlisten = "127.0.0.1:\u00b2"\n[encryption]', "metrics.listen", "HOST:PORT"),
        ("fabric.toml", 'sites = ["prod.toml", "dr.toml"]', 'sites = ["prod.toml", "nope.toml"]', "sites[1]", "does not exist"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, file, old, new, key, words):
    path = write_fabric(tmp_path)
    edit_config(tmp_path / file, old, new)
    err = _error(path)
    assert err.file == str(tmp_path / file)
    assert key in err.key
    assert words.lower() in str(err).lower()
    assert not (tmp_path / "state").exists(), "a bad config touches nothing"


def test_metrics_listen_on_loopback(tmp_path):
    path = write_fabric(tmp_path)
    edit_config(path, "[encryption]", '[metrics]\nlisten = "[::1]:9100"\n[encryption]')
    assert config.load(path).metrics == config.MetricsSpec("::1", 9100)
    assert config.load(SHIPPED).metrics == config.MetricsSpec("127.0.0.1", 9464)


def test_syntax_error_names_file(tmp_path):
    path = write_fabric(tmp_path)
    (tmp_path / "dr.toml").write_text("name = \n")
    err = _error(path)
    assert err.file == str(tmp_path / "dr.toml")


def test_missing_site_file(tmp_path):
    path = write_fabric(tmp_path)
    (tmp_path / "dr.toml").unlink()
    err = _error(path)
    assert "dr.toml" in str(err) and "does not exist" in str(err)


def test_state_dir_override(tmp_path):
    cfg = config.load(write_fabric(tmp_path), state_dir=tmp_path / "elsewhere")
    assert cfg.daemon.state_dir == tmp_path / "elsewhere"


def test_barcode_range():
    assert config.barcode_range("PR0008L8-PR0011L8") == ("PR0008L8", "PR0009L8", "PR0010L8", "PR0011L8")
    for bad in ("PR0008L8-PR0001L8", "PR0001L8-XX0002L8", "PR1", "PR0001L8\n", -1):
        with pytest.raises(ValueError):
            config.barcode_range(bad)
    with pytest.raises(ValueError, match="999999 cartridges do not fit in 24 slots"):
        config.barcode_range("000001L8-999999L8", 24)  # refused before a million barcodes are listed


@given(st.integers(0, 10**12), st.sampled_from(["", "B", "KiB", "MiB", "GiB", "KB", "MB"]))
def test_parse_size_round_numbers(n, unit):
    factor = {"": 1, "B": 1, "KiB": 1024, "MiB": 2**20, "GiB": 2**30, "KB": 1000, "MB": 10**6}[unit]
    assert parse_size(f"{n}{unit}") == n * factor


@given(st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_parse_duration(n, unit):
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{n}{unit}") == pytest.approx(n * factor)


@given(st.text(max_size=12).filter(lambda s: not re.fullmatch(r"\s*\d+(\.\d+)?\s*[a-zA-Z]*\s*", s)))
def test_parse_size_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_lookups_by_name_raise_not_found_naming_what_is_missing(tmp_path):
    cfg = config.load(write_fabric(tmp_path))
    for lookup, name in (
        (cfg.site, "nowhere"),
        (cfg.library, "prod/NOPE"),
        (cfg.client, "NOSUCH"),
        (cfg.copy, "P/nope"),
        (cfg.policy, "Q"),
        (cfg.client("IBMA").subclient, "SYSBAS"),
    ):
        with pytest.raises(errors.NotFound, match=repr(name)):
            lookup(name)
    with pytest.raises(errors.NotFound, match="client 'NOSUCH' belongs to no storage policy"):
        cfg.policy_of("NOSUCH")
    assert cfg.policy_of("IBMA").primary.name == "primary"


def test_an_error_is_one_line_even_for_a_key_with_a_newline(tmp_path):
    path = write_fabric(tmp_path)
    edit_config(path, "[encryption]", '[encryption]\n"a\\nb" = 1')
    err = _error(path)
    assert err.key == "encryption.a\nb" and len(str(err).splitlines()) == 1 and "unknown key" in str(err)


def test_config_error_is_a_bad_request():
    err = config.ConfigError("f.toml", "daemon.seed", "expected an integer")
    assert isinstance(err, errors.BadRequest) and errors.exit_code(err) == errors.EXIT_BAD
    assert str(err) == "f.toml: daemon.seed: expected an integer"
