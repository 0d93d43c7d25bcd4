"""structlog set-up: JSON lines for machines, readable lines in a terminal."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog
import trio


def _fabric_time(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Stamp Trio's clock too, so logs of a virtual-clock run line up with its schedule."""
    try:
        event.setdefault("t", round(trio.current_time(), 3))
    except RuntimeError:  # outside a Trio run (CLI, start-up errors)
        pass
    return event


# sd-daemon(3) priority prefixes: journald files each line at its level.
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def _journal_line(_: Any, __: str, event: dict[str, Any]) -> str:
    """``<6>backup.completed client=PRODIBM1 copy=IBMI/primary job_id=7 ...`` (keys sorted):
    journald stamps the time itself."""
    priority = _PRIORITY.get(event.pop("level", "info"), 6)
    event.pop("timestamp", None)
    name = event.pop("event", "")
    return f"<{priority}>{name} " + structlog.processors.LogfmtRenderer(sort_keys=True)(_, __, event)


def on_journal() -> bool:
    """stderr is the journal stream systemd connected (JOURNAL_STREAM is its device:inode)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def choose_format(requested: str | None) -> str:
    if requested and requested != "auto":
        return requested
    if on_journal():
        return "journal"
    return "console" if sys.stderr.isatty() else "json"


# What add_log_level names each level; the threshold of the rendered log compares these.
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _at_least(threshold: int) -> Any:
    """Drop, before rendering, what is below the log level: the bus has seen it already."""

    def drop_below(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        if _LEVELS.get(event.get("level", ""), logging.INFO) < threshold:
            raise structlog.DropEvent
        return event

    return drop_below


def configure(fmt: str | None = None, level: str = "info", bus: Any = None, history: Any = None) -> None:
    """``bus`` (an events.EventBus) sees every event before it is rendered, whatever its
    level: media events are logged at debug (one per mount, unmount and cartridge claim,
    too many for the daemon's log at info) and must still reach ``ctl events``. So does
    ``history`` (a scenario's, see scenario/history.py). The log itself shows ``level`` and up."""
    taps = [tap for tap in (history, bus) if tap is not None]
    fmt = choose_format(fmt)
    threshold = getattr(logging, level.upper())
    renderer: Any = {
        "json": structlog.processors.JSONRenderer(sort_keys=True),
        "journal": _journal_line,
    }.get(fmt) or structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _fabric_time,
            structlog.processors.format_exc_info if fmt != "console" else structlog.dev.set_exc_info,
            *([*taps, _at_least(threshold)] if taps else []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if taps else threshold),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
