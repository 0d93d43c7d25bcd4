"""The real daemon, as a subprocess, driven through `vtlfabric ctl`."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.bench import write_bench_fabric
from tests.daemon import CLI, Daemon, raw_request
from tests.expect import restored_files
from tests.helpers import edit_config, expected, hetget_argv, write_fabric
from vtlfabric.jobs import partials

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parent.parent


@pytest.fixture
def daemon(tmp_path):
    path = write_fabric(tmp_path / "fabric")
    d = Daemon(path, tmp_path / "daemon.log").start()
    yield d
    try:
        assert d.stop() == 0, d.tail()
    finally:
        d.kill()


def test_backup_auxcopy_and_restore_at_dr_through_the_cli(daemon, tmp_path):
    status = daemon.ok("status")
    assert {c["id"] for c in status["copies"]} == {"P/primary", "P/dr"}

    backup = daemon.ok("backup", "IBMB", "--type", "full", "--wait")
    job_id = backup["result"]["job_id"]
    assert backup["status"] == "completed"
    aux = daemon.ok("auxcopy", "--wait")
    assert aux["status"] == "completed" and aux["result"]["jobs_copied"] == 1

    jobs = daemon.ok("jobs")
    assert isinstance(jobs, list) and len(jobs) == 1
    job = jobs[0]
    assert {k: job[k] for k in ("id", "client", "type", "status")} == {
        "id": job_id,
        "client": "IBMB",
        "type": "full",
        "status": "completed",
    }
    assert job["copies"] == {"P/primary": "available", "P/dr": "available"}

    out = tmp_path / "restored"
    restore = daemon.ok("restore", "--client", "IBMB", "--latest", "--copy", "P/dr", "--site", "dr", "--to", str(out), "--wait")
    assert restore["status"] == "completed" and restore["result"]["site"] == "dr"
    assert restored_files(out) == expected(daemon.config, "IBMB", "ALLUSR", job["generation"])

    human = daemon.ctl("jobs")
    assert human.returncode == 0 and "P/dr=available" in human.stdout


def test_bad_requests_get_clear_errors_and_the_daemon_keeps_running(daemon, tmp_path):
    bad = daemon.ctl("backup", "NOSUCH", "--wait")
    assert bad.returncode == 2 and "client" in bad.stderr and "NOSUCH" in bad.stderr
    bad = daemon.ctl("auxcopy", "--copy", "P/nope")
    assert bad.returncode == 2 and "P/nope" in bad.stderr
    bad = daemon.ctl("kill", "999")
    assert bad.returncode == 2 and "999" in bad.stderr
    bad = daemon.ctl("restore", "--client", "IBMA", "--latest", "--copy", "P/dr", "--to", str(tmp_path / "x"), "--wait")
    assert bad.returncode == 1 and "error" not in bad.stdout
    sock = daemon.config.parent / "state" / "control.sock"
    reply = raw_request(sock, b"this is not json\n")
    assert reply["ok"] is False and reply["code"] == 2 and "JSON" in reply["error"]
    assert raw_request(sock, b'{"cmd": "backup", "client": 7}\n')["error"].startswith("client:")
    assert raw_request(sock, b'{"cmd": "reboot"}\n')["error"].startswith("cmd: unknown command")
    assert raw_request(sock, b"[1, 2]\n")["ok"] is False
    assert daemon.ok("status")["pid"] == daemon.proc.pid
    assert sock.stat().st_mode & 0o777 == 0o600


def test_backing_up_a_client_in_no_policy_says_so(tmp_path):
    path = write_fabric(tmp_path / "fabric")
    prod = path.parent / "prod.toml"
    prod.write_text(
        prod.read_text() + '\n[[client]]\nname = "IBMX"\nseed = 3\n[[client.subclient]]\nname = "ALL"\ncontent = ["LIB:X"]\n'
    )
    d = Daemon(path, tmp_path / "daemon.log").start()
    try:
        bad = d.ctl("backup", "IBMX", "--wait")
        assert bad.returncode == 2 and "client 'IBMX' belongs to no storage policy" in bad.stderr, bad.stderr
        assert "internal error" not in bad.stderr
        assert d.stop() == 0
    finally:
        d.kill()


def test_a_second_daemon_on_the_same_state_dir_refuses(daemon, tmp_path):
    second = subprocess.run([*CLI, "run", "--config", str(daemon.config)], capture_output=True, text=True, timeout=30)
    assert second.returncode == 3 and "in use" in second.stderr
    assert daemon.ok("status")["pid"] == daemon.proc.pid


def test_bad_config_exits_2_naming_file_and_key(tmp_path):
    path = write_fabric(tmp_path)
    dr = tmp_path / "dr.toml"
    edit_config(dr, "drives = 2", "drives = 2\nspeed = 9")
    done = subprocess.run([*CLI, "run", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert str(dr) in done.stderr and "library[0].speed" in done.stderr and "unknown key" in done.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("grace, outcome", [("0s", "failed"), ("60s", "completed")])
def test_sigterm_lets_running_jobs_finish_within_the_grace_period(tmp_path, grace, outcome):
    path = write_fabric(tmp_path / "fabric", prod={"robot_time": "2s"}, extra_daemon=f'shutdown_grace = "{grace}"')
    d = Daemon(path, tmp_path / "daemon.log").start()
    try:
        assert d.ok("backup", "IBMB", "--type", "full")["status"] == "running"
        assert d.stop() == 0
        assert {"daemon.stopping", "daemon.stopped"} <= {e["event"] for e in d.events()}
        d.start()
        [job] = d.ok("jobs")
        assert job["status"] == outcome
        d.ok("auxcopy", "--wait")
        [job] = d.ok("jobs")
        assert (job["copies"].get("P/dr") == "available") == (outcome == "completed"), "a stopped job is never copied"
        assert d.stop() == 0
    finally:
        d.kill()


def test_a_job_killed_from_the_cli_is_never_copied(tmp_path):
    path = write_fabric(tmp_path / "fabric", prod={"robot_time": "2s"})  # a slow robot keeps the job running
    d = Daemon(path, tmp_path / "daemon.log").start()
    try:
        job_id = d.ok("backup", "IBMB", "--type", "full")["id"].split(":")[1]
        killed = d.ok("kill", job_id)
        assert killed == {"job_id": int(job_id), "status": "killed"}
        good = d.ok("backup", "IBMA", "--type", "full", "--wait")["result"]["job_id"]
        assert d.ok("auxcopy", "--wait")["result"]["jobs_copied"] == 1
        jobs = {j["id"]: j for j in d.ok("jobs")}
        assert jobs[int(job_id)]["status"] == "killed" and "P/dr" not in jobs[int(job_id)]["copies"]
        assert jobs[good]["copies"]["P/dr"] == "available"
        assert d.stop() == 0
    finally:
        d.kill()


def test_kill_9_mid_copy_then_restart_resumes_and_restores_exactly(tmp_path):
    slow = """
[[link]]
name = "wan"
sites = ["prod", "dr"]
bandwidth = "400KB"
latency = "5ms"
"""
    path = write_fabric(tmp_path / "fabric", link=slow, chunk="64KiB")
    d = Daemon(path, tmp_path / "daemon.log").start()
    try:
        job_id = d.ok("backup", "IBMB", "--type", "full", "--wait")["result"]["job_id"]
        d.ok("auxcopy")
        state = None
        for _ in range(200):
            [job] = d.ok("jobs")
            state = job["copies"]["P/dr"]
            if state == "partially_copied":
                break
            time.sleep(0.05)  # clock-ok
        assert state == "partially_copied"
        d.proc.kill()  # SIGKILL: no cleanup at all
        d.proc.wait()
        d.start()
        assert d.ok("auxcopy", "--wait")["result"]["jobs_copied"] == 1
        [job] = d.ok("jobs")
        assert job["copies"]["P/dr"] == "available"
        out = tmp_path / "restored"
        d.ok("restore", "--client", "IBMB", "--job", str(job_id), "--copy", "P/dr", "--to", str(out), "--wait")
        assert restored_files(out) == expected(path, "IBMB", "ALLUSR", job["generation"])
        assert d.ok("auxcopy", "--wait")["result"]["jobs_copied"] == 0, "never copied twice"
        assert d.stop() == 0
    finally:
        d.kill()


def test_a_restore_after_kill_9_mid_object_leaves_no_partial_file(tmp_path):
    (tmp_path / "fabric").mkdir()
    path = write_bench_fabric(tmp_path / "fabric", 256 * 2**20)  # objects of 4-12 MiB
    d = Daemon(path, tmp_path / "daemon.log").start()
    out = tmp_path / "restored"
    try:
        d.ok("backup", "IBMA", "--type", "full", "--wait")
        for _ in range(20):  # until the kill lands with an object half written
            d.ok("restore", "--client", "IBMA", "--latest", "--to", str(out))
            if _kill_mid_object(d.proc, out):
                break
        else:
            pytest.fail("no restore was ever caught mid-object")
        d.start()
        d.ok("restore", "--client", "IBMA", "--latest", "--to", str(out), "--wait")
        assert not list(out.rglob(f"*{partials.SUFFIX}")), "the killed restore's partial file is left"
        assert restored_files(out) == expected(path, "IBMA", "ALLUSR", d.ok("jobs")[0]["generation"])
        assert d.stop() == 0
    finally:
        d.kill()


def _kill_mid_object(proc: subprocess.Popen, out: Path) -> bool:
    """SIGKILL the daemon while a partial file is under ``out``: it is stopped first, so the
    partial seen is still there when it dies. False if none was seen (the restore, of
    under a second, finished first)."""
    deadline = time.monotonic() + 5  # clock-ok: test harness, real time
    while time.monotonic() < deadline:  # clock-ok
        if list(out.rglob(f"*{partials.SUFFIX}")):
            proc.send_signal(signal.SIGSTOP)
            if list(out.rglob(f"*{partials.SUFFIX}")):
                proc.kill()
                proc.wait()
                return True
            proc.send_signal(signal.SIGCONT)
    return False


def test_manual_selection_through_the_cli(daemon):
    full = daemon.ok("backup", "IBMA", "--type", "full", "--wait")["result"]["job_id"]
    other = daemon.ok("backup", "IBMB", "--type", "full", "--wait")["result"]["job_id"]
    chosen = daemon.ok("do-not-copy", str(other), "--copy", "P/dr")
    assert chosen["state"] == "do_not_copy" and chosen["who"]  # the kernel's word for who asked
    assert daemon.ok("auxcopy", "--wait")["result"]["jobs_copied"] == 1
    jobs = {j["id"]: j["copies"] for j in daemon.ok("jobs")}
    assert jobs[full]["P/dr"] == "available" and jobs[other]["P/dr"] == "do_not_copy"
    refused = daemon.ctl("pick", str(full), "--copy", "P/dr")
    assert refused.returncode == 1 and "already available" in refused.stderr
    assert daemon.ok("recopy", str(full), "--copy", "P/dr")["state"] == "to_be_copied"
    assert daemon.ok("pick", str(other), "--copy", "P/dr")["state"] == "to_be_copied"
    assert daemon.ok("auxcopy", "--wait")["result"]["jobs_copied"] == 2
    assert daemon.ok("mark-bad", str(full), "--copy", "P/dr")["state"] == "bad"
    bad = daemon.ctl("pick", "999", "--copy", "P/dr")
    assert bad.returncode == 2 and "999" in bad.stderr
    human = daemon.ctl("mark-bad", str(other), "--copy", "P/dr")
    assert human.returncode == 0 and f"job {other} on P/dr: bad (mark-bad by" in human.stdout


def test_suspend_resume_copies_and_age_through_the_cli(daemon):
    job_id = daemon.ok("backup", "IBMA", "--type", "full", "--wait")["result"]["job_id"]
    assert daemon.ok("suspend", "--copy", "P/dr")["suspended"] is True
    refused = daemon.ctl("auxcopy", "--copy", "P/dr", "--wait")
    assert refused.returncode == 1 and "suspended" in refused.stderr
    dr = next(c for c in daemon.ok("copies") if c["id"] == "P/dr")
    assert dr["suspended"] and dr["to_copy"] == 1 and dr["bytes_to_copy"] > 0
    resumed = daemon.ok("resume", "--copy", "P/dr", "--wait")
    assert resumed["result"]["jobs_copied"] == 1
    dr = next(c for c in daemon.ok("copies") if c["id"] == "P/dr")
    assert not dr["suspended"] and dr["states"] == {"available": 1} and dr["last_auxcopy"]
    aged = daemon.ok("age", "--wait")
    assert aged["status"] == "completed" and aged["result"]["aged"] == []  # no retention set: keeps everything
    assert daemon.ctl("age", "--policy", "NOPE").returncode == 2
    assert [j["copies"]["P/dr"] for j in daemon.ok("jobs") if j["id"] == job_id] == ["available"]


@pytest.mark.hercules
def test_hercules_reads_the_daemons_cartridges(daemon, tmp_path):
    if not shutil.which("hetget"):
        pytest.skip("hercules is not installed (.ci/debian-deps installs it)")
    job_id = daemon.ok("backup", "IBMA", "--type", "full", "--subclient", "IFS", "--wait")["result"]["job_id"]
    state = daemon.config.parent / "state"
    with sqlite3.connect(f"file:{state / 'catalog.db'}?mode=ro", uri=True) as db:
        segments = db.execute(
            "SELECT barcode, file_no, length FROM segments WHERE job_id = ? AND copy_id = 'P/primary' ORDER BY seq", (job_id,)
        ).fetchall()
    assert segments
    data = b""
    for barcode, file_no, length in segments:
        image = state / "sites" / "prod" / "libraries" / "PVTL" / f"{barcode}.aws"
        listing = subprocess.run(["hetmap", str(image)], capture_output=True, text=True)
        assert listing.returncode == 0 and barcode[:6] in listing.stdout
        out = tmp_path / f"{barcode}.{file_no}"
        got = subprocess.run(hetget_argv(image, out, file_no), capture_output=True, text=True)
        assert got.returncode == 0, got.stdout + got.stderr
        data += out.read_bytes()[:length]
    index = json.loads(next(state.rglob(f"indexcache/**/{job_id}.json")).read_text())
    for entry in index["entries"]:
        blob = data[entry["offset"] : entry["offset"] + entry["length"]]
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"], entry["path"]


def test_the_demo_config_backs_up_and_copies_to_dr_within_a_minute(tmp_path):
    """`make run` on the shipped config, real clock: a copied job within 60 s."""
    d = Daemon(
        ROOT / "config" / "vtlfabric.toml",
        tmp_path / "demo.log",
        args=("--state-dir", str(tmp_path / "state")),
        ctl_args=("--state-dir", str(tmp_path / "state")),
    )
    began = time.monotonic()  # clock-ok: this test measures real time on purpose
    d.start()
    try:
        while time.monotonic() - began < 60:  # clock-ok
            jobs = d.ok("jobs")
            if any(j["copies"].get("IBMI/dr") == "available" for j in jobs):
                break
            time.sleep(1)  # clock-ok
        else:
            pytest.fail(f"no job reached IBMI/dr within 60 s:\n{d.tail()}")
        assert d.stop() == 0
    finally:
        d.kill()


def _production(state: Path) -> tuple:
    with sqlite3.connect(f"file:{state / 'catalog.db'}?mode=ro", uri=True) as db:
        rows = (
            db.execute("SELECT * FROM jobs ORDER BY id").fetchall(),
            db.execute("SELECT * FROM job_copies WHERE copy_id = 'P/primary' ORDER BY job_id").fetchall(),
            db.execute("SELECT * FROM segments WHERE copy_id = 'P/primary' ORDER BY job_id, seq").fetchall(),
            db.execute("SELECT * FROM cartridges WHERE library = 'prod/PVTL' ORDER BY barcode").fetchall(),
        )
    images = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((state / "sites" / "prod").rglob("*.aws"))}
    return rows, images


def test_sigusr1_runs_one_dr_drill_and_production_is_untouched(tmp_path):
    path = write_fabric(tmp_path / "fabric", dr={"robot_time": "1s"})  # a drill long enough to signal it twice
    daemon = Daemon(path, tmp_path / "daemon.log").start()
    try:
        _drill_on_signal(daemon)
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def _drill_on_signal(daemon: Daemon) -> None:
    for client in ("IBMA", "IBMB"):
        daemon.ok("backup", client, "--type", "full", "--wait")
    daemon.ok("auxcopy", "--wait")
    state = daemon.config.parent / "state"
    before = _production(state)
    daemon.proc.send_signal(signal.SIGUSR1)
    drills = _wait_for_drill(daemon, lambda d: d and d[-1]["status"] == "running")
    daemon.proc.send_signal(signal.SIGUSR1)  # during the drill: logged and ignored
    drills = _wait_for_drill(daemon, lambda d: d and d[-1]["status"] != "running")
    assert len(drills) == 1 and drills[0]["status"] == "passed" and drills[0]["trigger"] == "signal SIGUSR1"
    report = json.loads(Path(drills[0]["report"]).read_text())
    assert {c["client"] for c in report["clients"]} == {"IBMA", "IBMB"}
    for c in report["clients"]:
        assert c["passed"] and c["site"] == "dr" and c["rpo"] == 0 and c["rto"] > 0 and c["objects"] > 0
    assert any(e["event"] == "drill.ignored" for e in daemon.events())
    assert _production(state) == before
    text = daemon.ctl("drill", "--wait")
    assert text.returncode == 0 and "passed" in text.stdout and "IBMA" in text.stdout


def _wait_for_drill(daemon: Daemon, done) -> list:
    for _ in range(600):
        assert daemon.ok("status")["pid"] == daemon.proc.pid, "the daemon keeps serving"
        drills = daemon.ok("drills")
        if done(drills):
            return drills
        time.sleep(0.05)  # clock-ok
    raise AssertionError(f"drill did not reach the expected state: {drills}")


def test_media_view_and_vaulting_through_the_cli(daemon, tmp_path):
    job_id = daemon.ok("backup", "IBMB", "--type", "full", "--wait")["result"]["job_id"]
    daemon.ok("auxcopy", "--wait")
    libraries = {lib["library"]: lib for lib in daemon.ok("media")}
    assert libraries["prod/PVTL"]["device"] == "TAPMLB01" and len(libraries["dr/DVTL"]["resources"]) == 2
    held = [v["volume"] for v in libraries["dr/DVTL"]["volumes"] if v["copy"] == "P/dr"]
    assert held and all(v["media"] == "LTO-8" for v in libraries["dr/DVTL"]["volumes"])

    daemon.ok("export", *held)
    out = tmp_path / "out"
    done = daemon.ctl("restore", "--job", str(job_id), "--copy", "P/dr", "--to", str(out), "--wait")
    assert done.returncode == 1 and f"is outside library dr/DVTL: import it with `vtlfabric ctl import {held[0]}`" in done.stderr
    text = daemon.ctl("media").stdout
    assert "*EJECTED" in text and "*OUTSIDE" in text
    daemon.ok("import", *held)
    daemon.ok("restore", "--job", str(job_id), "--copy", "P/dr", "--to", str(out), "--wait")
    bad = daemon.ctl("export", "NOSUCH01")
    assert bad.returncode == 2 and "no cartridge 'NOSUCH01'" in bad.stderr
