"""kill -9 of the daemon: live through `ctl fault daemon:self kill-9`, and in a scenario,
where each life of the world is a process of its own that the kill really ends."""

from __future__ import annotations

import json
import signal

import pytest

from tests.daemon import Daemon
from tests.helpers import write_fabric
from vtlfabric.scenario import run as run_mod
from vtlfabric.scenario import spec

pytestmark = pytest.mark.e2e
DAY, HOUR = 86400.0, 3600.0


def test_ctl_fault_kill_9_kills_the_daemon_and_a_restart_finds_what_it_committed(tmp_path):
    d = Daemon(write_fabric(tmp_path / "fabric"), tmp_path / "daemon.log").start()
    try:
        done = d.ok("backup", "IBMB", "--type", "full", "--wait")
        killed = d.ctl("fault", "daemon:self", "kill-9")
        assert killed.returncode == 0 and "kill -9 of the daemon (pid" in killed.stdout, killed.stderr
        assert d.proc.wait(30) == -signal.SIGKILL
        assert any(e.get("event") == "fault.injected" and e.get("target") == "daemon:self" for e in d.events())
        d.start()  # as systemd would (Restart=on-failure)
        jobs = d.ok("jobs")
        assert [(j["id"], j["status"]) for j in jobs] == [(done["result"]["job_id"], "completed")]
        refused = d.ctl("fault", "daemon:self", "restart")
        assert refused.returncode == 2 and "restarted by systemd" in refused.stderr + refused.stdout
        assert d.stop() == 0
    finally:
        d.kill()


def test_a_scenario_that_kills_its_daemon_lives_on_in_new_processes_and_loses_nothing(tmp_path):
    scenario = spec.load("config/scenarios/daemon-kill.toml")
    history = tmp_path / "history.jsonl"
    report = run_mod.run(scenario, scenario.seed, history_file=history)
    assert report["expect"]["passed"], report["expect"]["failures"]
    kills = [f for f in report["faults"] if f["target"] == "daemon:self"]
    assert len(kills) >= 3 and report["lives"] == len(kills) + 1, "each kill ended a process; a new one went on"
    assert all(f["healed"] - f["at"] == pytest.approx(f["heal_at"] - f["at"]) for f in kills), "back after its downtime"

    events = [json.loads(line) for line in history.read_text().splitlines()]
    assert sum(e["event"] == "daemon.ready" for e in events) == report["lives"]
    # The schedules keep their times of day across the restarts: fulls at 22:00, the
    # incrementals at 23:00 (47h), whatever time each life began.
    starts = {round(e["t"] % DAY / HOUR, 2) for e in events if e["event"] == "backup.started"}
    assert starts == {22.0, 23.0}
    # The incrementals under the kill at 47h01m failed and were never copied; every other job was.
    failed = {e["job_id"] for e in events if e["event"] == "backup.failed"}
    copied = {e["job_id"] for e in events if e["event"] == "auxcopy.job_available" and e["copy"] == "IBMI/dr"}
    started = {e["job_id"] for e in events if e["event"] == "backup.started"}
    assert failed and not failed & copied and copied == started - failed
