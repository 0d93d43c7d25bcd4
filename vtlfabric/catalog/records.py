"""Frozen records read from the catalog."""

from __future__ import annotations

import sqlite3
from typing import Any

import attrs

from vtlfabric.vocab import JobStatus

VALID_STATUSES = (JobStatus.COMPLETED,)  # failed and killed jobs hold no valid data


@attrs.frozen
class JobRecord:
    id: int
    client: str
    subclient: str
    policy: str
    type: str
    requested_type: str
    status: str
    reason: str
    generation: int
    base_generation: int | None
    started: float
    ended: float | None
    objects: int
    bytes: int
    digest: str
    copies: dict[str, str] = attrs.field(factory=dict, eq=False)  # copy id -> the job's state there
    reasons: dict[str, str] = attrs.field(factory=dict, eq=False)  # copy id -> why it is in that state

    @property
    def valid(self) -> bool:
        return self.status in VALID_STATUSES


@attrs.frozen
class JobCopyRecord:
    job_id: int
    copy_id: str
    state: str
    bytes_done: int
    reason: str
    updated: float


@attrs.frozen
class CopyRecord:
    id: str
    policy: str
    library: str
    source: str | None
    is_primary: bool
    inoperative: str = ""


@attrs.frozen
class CartridgeRecord:
    barcode: str
    library: str
    slot: int  # its home slot
    copy_id: str | None
    state: str
    eod: int
    location: str = "slot"  # slot, drive, outside
    drive: int | None = None  # the drive it is in, while location is drive


@attrs.frozen
class SegmentRecord:
    job_id: int
    copy_id: str
    seq: int
    barcode: str
    file_no: int
    offset: int
    length: int
    blocks: int


@attrs.frozen
class AuxRunRecord:
    id: int
    copy_id: str
    streams: int
    status: str
    reason: str
    started: float
    ended: float | None
    jobs: int
    bytes: int


@attrs.frozen
class Loss:
    """Valid jobs on a primary that another copy does not hold: what promoting it loses."""

    jobs: tuple[int, ...] = ()
    bytes: int = 0
    newest_backup: float | None = None


def from_row(cls: type, row: sqlite3.Row) -> Any:
    return cls(**{k: row[k] for k in row.keys() if k in attrs.fields_dict(cls)})  # noqa: SIM118 (a Row iterates values)
