"""config/vtlfabric.service: systemd accepts it, rates it well hardened, and the daemon runs as it says."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

from tests.daemon import Daemon
from tests.helpers import edited, write_fabric

UNIT = Path(__file__).parent.parent / "config" / "vtlfabric.service"
INSTALLED = "/opt/vtlfabric/.venv/bin/vtlfabric"


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNIT)
    return parser


def here(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout: verify checks the binary exists."""
    path = tmp_path / "vtlfabric.service"
    path.write_text(edited(UNIT.read_text(), INSTALLED, str(Path(sys.executable).parent / "vtlfabric"), where=UNIT))
    return path


def test_the_unit_says_what_the_service_needs():
    service = unit()["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "on-failure"
    assert "kill -HUP $MAINPID" in service["ExecReload"] and int(service["WatchdogSec"]) > 0
    assert service["StateDirectory"] == "vtlfabric" and service["RuntimeDirectory"] == "vtlfabric"
    assert (
        "--state-dir ${STATE_DIRECTORY}" in service["ExecStart"]
        and "--socket ${RUNTIME_DIRECTORY}/control.sock" in service["ExecStart"]
    )
    assert service["User"] == "vtlfabric" and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict" and service["ProtectHome"] == "yes" and service["PrivateTmp"] == "yes"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    done = subprocess.run(["systemd-analyze", "verify", str(here(tmp_path))], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_systemd_analyze_security_rates_the_unit_ok_or_better(tmp_path):
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", str(here(tmp_path))], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    level = re.search(r"Overall exposure level for vtlfabric.service: ([\d.]+) (\w+)", done.stdout)
    assert level, done.stdout
    assert level.group(2) in ("SAFE", "OK") and float(level.group(1)) < 5.0, level.group(0)


def test_the_daemon_takes_its_state_and_socket_paths_from_the_command_line_as_the_unit_gives_them(tmp_path):
    state, runtime = tmp_path / "var-lib-vtlfabric", tmp_path / "run-vtlfabric"
    runtime.mkdir()
    socket = runtime / "control.sock"
    d = Daemon(
        write_fabric(tmp_path / "fabric"),
        tmp_path / "daemon.log",
        args=("--state-dir", str(state), "--socket", str(socket)),
        ctl_args=("--socket", str(socket)),
    ).start()
    try:
        status = d.ok("status")
        assert status["state_dir"] == str(state) and (state / "catalog.db").exists() and socket.is_socket()
        assert not (tmp_path / "fabric" / "state").exists()
        assert d.stop() == 0
    finally:
        d.kill()
