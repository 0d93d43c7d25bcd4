"""The daemon as systemd runs it: the notify protocol, SIGHUP reloads, SIGUSR2 status dumps."""

from __future__ import annotations

import grp
import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.daemon import CLI, Daemon, raw_request
from tests.helpers import edit_config, edited, fabric_toml, wait_for, write_fabric

pytestmark = pytest.mark.e2e
WATCHDOG_USEC = 1_000_000  # a ping every 0.5 s


class FakeSystemd:
    """A NOTIFY_SOCKET: the datagrams the daemon sends, as (arrival time, fields), read by a
    thread as they arrive, so arrival times are send times whatever the test is doing."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.path = path
        self.messages: list[tuple[float, dict[str, str]]] = []
        self.closing = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while not self.closing.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append((time.monotonic(), fields))  # clock-ok: a real daemon, real time

    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": str(self.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}

    def wait_for(self, key: str, after: int = 0, seconds: float = 20.0) -> dict[str, str]:
        end = time.monotonic() + seconds  # clock-ok
        while time.monotonic() < end:  # clock-ok
            found = [fields for _, fields in self.messages[after:] if key in fields]
            if found:
                return found[0]
            time.sleep(0.05)  # clock-ok
        raise AssertionError(f"no {key} in {self.messages}")

    def keys(self) -> list[str]:
        return [k for _, fields in self.messages for k in fields if k in ("READY", "RELOADING", "STOPPING")]

    def close(self) -> None:
        self.closing.set()
        self.reader.join()
        self.sock.close()


def test_notify_protocol_ready_status_watchdog_reload_and_stop(tmp_path):
    systemd = FakeSystemd(tmp_path / "notify.sock")
    d = Daemon(write_fabric(tmp_path / "fabric"), tmp_path / "daemon.log", env=systemd.env()).start()
    try:
        ready = systemd.wait_for("READY")
        assert ready["READY"] == "1" and "running" in ready["STATUS"] and "last aux copy" in ready["STATUS"]
        d.ok("backup", "IBMB", "--type", "full", "--wait")
        d.ctl("auxcopy")  # load while we watch the pings
        time.sleep(4.0)  # clock-ok
        pings = [t for t, f in systemd.messages if "WATCHDOG" in f]
        assert len(pings) >= 5, systemd.messages
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < WATCHDOG_USEC / 1e6, f"a ping came late under load: {gaps}"

        seen = len(systemd.messages)
        d.proc.send_signal(signal.SIGHUP)
        reloading = systemd.wait_for("RELOADING", seen)
        assert 0 < int(reloading["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000  # clock-ok
        systemd.wait_for("READY", seen)
        assert d.stop() == 0
        time.sleep(0.3)  # clock-ok
        assert systemd.keys() == ["READY", "RELOADING", "READY", "STOPPING"]
    finally:
        d.kill()
        systemd.close()


def test_sighup_applies_a_new_config_and_refuses_a_bad_one(tmp_path):
    path = write_fabric(tmp_path / "fabric")
    d = Daemon(path, tmp_path / "daemon.log").start()
    try:
        assert d.ok("status")["links"][0]["name"] == "wan"
        schedule = '\n[[schedule]]\nname = "nightly"\nbackup = ["IBMB"]\ntype = "full"\nstart = "0s"\nevery = "1h"\n'
        path.write_text(edited(fabric_toml(schedules=schedule), 'bandwidth = "50MB"', 'bandwidth = "5MB"'))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(e["event"] == "config.reloaded" for e in d.events()), d)
        reloaded = next(e for e in d.events() if e["event"] == "config.reloaded")
        assert set(reloaded["changed"]) >= {"schedules", "links"}
        wait_until(lambda: any(j["client"] == "IBMB" and j["type"] == "full" for j in d.ok("jobs")), d)  # the new schedule runs

        edit_config(path, 'every = "1h"', 'every = "soon"')
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(e["event"] == "config.reload_refused" for e in d.events()), d)
        refused = next(e for e in d.events() if e["event"] == "config.reload_refused")
        assert "fabric.toml" in refused["error"] and "every" in refused["error"]
        assert d.ok("status")["pid"] == d.proc.pid, "the daemon serves on, on the old config"

        edit_config(tmp_path / "fabric" / "dr.toml", "drives = 2", "drives = 3")
        path.write_text(fabric_toml())
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: sum(e["event"] == "config.reload_refused" for e in d.events()) == 2, d)
        assert "needs a restart" in [e for e in d.events() if e["event"] == "config.reload_refused"][-1]["error"]

        d.proc.send_signal(signal.SIGUSR2)
        wait_until(lambda: any(e["event"] == "daemon.status" for e in d.events()), d)
        dump = next(e for e in d.events() if e["event"] == "daemon.status")
        assert {"running", "jobs", "copies", "links", "libraries"} <= set(dump)
        assert d.stop() == 0
    finally:
        d.kill()


def wait_until(predicate, d: Daemon, seconds: float = 20.0) -> None:
    wait_for("the daemon", predicate, timeout=seconds, interval=0.1, explain=d.tail)


def test_ctl_events_follow_prints_job_copy_fault_and_drill_events_as_they_happen(tmp_path):
    d = Daemon(write_fabric(tmp_path / "fabric"), tmp_path / "daemon.log").start()
    follow = subprocess.Popen([*CLI, "ctl", "events", "--follow", "--config", str(d.config)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # clock-ok: let the follower connect
        d.ok("backup", "IBMB", "--type", "full", "--wait")
        d.ok("auxcopy", "--wait")
        d.ok("fault", "link:wan", "partition")
        assert d.ctl("drill", "--wait").returncode == 1  # IBMA has no backup: the drill fails, and says so
        seen: list[dict] = []
        end = time.monotonic() + 20  # clock-ok
        while time.monotonic() < end and "drill.failed" not in [e["event"] for e in seen]:  # clock-ok
            seen.append(json.loads(follow.stdout.readline()))
        names = [e["event"] for e in seen]
        for expected in (
            "backup.started",
            "backup.completed",
            "auxcopy.job_available",
            "fault.injected",
            "drill.started",
            "drill.client_failed",
        ):
            assert expected in names, names
        assert all({"event", "level", "timestamp"} <= set(e) for e in seen)
        done = next(e for e in seen if e["event"] == "backup.completed")
        assert done["client"] == "IBMB" and isinstance(done["job_id"], int)
        assert not any(e["event"].startswith("control.") for e in seen), "only fabric events"

        recent = d.ctl("events")
        assert recent.returncode == 0 and "backup.completed" in recent.stdout
        assert all(json.loads(line) for line in recent.stdout.splitlines())
        assert d.stop() == 0
        assert follow.wait(10) == 0, "the stream ends when the daemon stops"
    finally:
        follow.kill()
        d.kill()


def test_under_systemd_logs_are_journal_lines_with_priorities(tmp_path):
    log = tmp_path / "daemon.log"
    config = write_fabric(tmp_path / "fabric")
    with open(log, "wb") as out:
        st = os.fstat(out.fileno())
        proc = subprocess.Popen(
            [*CLI, "run", "--config", str(config)],
            stdout=out,
            stderr=out,
            env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
        )
    try:
        d = Daemon(config, log, proc=proc)
        wait_until(lambda: "daemon.ready" in log.read_text(), d)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        lines = log.read_text().splitlines()
        ready = next(line for line in lines if "daemon.ready" in line)
        assert ready.startswith("<6>daemon.ready ") and "pid=" in ready and "timestamp" not in ready
    finally:
        proc.kill()


def test_prometheus_metrics_pass_promtool_and_cover_jobs_copies_libraries_wan_and_drills(tmp_path):
    path = write_fabric(tmp_path / "fabric", extra_daemon="")
    path.write_text(path.read_text() + '\n[metrics]\nlisten = "127.0.0.1:0"\n')
    d = Daemon(path, tmp_path / "daemon.log").start()
    try:
        d.ok("backup", "IBMB", "--type", "full", "--wait")
        d.ok("backup", "IBMA", "--type", "full", "--wait")
        d.ok("auxcopy", "--wait")
        d.ok("drill", "--wait")
        address = d.ok("status")["endpoints"]["metrics"]
        assert address.startswith("127.0.0.1:")
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain; version=")
            text = reply.read().decode()
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        samples = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        assert samples['vtlfabric_jobs{status="completed",type="full"}'] == 2
        assert samples['vtlfabric_copy_lag_jobs{copy="P/dr"}'] == 0 and samples['vtlfabric_copy_primary{copy="P/primary"}'] == 1
        assert (
            samples['vtlfabric_auxcopy_copied_bytes_total{copy="P/dr"}']
            == samples['vtlfabric_backup_bytes_total{policy="P"}']
            > 0
        )
        assert samples['vtlfabric_wan_goodput_bytes_total{direction="prod->dr",link="wan"}'] > 0
        assert 'vtlfabric_wan_retransmits_total{link="wan"}' in samples
        assert samples['vtlfabric_library_drives{library="dr/DVTL"}'] == 2
        assert samples["vtlfabric_drill_passed"] == 1 and samples['vtlfabric_drill_client_passed{client="IBMA",copy="P/dr"}'] == 1
        assert 'vtlfabric_drill_rto_seconds{client="IBMB",copy="P/dr"}' in samples

        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://{address}/other", timeout=10)
        host, port = address.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as junk:
            junk.sendall(b"\x00\x01 not http\r\n\r\n")
            assert b"400" in junk.recv(1024)
        assert d.ok("status")["pid"] == d.proc.pid
        assert d.stop() == 0
    finally:
        d.kill()


ASK_STATUS = """
import json, socket, sys
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
    s.connect(sys.argv[1])
    s.sendall(b'{"cmd": "status"}\\n')
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
print(data.decode())
"""


def as_nobody(sock: Path) -> dict:
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", ASK_STATUS, str(sock)],
        user="nobody",
        group="nogroup",
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


SYSTEM_PYTHON = "/usr/bin/python3"  # nobody may not reach this checkout's interpreter


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON), reason="needs root and /usr/bin/python3 to connect as nobody"
)
@pytest.mark.parametrize("group", [None, "nogroup"])
def test_the_control_socket_serves_its_owner_and_its_group_only(tmp_path, group):
    shared = Path(tempfile.mkdtemp(prefix="vtlfabric-sock-"))  # a directory others can reach
    shared.chmod(0o755)
    sock = shared / "control.sock"
    path = write_fabric(tmp_path / "fabric", extra_daemon=f'socket_group = "{group}"' if group else "")
    d = Daemon(path, tmp_path / "daemon.log", args=("--socket", str(sock)), ctl_args=("--socket", str(sock))).start()
    try:
        assert d.ok("status")["pid"] == d.proc.pid, "the owner"
        if group:
            assert oct(sock.stat().st_mode & 0o777) == "0o660" and grp.getgrgid(sock.stat().st_gid).gr_name == group
            reply = as_nobody(sock)
            assert reply["ok"], reply
        else:
            assert oct(sock.stat().st_mode & 0o777) == "0o600"
            sock.chmod(0o666)  # loosened by hand: the kernel's word on the peer still decides
            reply = as_nobody(sock)
            assert not reply["ok"] and "permission denied: nobody" in reply["error"]
            assert any(e["event"] == "control.refused" and e["user"] == "nobody" for e in d.events())
        assert d.stop() == 0
    finally:
        d.kill()
        shutil.rmtree(shared, ignore_errors=True)


def test_slow_oversized_and_malformed_requests_never_stall_other_clients(tmp_path):
    d = Daemon(write_fabric(tmp_path / "fabric"), tmp_path / "daemon.log").start()
    sock = str(d.config.parent / "state" / "control.sock")
    idle = []
    try:
        for _ in range(30):  # clients that connect and say nothing
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            idle.append(s)
        began = time.monotonic()  # clock-ok
        assert d.ok("status")["pid"] == d.proc.pid
        assert time.monotonic() - began < 5, "idle clients do not hold others up"  # clock-ok
        try:  # answered with an error, or dropped before the sender is done
            huge = raw_request(Path(sock), b"x" * (3 << 20))
            assert not huge["ok"] and "longer than" in huge["error"]
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert not raw_request(Path(sock), b"\xff\xfe garbage\n")["ok"]
        assert not raw_request(Path(sock), b'{"cmd": "status"')["ok"], "no newline, then EOF"
        idle[0].settimeout(15)
        assert b"not received in time" in idle[0].recv(65536), "a slow request is answered with an error"
        assert d.ok("status")["pid"] == d.proc.pid and d.stop() == 0
    finally:
        for s in idle:
            s.close()
        d.kill()


def on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as its stdout and stderr; return its status and output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(master)
    return proc.wait(30), out.decode(errors="replace")


def test_auxcopy_and_restore_wait_show_a_progress_bar_on_a_terminal_and_plain_lines_otherwise(tmp_path):
    slow = '\n[[link]]\nname = "wan"\nsites = ["prod", "dr"]\nbandwidth = "1MB"\nlatency = "5ms"\n'
    d = Daemon(write_fabric(tmp_path / "fabric", link=slow, chunk="64KiB"), tmp_path / "daemon.log").start()
    try:
        d.ok("backup", "IBMB", "--type", "full", "--wait")
        status, out = on_a_terminal([*CLI, "ctl", "auxcopy", "--wait", "--config", str(d.config)])
        assert status == 0, out
        bars = re.findall(r"auxcopy:\d+ \[[#-]+\]\s+\d+%\s+[\d.]+ \w+ / [\d.]+ \w+\s+[\d.]+ \w+/s\s+\d+ jobs? left", out)
        assert len(bars) >= 2 and "\r" in out, out
        assert "completed: P/dr: 1 jobs" in out

        restore = [
            *CLI,
            "ctl",
            "restore",
            "--client",
            "IBMB",
            "--latest",
            "--copy",
            "P/dr",
            "--to",
            str(tmp_path / "r"),
            "--wait",
        ]
        status, out = on_a_terminal([*restore, "--config", str(d.config)])
        assert status == 0 and "restore:" in out and "%" in out, out

        plain = d.ctl("restore", "--client", "IBMB", "--latest", "--to", str(tmp_path / "r2"), "--wait")
        assert plain.returncode == 0 and "\r" not in plain.stdout + plain.stderr and "%" not in plain.stderr
        assert plain.stdout.strip().startswith("restore:") and len(plain.stdout.strip().splitlines()) == 1
        assert d.stop() == 0
    finally:
        d.kill()
