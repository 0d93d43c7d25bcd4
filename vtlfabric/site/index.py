"""Job indexes: which object sits where in a job's stream, with its digest.

The production MediaAgent keeps them in its index cache. A DR MediaAgent keeps
them, together with the copy's own segment map, in its disk library, so the DR
site can browse and restore with the production site gone.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import attrs

from vtlfabric import blocking
from vtlfabric.catalog.records import SegmentRecord
from vtlfabric.files import sync_directory

FORMAT = "vtlfabric-index/1"


class IndexFormatError(Exception):
    pass


class DiskFull(OSError):
    """The store's disk has no room: nothing is written (``mediaagent:SITE disk-full``)."""


@attrs.define
class Space:
    """Whether the store's disk is full: a fault's state, shared with the thread that writes."""

    full: bool = False  # its own disk (a disk library's)
    state_full: bool = False  # the state directory it lies in


@attrs.frozen
class IndexEntry:
    path: str
    version: int
    offset: int
    length: int
    sha256: str


@attrs.frozen
class JobIndex:
    job_id: int
    client: str
    subclient: str
    type: str
    generation: int
    bytes: int
    digest: str
    entries: tuple[IndexEntry, ...]
    copy_id: str = ""
    segments: tuple[SegmentRecord, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **attrs.asdict(self, recurse=True)}

    @classmethod
    def from_json(cls, data: Any, source: str) -> JobIndex:
        """Parse an index file, naming the file and field on any fault."""
        try:
            if data.get("format") != FORMAT:
                raise IndexFormatError(f"{source}: format: expected {FORMAT!r}")
            fields = {k: v for k, v in data.items() if k != "format"}
            fields["entries"] = tuple(IndexEntry(**e) for e in fields["entries"])
            fields["segments"] = tuple(SegmentRecord(**s) for s in fields.get("segments", ()))
            return cls(**fields)
        except IndexFormatError:
            raise
        except (AttributeError, KeyError, TypeError) as e:
            raise IndexFormatError(f"{source}: malformed index: {e}") from None


@attrs.frozen
class IndexStore:
    """One JSON file per job, written atomically (temp file, fsync, rename)."""

    root: Path
    space: Space = attrs.field(factory=Space, eq=False)

    def _path(self, job_id: int, copy_id: str = "") -> Path:
        folder = copy_id.replace("/", "__") if copy_id else "jobs"
        return self.root / folder / f"{job_id}.json"

    async def save(self, index: JobIndex) -> Path:
        return await blocking.run_sync(self._save, index)

    def _save(self, index: JobIndex) -> Path:
        path = self._path(index.job_id, index.copy_id)
        if self.space.full or self.space.state_full:
            raise DiskFull(errno.ENOSPC, f"no space left on the disk of {self.root}: index of job {index.job_id} not saved")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(index.to_json(), f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_directory(path.parent)
        return path

    async def load(self, job_id: int, copy_id: str = "") -> JobIndex:
        return await blocking.run_sync(self._load, job_id, copy_id)

    def _load(self, job_id: int, copy_id: str) -> JobIndex:
        path = self._path(job_id, copy_id)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise IndexFormatError(f"{path}: no index for job {job_id}") from None
        except json.JSONDecodeError as e:
            raise IndexFormatError(f"{path}: not valid JSON: {e}") from None
        return JobIndex.from_json(data, str(path))
