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


def choose_format(requested: str | None) -> str:
    if requested and requested != "auto":
        return requested
    if os.environ.get("JOURNAL_STREAM") or not sys.stderr.isatty():
        return "json"
    return "console"


def configure(fmt: str | None = None, level: str = "info") -> None:
    fmt = choose_format(fmt)
    renderer: Any = structlog.processors.JSONRenderer(sort_keys=True) if fmt == "json" else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _fabric_time,
            structlog.processors.format_exc_info if fmt == "json" else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
