"""`vtlfabric ctl` is a new process each call (scripts, tests and cron make many), so it
must not load the daemon: no Trio, no structlog, no cryptography."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.helpers import edit_config, write_fabric
from vtlfabric import cli, errors

CHECK = (
    "import sys, vtlfabric.cli; print(' '.join(m for m in ('trio', 'structlog', 'cryptography', 'sqlite3') if m in sys.modules))"
)


def test_ctl_loads_none_of_the_daemons_modules():
    loaded = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_ctl_help_still_lists_every_fault():
    out = subprocess.run(
        [sys.executable, "-m", "vtlfabric.cli", "ctl", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "fault" in out
    out = subprocess.run(
        [sys.executable, "-m", "vtlfabric.cli", "ctl", "fault", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for words in ("library:SITE/NAME offline|online", "cartridge:BARCODE fail|repair", "mediaagent:SITE"):
        assert words in " ".join(out.split()), words


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vtlfabric.cli", "run", *args], capture_output=True, text=True, timeout=60)


def test_run_with_a_value_of_the_wrong_type_exits_2_with_one_line_naming_file_and_key(tmp_path):
    """It was a traceback: barcode_range called .partition on the int."""
    path = write_fabric(tmp_path)
    prod = tmp_path / "prod.toml"
    edit_config(prod, 'barcodes = "PR0001L8-PR0012L8"', "barcodes = -1")
    done = _run("--config", str(path))
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert str(prod) in line and "library[0].barcodes" in line and "expected a string" in line
    assert not (tmp_path / "state").exists()


def test_run_on_a_state_dir_it_cannot_use_exits_2_with_one_line(tmp_path):
    taken = tmp_path / "not-a-dir"
    taken.write_text("")
    done = _run("--config", str(write_fabric(tmp_path / "f")), "--state-dir", str(taken))
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert str(taken) in line


@pytest.mark.parametrize(
    "error, code", [(errors.NotFound("library", "prod/GONE"), 2), (errors.Refused("the catalog says no"), 1)]
)
def test_a_domain_error_while_building_the_fabric_exits_with_its_code_and_one_line(tmp_path, monkeypatch, capsys, error, code):
    from vtlfabric.service import daemon, logs

    async def fails_to_build(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(logs, "configure", lambda *args: None)  # keep this process's logging as the other tests have it
    monkeypatch.setattr(daemon, "run", fails_to_build)
    assert cli.main(["run", "--config", str(write_fabric(tmp_path)), "--state-dir", str(tmp_path / "state")]) == code
    [line] = capsys.readouterr().err.splitlines()
    assert line == f"vtlfabric: cannot start: {error}"


def test_a_metrics_port_in_use_exits_1_with_one_line_naming_it(tmp_path):
    """It was a 'daemon.crashed' traceback from inside the daemon's nursery."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_fabric(tmp_path, extra_daemon="")
        edit_config(path, "[encryption]", f'[metrics]\nlisten = "127.0.0.1:{port}"\n\n[encryption]')
        done = _run("--config", str(path))
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == f"vtlfabric: cannot start: [metrics] listen = 127.0.0.1:{port}: Address already in use"
    assert "Traceback" not in done.stderr and "daemon.crashed" not in done.stderr
