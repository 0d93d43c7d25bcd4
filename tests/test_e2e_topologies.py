"""A cascade (primary -> DR -> vault) and a fan-out (primary -> two DR sites), through the real daemon."""

from __future__ import annotations

import textwrap

import pytest

from tests.daemon import Daemon
from tests.expect import restored_files
from tests.helpers import CLIENTS, VAULT_LIBRARY, expected, site_toml

pytestmark = pytest.mark.e2e

FABRIC = textwrap.dedent("""\
    sites = ["prod.toml", "dr.toml", "dr2.toml"]

    [daemon]
    state_dir = "state"
    seed = 11

    [encryption]
    chunk_size = "256KiB"
    kem = "mlkem768-x25519"
    aead = "chacha20-poly1305"

    [[link]]
    name = "prod-dr"
    sites = ["prod", "dr"]
    bandwidth = "40MB"
    latency = "10ms"

    [[link]]
    name = "prod-dr2"
    sites = ["prod", "dr2"]
    bandwidth = "20MB"
    latency = "40ms"

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
      streams = 2

      [[policy.copy]]
      name = "vault"
      kind = "selective"
      frequency = "monthly"
      pick = "first"
      source = "dr"
      library = "dr/VAULT"

      [[policy.copy]]
      name = "dr2"
      source = "primary"
      library = "dr2/D2VTL"
      streams = 3
    """)


@pytest.fixture(scope="module")
def fabric(tmp_path_factory):
    root = tmp_path_factory.mktemp("topologies")
    (root / "prod.toml").write_text(site_toml("prod", "prodma", "PVTL", "PR", clients=CLIENTS))
    (root / "dr.toml").write_text(site_toml("dr", "drma", "DVTL", "DR") + VAULT_LIBRARY)
    (root / "dr2.toml").write_text(site_toml("dr2", "dr2ma", "D2VTL", "DS"))
    (root / "fabric.toml").write_text(FABRIC)
    d = Daemon(root / "fabric.toml", root / "daemon.log").start()
    d.ok("backup", "IBMA", "--type", "full", "--subclient", "ALLUSR", "--wait")
    d.ok("backup", "IBMA", "--type", "incremental", "--subclient", "ALLUSR", "--wait")
    d.ok("backup", "IBMB", "--type", "full", "--wait")
    run = d.ok("auxcopy", "--wait")["result"]
    assert [c["copy"] for c in run["copies"]] == ["P/dr", "P/dr2", "P/vault"], "each copy after its source"
    yield d
    try:
        assert d.stop() == 0
    finally:
        d.kill()


def test_a_cascade_ends_in_a_verified_restore_from_the_vault(fabric, tmp_path):
    jobs = fabric.ok("jobs")
    fulls = {j["id"] for j in jobs if j["type"] == "full"}
    assert {j["id"] for j in jobs if j["copies"].get("P/vault") == "available"} == fulls, "a selective copy holds fulls only"
    assert all(j["copies"]["P/dr"] == "available" for j in jobs)
    full_a = next(j for j in jobs if j["client"] == "IBMA" and j["type"] == "full")
    out = tmp_path / "vault"
    done = fabric.ok("restore", "--client", "IBMA", "--latest", "--copy", "P/vault", "--site", "dr", "--to", str(out), "--wait")
    assert done["result"]["jobs"] == [full_a["id"]], "the vault's latest point is the full it holds"
    assert restored_files(out) == expected(fabric.config, "IBMA", "ALLUSR", full_a["generation"])


def test_a_fan_out_ends_in_a_verified_restore_from_the_second_dr_site(fabric, tmp_path):
    jobs = fabric.ok("jobs")
    assert all(j["copies"]["P/dr2"] == "available" for j in jobs)
    newest = max((j for j in jobs if j["client"] == "IBMA"), key=lambda j: j["id"])
    out = tmp_path / "dr2"
    done = fabric.ok("restore", "--client", "IBMA", "--latest", "--copy", "P/dr2", "--site", "dr2", "--to", str(out), "--wait")
    assert done["result"]["site"] == "dr2" and len(done["result"]["jobs"]) == 2
    assert restored_files(out) == expected(fabric.config, "IBMA", "ALLUSR", newest["generation"])
