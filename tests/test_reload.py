"""A config reload, in process: what it puts in force, what it refuses, and that it never half-applies."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from tests.conftest import fabric_toml, open_fabric, write_fabric
from vtlfabric import config as config_mod
from vtlfabric.jobs.running import Work
from vtlfabric.service.reload import ReloadRefused, reload_config
from vtlfabric.service.scheduler import Scheduler

HOURLY = '\n[[schedule]]\nname = "hourly"\nbackup = ["IBMB"]\nstart = "10m"\nevery = "1h"\n'
NEW = '\n[[schedule]]\nname = "new"\nbackup = ["IBMA"]\nstart = "1m"\nevery = "1h"\n'


class RecordingOps:
    """Stands in for Operations: records what the scheduler starts, and when, running nothing."""

    def __init__(self) -> None:
        self.started: list[tuple[int, str]] = []
        self.began = trio.current_time()

    async def start(self, kind, fn, *args, reports_id=False):
        self.started.append((round((trio.current_time() - self.began) / 60), args[1]))
        op = Work(kind, str(len(self.started)))
        op.done.set()
        return op


async def minutes(clock, n: int) -> None:
    """Move a manual mock clock on a minute at a time, letting what wakes run: an autojump
    clock would leap ahead while the reload waits for the catalog's thread."""
    for _ in range(n):
        clock.jump(60)
        await trio.testing.wait_all_tasks_blocked()


async def test_a_reload_keeps_unchanged_schedules_on_their_times_and_starts_new_ones_from_the_reload(tmp_path, mock_clock):
    path = write_fabric(tmp_path / "f", schedules=HOURLY)
    async with open_fabric(path) as fabric, trio.open_nursery() as nursery:
        ops = RecordingOps()
        scheduler = Scheduler(fabric, ops)
        await nursery.start(scheduler.run)
        await minutes(mock_clock, 30)
        path.write_text(fabric_toml(schedules=HOURLY + NEW))
        await reload_config(fabric, partial(config_mod.load, path))
        scheduler.restart()
        await trio.testing.wait_all_tasks_blocked()
        await minutes(mock_clock, 120)
        ibma = [(31, "IBMA")] * 2 + [(91, "IBMA")] * 2  # one backup per subclient
        assert sorted(ops.started) == sorted([(10, "IBMB"), (70, "IBMB"), (130, "IBMB"), *ibma])
        nursery.cancel_scope.cancel()


async def test_a_reload_that_needs_a_restart_or_cannot_be_read_is_refused_whole(tmp_path, autojump_clock):
    path = write_fabric(tmp_path / "f")
    text = path.read_text()
    async with open_fabric(path) as fabric:
        before = fabric.config
        path.write_text(text[: text.index('  [[policy.copy]]\n  name = "dr"')])
        with pytest.raises(ReloadRefused, match=r"needs a restart.*copies removed \(P/dr\)"):
            await reload_config(fabric, partial(config_mod.load, path))
        path.unlink()
        path.mkdir()  # an editor's accident: the path cannot be read as a file
        with pytest.raises(ReloadRefused, match="cannot be read"):
            await reload_config(fabric, partial(config_mod.load, path))
        assert fabric.config is before, "nothing half-applied"
        path.rmdir()
        path.write_text(text.replace('bandwidth = "50MB"', 'bandwidth = "5MB"'))
        done = await reload_config(fabric, partial(config_mod.load, path))
        assert done["changed"] == ["links"] and fabric.links["wan"].spec.bandwidth == 5_000_000
