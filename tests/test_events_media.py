"""Media events (drive loads and unloads, cartridge claims) reach `ctl events` without
flooding the daemon's log, which shows info and up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
import trio

from vtlfabric.jobs.backup import run_backup
from vtlfabric.service import logs
from vtlfabric.service.events import EventBus

MEDIA_FIELDS = {"site", "library", "barcode"}


@contextmanager
def daemon_logging(level: str, bus: EventBus) -> Iterator[None]:
    """The daemon's logging as `vtlfabric run` sets it up (JSON lines on stderr), with a bus."""
    saved = structlog.get_config()
    logs.configure("json", level, bus)
    try:
        yield
    finally:
        structlog.configure(**saved)


async def test_a_backups_drive_and_cartridge_events_reach_the_bus_not_the_log(fabric, capsys, autojump_clock):
    bus = EventBus()
    bus.attach()
    with daemon_logging("info", bus):
        async with bus.follow() as follower:
            done = await run_backup(fabric, "IBMB", None, "full")
            followed = []
            with trio.move_on_after(1):
                while True:
                    followed.append(await follower.next())

    media = [e for e in bus.recent if e["event"].split(".")[0] in ("drive", "cartridge")]
    names = [e["event"] for e in media]
    assert names[:3] == ["cartridge.claimed", "drive.loaded", "drive.unloaded"], names
    assert all(set(e) >= MEDIA_FIELDS and e["site"] == "prod" and e["library"] == "prod/PVTL" for e in media), media
    assert all(e["level"] == "debug" and "timestamp" in e for e in media)
    claimed, loaded, unloaded = media[:3]
    assert claimed["copy"] == "P/primary"
    assert loaded["barcode"] == claimed["barcode"] == unloaded["barcode"] and loaded["drive"] == unloaded["drive"]
    assert loaded["drive"].startswith("prod/PVTL#")
    assert [e["event"] for e in followed] == [e["event"] for e in bus.recent], "a follower sees them as they happen"

    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert any(e["event"] == "backup.completed" and e["job_id"] == done.job_id for e in logged)
    assert not [e for e in logged if e["level"] == "debug"], "media events stay out of the log at info"


async def test_the_log_shows_media_events_at_debug(fabric, capsys, autojump_clock):
    with daemon_logging("debug", EventBus()):
        await run_backup(fabric, "IBMB", None, "full")
    logged = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert {"cartridge.claimed", "drive.loaded", "drive.unloaded"} <= set(logged)
