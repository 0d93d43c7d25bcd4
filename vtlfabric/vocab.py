"""Names and limits shared across layers: one home each, importing nothing of ours.

Config validates against these, the catalog stores them, jobs compare with them,
and the CLI prints them. The enums are ``StrEnum``s, so the catalog's TEXT columns
and JSON replies hold their plain values.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

DAY: Final = 86400.0
# A virtual clock starts here on a new state dir, so a scenario's dates replay too.
VIRTUAL_EPOCH: Final = 1_767_225_600.0  # 2026-01-01T00:00:00Z

MAX_STREAMS: Final = 64  # streams of one aux copy run, and combine_streams
HERCULES_MAX_BLOCK: Final = 65535  # the largest AWSTAPE block Hercules' hetget reads

KEMS: Final = ("x25519", "mlkem768-x25519")  # how a stream's session key is sealed (HPKE)
AEADS: Final = ("aes-256-gcm", "chacha20-poly1305")  # how each chunk is sealed
DEFAULT_KEM: Final = "x25519"
DEFAULT_AEAD: Final = "aes-256-gcm"

JOB_TYPES: Final = ("full", "incremental", "differential")


class JobStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"  # with or without errors: the only valid status
    FAILED = "failed"
    KILLED = "killed"


class CopyState(StrEnum):
    """A job's state on one copy."""

    TO_BE_COPIED = "to_be_copied"
    PARTIALLY_COPIED = "partially_copied"
    AVAILABLE = "available"
    DO_NOT_COPY = "do_not_copy"
    BAD = "bad"  # marked so by an operator
    DAMAGED = "damaged"  # a read found its data on the copy damaged; healed from the source if the copy heals
    AGED = "aged"


PENDING_STATES: Final = (CopyState.TO_BE_COPIED, CopyState.PARTIALLY_COPIED)  # what an aux copy still has to copy


class DriveState(StrEnum):
    EMPTY = "empty"
    LOADING = "loading"  # the robot and the drive are mounting a cartridge
    READY = "ready"  # a cartridge is mounted, nothing moves
    BUSY = "busy"  # locating, reading, writing, rewinding or unloading
    FAILED = "failed"  # out until repaired
    OFFLINE = "offline"  # varied off by the operator
