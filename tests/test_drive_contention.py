"""Issue 11: drive reservation that cannot deadlock, in any topology.

Eight aux copy streams (three of them copying within one library, each needing two of
its drives), restores at both sites, a verify, a backup and a DR drill, all at once on
libraries of two drives each, in process on the virtual clock. Every job must finish,
and the broker's own journal, replayed, must show no drive held twice and nobody
overtaken by a later arrival. And ``ctl drives`` shows who holds and who waits."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.drivejournal import audit
from tests.expect import expected_files, restored_files
from tests.helpers import edit_config, open_fabric, write_fabric
from vtlfabric.catalog import queries
from vtlfabric.cli import _parser
from vtlfabric.cliformat import render
from vtlfabric.fabric import Fabric
from vtlfabric.jobs.auxcopy import run_copy
from vtlfabric.jobs.backup import run_backup
from vtlfabric.jobs.drill import run_drill
from vtlfabric.jobs.restore import RestoreRequest, run_restore
from vtlfabric.jobs.verify import run_verify
from vtlfabric.service.commands import Commands
from vtlfabric.service.operations import Operations
from vtlfabric.vocab import CopyState

PVTL, PVTL2, DVTL = "prod/PVTL", "prod/PVTL2", "dr/DVTL"
SIZES = {PVTL: 2, PVTL2: 2, DVTL: 2}

# A copy into the primary's own library, and one into a second library at the same site.
MORE_COPIES = """
  [[policy.copy]]
  name = "local"
  source = "primary"
  library = "prod/PVTL"
  streams = 3

  [[policy.copy]]
  name = "twin"
  source = "primary"
  library = "prod/PVTL2"
  streams = 2
"""
SECOND_LIBRARY = """
[[library]]
name = "PVTL2"
drives = 2
slots = 16
barcodes = "PS0001L8-PS0012L8"
capacity = "4MiB"
block_size = "32KiB"
robot_time = "200ms"
"""
SUBCLIENTS = (("IBMA", "ALLUSR"), ("IBMA", "IFS"), ("IBMB", "ALLUSR"))


def contention_fabric(root: Path, *, timing: bool = False) -> Path:
    path = write_fabric(root, chunk="64KiB", prod={"timing": timing})
    edit_config(path, "streams = 2", "streams = 3")
    path.write_text(path.read_text() + MORE_COPIES)
    (root / "prod.toml").write_text((root / "prod.toml").read_text() + SECOND_LIBRARY)
    return path


async def heartbeat() -> None:
    """Keeps a deadline near. The autojump clock jumps to the next deadline whenever
    every task waits, on a worker thread too: without this, slow tape I/O in a thread
    could let it leap to the deadlock watchdog's deadline. With it, time moves on at
    most a minute at a time, and only a real deadlock runs the watchdog's hour out."""
    while True:
        await trio.sleep(60)


async def backups(fabric: Fabric, job_type: str) -> list[int]:
    return [(await run_backup(fabric, client, sub, job_type)).job_id for client, sub in SUBCLIENTS]


async def test_copies_restores_and_a_drill_at_once_all_finish_and_nobody_is_overtaken(tmp_path, autojump_clock):
    autojump_clock.autojump_threshold = 0.01  # as the daemon's --virtual-clock: jump only once every task has waited a while
    async with open_fabric(contention_fabric(tmp_path / "f")) as fabric:
        fulls = await backups(fabric, "full")
        first = await run_copy(fabric, fabric.copy("P/dr"), None)  # the drill and the DR restore need data at DR
        assert first.status == "completed" and first.jobs_copied == 3
        incrementals = await backups(fabric, "incremental")
        started = len(fabric.broker.journal)

        results: dict[str, object] = {}
        all_done = trio.Event()

        async def run(name: str, fn, *args) -> None:
            results[name] = await fn(*args)
            if len(results) == 9:
                all_done.set()

        with trio.fail_after(3600):  # a deadlock stalls every task but the heartbeat, which runs the hour out
            async with trio.open_nursery() as nursery:
                nursery.start_soon(heartbeat)
                for copy_id in ("P/dr", "P/local", "P/twin"):
                    nursery.start_soon(run, copy_id, run_copy, fabric, fabric.copy(copy_id), None)
                for client in ("IBMA", "IBMB"):
                    request = RestoreRequest(client, tmp_path / f"out-{client}", copy_id="P/primary")
                    nursery.start_soon(run, f"restore {client}", run_restore, fabric, request)
                request = RestoreRequest("IBMB", tmp_path / "out-dr", job_id=fulls[2], copy_id="P/dr", site="dr")
                nursery.start_soon(run, "restore at dr", run_restore, fabric, request)
                nursery.start_soon(run, "drill", run_drill, fabric, "check", "test")
                nursery.start_soon(run, "verify", run_verify, fabric, "P/primary")
                nursery.start_soon(run, "backup", run_backup, fabric, "IBMB", None, "incremental")
                await all_done.wait()
                nursery.cancel_scope.cancel()  # the heartbeat

        runs = {copy_id: results[copy_id] for copy_id in ("P/dr", "P/local", "P/twin")}
        assert {c: (r.status, r.streams, r.jobs_copied) for c, r in runs.items()} == {
            "P/dr": ("completed", 3, 3),
            "P/local": ("completed", 3, 6),
            "P/twin": ("completed", 2, 6),
        }, "eight streams, every job copied"
        assert results["drill"].passed, results["drill"].summary
        assert results["verify"].jobs_verified >= 6
        assert results["restore at dr"].jobs == (fulls[2],)
        for client in ("IBMA", "IBMB"):
            assert results[f"restore {client}"].objects > 0
        gen = (await fabric.catalog.call(queries.get_job, fulls[2])).generation
        assert restored_files(tmp_path / "out-dr") == expected_files(fabric, "IBMB", {"ALLUSR": gen})
        jobs = await fabric.catalog.call(queries.list_jobs)
        for job_id in fulls + incrementals:
            job = next(j for j in jobs if j.id == job_id)
            assert {job.copies[c] for c in ("P/dr", "P/local", "P/twin")} == {CopyState.AVAILABLE}, job

        journal = list(fabric.broker.journal)
        assert audit(journal, SIZES) == [], "no drive held twice, nobody overtaken, no drive idle while someone could go"
        during = journal[started:]
        arrivals = {e.request: e for e in during if e.kind == "arrive"}
        grants = [e for e in during if e.kind == "grant"]
        assert sum(e.needs == {PVTL: 2} for e in arrivals.values()) == 3, "each stream within one library: ONE request for 2"
        assert any(e.at > arrivals[e.request].at for e in grants), "someone had to wait: there was contention"
        streams = {f"auxcopy {c} stream {n}" for c, k in (("P/dr", 3), ("P/local", 3), ("P/twin", 2)) for n in range(1, k + 1)}
        assert {e.holder.split(" job ")[0] for e in grants if e.holder.startswith("auxcopy")} == streams
        assert all(lib.drives_in_use == 0 for lib in fabric.libraries.values())


async def test_ctl_drives_shows_holders_and_waiters_while_a_copy_runs(tmp_path, autojump_clock):
    # Drives that take time: under a virtual clock, blocking work runs inline, so a copy
    # on drives that take none would be over before the clock moves on to look.
    async with open_fabric(contention_fabric(tmp_path / "f", timing=True)) as fabric, trio.open_nursery() as nursery:
        commands = Commands(fabric, Operations(nursery), trio.current_time())
        await backups(fabric, "full")
        idle = await commands.cmd_drives({})
        assert [lib["library"] for lib in idle["libraries"]] == [PVTL, PVTL2, DVTL]
        assert all(d["state"] == "free" and d["holder"] == "" for lib in idle["libraries"] for d in lib["drives"])
        assert "nobody waits for a drive" in render("drives", idle)

        # Three streams within one library of two drives: one copies, two wait for both drives.
        await commands.cmd_auxcopy({"copy": "P/local"})
        while True:
            await trio.sleep(0.01)
            assert commands.ops.running(), "the copy ended before its streams were seen waiting"
            seen = await commands.cmd_drives({})
            pvtl = seen["libraries"][0]
            if len(pvtl["waiters"]) == 2 and all(" job " in d["holder"] and d["barcode"] for d in pvtl["drives"]):
                break
        holders = {d["holder"] for d in pvtl["drives"]}
        assert len(holders) == 1 and holders.pop().startswith("auxcopy P/local stream "), pvtl["drives"]
        assert {d["state"] for d in pvtl["drives"]} == {"held"}
        assert [w["position"] for w in pvtl["waiters"]] == [1, 2]
        assert all(w["needs"] == {PVTL: 2} and w["holder"].startswith("auxcopy P/local stream ") for w in pvtl["waiters"])
        assert all(w["waited"] >= 0 and w["since"] > 0 for w in pvtl["waiters"])

        text = render("drives", seen)
        for line in ("DRIVE", "prod/PVTL#1", "prod/PVTL#2", "held", "WAITING", "prod/PVTL=2"):
            assert line in text, text
        assert text.count("auxcopy P/local stream") == 4, text  # two drives held by one stream, two waiters
        await commands.ops.wait_idle()
        done = await commands.cmd_drives({})
        assert all(d["state"] == "free" for lib in done["libraries"] for d in lib["drives"])
        nursery.cancel_scope.cancel()


def test_the_cli_asks_for_drives():
    args = _parser().parse_args(["ctl", "drives", "--socket", "/x"])
    assert args.build(args) == {"cmd": "drives"}
    assert "drives" in Commands.names()
