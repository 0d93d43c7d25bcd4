"""JSON at the edge: typed results (attrs values, enums, paths) as plain JSON types.

Jobs return attrs values; only the edges (control replies, report files, metrics)
turn them into JSON, and they all do it with ``jsonable``. A leaf: the CLI imports it
without loading the daemon.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import attrs


def jsonable(value: Any) -> Any:
    """Plain JSON types from attrs values, enums, paths, tuples, sets and dicts, recursively."""
    if attrs.has(type(value)):
        return {f.name: jsonable(getattr(value, f.name)) for f in attrs.fields(type(value)) if not f.name.startswith("_")}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value
