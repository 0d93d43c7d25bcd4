"""`scenario sweep`: many seeds in parallel processes, each replayable from its line; the
failures, the fault coverage and the invariants exercised; and a deliberate bug, patched
into the workers, caught by the sweep with a replay line that reproduces it."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from tests.daemon import CLI
from vtlfabric.scenario.shrink import ddmin, schedule_of
from vtlfabric.scenario.sweep import parse_seeds

SCENARIO = "config/scenarios/wan-partition.toml"
ROOT = Path(__file__).parent.parent

# A cartridge bug the drives-held-once invariant catches: a read that claims a cartridge
# without waiting for the drive that holds it. Patched into every worker (they start
# Python afresh) at startup.
NO_WAIT = """
import vtlfabric.tape.library as library

async def claim_for_read(self, barcode):
    self._busy_cartridges.add(barcode)  # the bug: it never waits for the drive that holds it

library.Library.claim_for_read = claim_for_read
"""


def sweep(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "scenario", "sweep", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def test_seeds_are_ranges_and_lists_each_seed_once():
    assert parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert parse_seeds("3, 7,5-8") == [3, 7, 5, 6, 8]
    for bad in ("x", "5-1", "-3", "1-"):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)


def test_a_sweep_reports_no_failure_its_fault_coverage_and_the_invariants_it_exercised():
    done = sweep(SCENARIO, "--seeds", "1-4", "--jobs", "2", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["seeds"] == 4 and result["failures"] == []
    assert result["fault_coverage"]["link partition"] == 4, "the fixed-time partition fires in every seed"
    assert result["invariants_exercised"]["drives-held-once"] > 0 and result["invariants_exercised"]["copied-once"] > 0


def test_a_deliberate_bug_in_the_workers_is_caught_and_its_replay_line_reproduces_it(tmp_path):
    patch = tmp_path / "patch"
    patch.mkdir()
    (patch / "sitecustomize.py").write_text(textwrap.dedent(NO_WAIT))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(patch), os.environ.get("PYTHONPATH", "")])}
    done = sweep(SCENARIO, "--seeds", "1-3", "--jobs", "2", "--json", "--shrink", str(tmp_path / "shrunk"), env=env)
    assert done.returncode == 1, done.stderr
    failures = json.loads(done.stdout)["failures"]
    assert failures and all(any("invariant drives-held-once broken" in f for f in x["failures"]) for x in failures)
    first = failures[0]
    shrunk = first["shrunk"]
    assert len(shrunk["faults"]) < shrunk["from"], "the bug needs fewer faults than the run had (it needs none)"
    rerun = subprocess.run(
        [*CLI, *shlex.split(shrunk["replay"])[1:]], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )
    assert rerun.returncode == 1 and "invariant drives-held-once broken" in rerun.stdout, "the shrunk file replays it"
    replay = shlex.split(first["replay"])
    report = tmp_path / "replayed.json"
    again = subprocess.run(
        [*CLI, *replay[1:], "--report", str(report)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )
    assert again.returncode == 1
    assert json.loads(report.read_text())["history_sha256"] == first["history_sha256"], "the replay line reproduces it"


def test_a_bad_seed_range_or_file_is_one_error():
    assert sweep(SCENARIO, "--seeds", "9-1").returncode == 2
    assert "seeds" in sweep(SCENARIO, "--seeds", "9-1").stderr
    bad = sweep("config/scenarios/nonesuch.toml", "--seeds", "1")
    assert bad.returncode == 2 and "nonesuch" in bad.stderr


@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1)))))
def test_ddmin_finds_exactly_the_faults_a_failure_needs(case):
    """A failure that needs a set of faults (any superset fails) shrinks to that set."""
    n, culprits = case
    faults = [{"at": f"{i}s", "target": f"link:l{i}", "action": "partition"} for i in range(n)]
    needed = {f"link:l{i}" for i in culprits}
    runs = []

    async def fails(subset: list[dict[str, str]]) -> bool:
        runs.append(len(subset))
        return needed <= {f["target"] for f in subset}

    smallest = trio.run(ddmin, faults, fails)
    assert {f["target"] for f in smallest} == needed and len(runs) <= 4 * n * n + 2


def test_the_schedule_of_a_run_is_its_fired_faults_at_fixed_times():
    report = {
        "faults": [
            {"at": 60.0, "target": "link:w", "action": "partition", "done": "x", "healed": 160.5},
            {"at": 70.0, "target": "library:a/B", "action": "offline", "refused": "no"},
            {"at": 80.0, "target": "drive:a/B#1", "action": "fail", "done": "x"},
        ]
    }
    assert schedule_of(report) == [
        {"at": "60.0s", "target": "link:w", "action": "partition", "heal": "100.5s"},
        {"at": "80.0s", "target": "drive:a/B#1", "action": "fail"},
    ]


@pytest.fixture
def dask_cluster(tmp_path):
    """A Dask scheduler and two single-threaded workers on loopback, as processes."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    procs = [
        subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], stderr=subprocess.DEVNULL
        )
    ]
    for name in ("w1", "w2"):
        worker = [*dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--name", name, "--no-dashboard"]
        procs.append(subprocess.Popen([*worker, "--local-directory", str(tmp_path / name)], cwd=ROOT, stderr=subprocess.DEVNULL))
    try:
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_sweep_runs_its_seeds_on_an_existing_dask_cluster(dask_cluster):
    done = sweep(SCENARIO, "--seeds", "1-20", "--cluster", dask_cluster, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["seeds"] == 20 and result["failures"] == []
    assert result["fault_coverage"]["link partition"] == 20, "every seed ran, on the cluster's workers"
    assert result["invariants_exercised"]["drives-held-once"] > 0


def test_a_cluster_that_cannot_be_reached_is_one_error():
    bad = sweep(
        SCENARIO,
        "--seeds",
        "1",
        "--cluster",
        f"tcp://127.0.0.1:{_free_port()}",
        env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"},
    )
    assert bad.returncode == 2 and "cluster tcp://127.0.0.1" in bad.stderr


async def test_a_time_boxed_sweep_goes_on_past_its_seeds_until_the_box_is_up(monkeypatch, autojump_clock):
    from vtlfabric.scenario import sweep as sweep_mod

    async def ten_seconds_a_seed(file: str, seed: int) -> sweep_mod.SeedOutcome:
        await trio.sleep(10)
        return sweep_mod.SeedOutcome(seed, True, (), f"replay {seed}", ("link partition",), ())

    monkeypatch.setattr(sweep_mod, "run_seed", ten_seconds_a_seed)
    monkeypatch.setattr(sweep_mod, "fault_kinds", lambda file: {"link partition"})
    boxed = await sweep_mod.sweep("x.toml", [7, 8, 9], jobs=2, time_box=45)
    # Two at a time, ten seconds each: 7 and 8 start at 0, 9 and 10 at 10, 11 and 12 at
    # 20, 13 and 14 at 30, 15 and 16 at 40; at 50 the box is up.
    assert boxed.seeds == 10 and boxed.passed and boxed.fault_coverage == {"link partition": 10}
    plain = await sweep_mod.sweep("x.toml", [7, 8, 9], jobs=2)
    assert plain.seeds == 3
    ran: list[int] = []
    monkeypatch.setattr(sweep_mod, "run_seed", lambda file, seed: ran.append(seed) or ten_seconds_a_seed(file, seed))
    await sweep_mod.sweep("x.toml", [900, 7, 8], jobs=2, time_box=25)
    assert ran == [900, 7, 8, 9, 10, 11], "a regression seed first, then on from the last seed given"


def test_a_kind_that_never_fired_fails_the_sweep():
    from vtlfabric.scenario import sweep as sweep_mod

    outcome = sweep_mod.SeedOutcome(1, True, (), "replay", ("link partition",), ())
    result = sweep_mod.SweepResult.of(SCENARIO, [outcome])
    assert result.never_fired == ("link partition-a-b",) and not result.passed
    assert "NEVER FIRED (untested): link partition-a-b" in result.summary()
    assert result.to_json()["never_fired"] == ["link partition-a-b"]


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.parametrize("where", ["here", "in trio"])
async def test_a_seed_that_hangs_is_killed_with_all_it_started_and_fails(monkeypatch, tmp_path, where):
    from vtlfabric.scenario import sweep as sweep_mod

    started = tmp_path / "started.pid"
    sleeper = "import time; time.sleep(600)"
    hang = [
        sys.executable,
        "-c",
        f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {sleeper!r}]); "
        f"open({str(started)!r}, 'w').write(str(p.pid)); time.sleep(600)",
    ]
    monkeypatch.setattr(sweep_mod, "_command", lambda file, seed, report: hang)
    with trio.fail_after(30):  # a grandchild left alive holds the run's stderr open: it would wait for it
        if where == "here":
            report = await trio.to_thread.run_sync(sweep_mod.run_seed_here, "x.toml", 5, 3.0, abandon_on_cancel=True)
        else:
            report = await sweep_mod.report_of("x.toml", 5, timeout=3.0)
    assert report["expect"]["failures"] == ["the run took more than 3 s of wall time (hung?): killed"]
    assert report["replay"] == "vtlfabric scenario run x.toml --seed 5"
    grandchild = int(started.read_text())
    with trio.fail_after(10):
        while _alive(grandchild):
            await trio.sleep(0.1)
