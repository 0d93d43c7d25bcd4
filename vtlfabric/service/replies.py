"""JSON at the edge: typed results (attrs values, enums, paths) as control replies.

Jobs return attrs values; only the control socket, report files and metrics turn
them into JSON, and they do it here.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import attrs

from vtlfabric.jobs.running import Work


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


def work_json(work: Work) -> dict[str, Any]:
    return {"id": work.id, "kind": work.kind, "status": work.status, "result": jsonable(work.result), "error": work.error,
            "progress": work.progress.to_json()}
