"""Sizes and durations as people write them in config and on the command line."""

from __future__ import annotations

import re
from fractions import Fraction

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as ``"64MiB"`` or ``"1.5GB"``."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 65536 or '64KiB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _PATTERN.match(str(value))
    unit = match and _SIZE_UNITS.get(match.group(2).lower())
    if not match or unit is None:
        raise ValueError(f"{value!r} is not a size such as 65536 or '64KiB'")
    return int(Fraction(match.group(1)) * unit)  # exact: a float would round large sizes


def parse_duration(value: int | float | str) -> float:
    """Seconds from a number or a string such as ``"20ms"``, ``"5s"`` or ``"1h"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30 or '30s'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _PATTERN.match(str(value))
    unit = match and _DURATION_UNITS.get(match.group(2).lower() or "s")
    if not match or unit is None:
        raise ValueError(f"{value!r} is not a duration such as 30, '20ms', '5s', '2m' or '1h'")
    return float(match.group(1)) * unit


def duration_arg(text: str) -> float:
    """``parse_duration`` for argparse's ``type=``: a bad value is argparse's one clear error."""
    from argparse import ArgumentTypeError

    try:
        return parse_duration(text)
    except ValueError as e:
        raise ArgumentTypeError(str(e)) from None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
