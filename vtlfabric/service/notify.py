"""systemd's notify protocol (sd_notify(3)), sent from the Trio loop.

Our own small module rather than a package: the protocol is one datagram of
``KEY=value`` lines to ``$NOTIFY_SOCKET``. The maintained binding (systemd-python)
needs libsystemd headers to build, and the pure-Python ones send with blocking
calls; a non-blocking Trio socket here is a dozen lines.
"""

from __future__ import annotations

import os
import socket as stdsocket
import time
from collections.abc import Mapping

import attrs
import structlog
import trio

log = structlog.get_logger()


@attrs.define(eq=False)
class Notifier:
    """Sends to the service manager; does nothing when not run by one."""

    address: str | bytes | None = None
    _sock: trio.socket.SocketType | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        path = environ.get("NOTIFY_SOCKET", "")
        if not path:
            return cls()
        # "@name" is the abstract namespace: a leading NUL byte on the wire.
        address: str | bytes = b"\0" + path[1:].encode() if path.startswith("@") else path
        sock = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_DGRAM | stdsocket.SOCK_CLOEXEC)
        return cls(address, sock)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    async def send(self, **fields: object) -> None:
        """One datagram, e.g. ``send(READY=1, STATUS="...")``. A manager that went away
        is logged, never fatal: the daemon's work matters more than its reports."""
        if self._sock is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            await self._sock.sendto(message, self.address)
        except OSError as e:
            log.warning("notify.failed", error=str(e), fields=sorted(fields))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


def watchdog_interval(environ: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of $WATCHDOG_USEC, if it is meant for us."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(pid if pid is not None else os.getpid()):
        return None
    return int(usec) / 2e6


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as RELOADING=1 must carry it (systemd compares it with its own)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000  # clock-ok: the protocol asks for this clock
