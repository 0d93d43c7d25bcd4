"""Run the real daemon as a subprocess and drive it through its CLI, as a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs

# The CLI is blocking by nature; these helpers are called from plain (sync) tests.
CLI = [sys.executable, "-m", "vtlfabric.cli"]


@attrs.define
class Daemon:
    config: Path
    log: Path
    args: tuple[str, ...] = ()
    ctl_args: tuple[str, ...] = ()
    env: dict[str, str] = attrs.field(factory=dict)  # added to this process's environment
    proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Daemon:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*CLI, "run", "--config", str(self.config), "--log-format", "json", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + timeout  # clock-ok: test harness, real time
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log.read_text()}")
            if self.ctl("status").returncode == 0:
                return self
            time.sleep(0.1)  # clock-ok
        raise AssertionError(f"daemon not ready in {timeout}s:\n{self.log.read_text()}")

    def ctl(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*CLI, "ctl", *args, "--config", str(self.config), *self.ctl_args], capture_output=True, text=True, timeout=timeout
        )

    def ok(self, *args: str, timeout: float = 120.0) -> Any:
        """Run a ctl command with --json; it must succeed."""
        done = self.ctl(*args, "--json", timeout=timeout)
        assert done.returncode == 0, f"ctl {' '.join(args)} -> {done.returncode}\n{done.stderr}\n{self.tail()}"
        return json.loads(done.stdout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text().splitlines()[-n:])


def raw_request(path: Path, payload: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(str(path))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return json.loads(data)
