"""The daemon as systemd runs it: the notify protocol, SIGHUP reloads, SIGUSR2 status dumps."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import fabric_toml, write_fabric
from tests.daemon import CLI, Daemon

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
        path.write_text(fabric_toml(schedules=schedule).replace('bandwidth = "50MB"', 'bandwidth = "5MB"'))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(e["event"] == "config.reloaded" for e in d.events()), d)
        reloaded = next(e for e in d.events() if e["event"] == "config.reloaded")
        assert set(reloaded["changed"]) >= {"schedules", "links"}
        wait_until(lambda: any(j["client"] == "IBMB" and j["type"] == "full" for j in d.ok("jobs")), d)  # the new schedule runs

        path.write_text(path.read_text().replace('every = "1h"', 'every = "soon"'))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(e["event"] == "config.reload_refused" for e in d.events()), d)
        refused = next(e for e in d.events() if e["event"] == "config.reload_refused")
        assert "fabric.toml" in refused["error"] and "every" in refused["error"]
        assert d.ok("status")["pid"] == d.proc.pid, "the daemon serves on, on the old config"

        (tmp_path / "fabric" / "dr.toml").write_text((tmp_path / "fabric" / "dr.toml").read_text().replace("drives = 2", "drives = 3"))
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
    end = time.monotonic() + seconds  # clock-ok
    while time.monotonic() < end:  # clock-ok
        if predicate():
            return
        time.sleep(0.1)  # clock-ok
    raise AssertionError(f"timed out\n{d.tail()}")


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
        for expected in ("backup.started", "backup.completed", "auxcopy.job_available", "fault.injected", "drill.started", "drill.client_failed"):
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
        proc = subprocess.Popen([*CLI, "run", "--config", str(config)], stdout=out, stderr=out,
                                env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
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
