"""The invariants over a history: each catches the breach it names, at the step where it
happens and quoting the events that make it one; what looks like one but is not passes;
and `vtlfabric check-history` judges a file."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from vtlfabric import cli
from vtlfabric.check.checker import Checker
from vtlfabric.check.invariants import every
from vtlfabric.check.wiretap import WireTap


def ev(name: str, **fields: object) -> dict[str, object]:
    return {"event": name, **fields}


def backup(job: int, status: str = "completed", copy: str = "P/primary") -> list[dict[str, object]]:
    why = [ev("backup.chance_failure", job_id=job)] if status == "failed" else []  # a backup fails for a reason
    return [ev("backup.started", job_id=job, copy=copy), *why, ev(f"backup.{status}", job_id=job)]


def available(job: int, copy: str = "P/dr") -> dict[str, object]:
    return ev("auxcopy.job_available", job_id=job, copy=copy)


def loaded(drive: str, barcode: str) -> dict[str, object]:
    return ev("drive.loaded", drive=drive, barcode=barcode)


def unloaded(drive: str, barcode: str) -> dict[str, object]:
    return ev("drive.unloaded", drive=drive, barcode=barcode)


def drill(status: str) -> dict[str, object]:
    return ev(f"drill.{status}", drill=1, summary="")


BROKEN = {
    "failed-jobs-never-copied": ([*backup(1, "failed"), available(1)], 3, (2,)),
    "copied-once": ([*backup(1), available(1), available(1)], 3, (2,)),
    "drives-held-once": ([loaded("d#1", "A"), loaded("d#2", "A")], 1, (0,)),
    "restores-exact": ([ev("restore.failed", client="C", copy="P/dr", failures=["job 1 x: digest mismatch"])], 0, ()),
    "promotions-report-losses": (
        [*backup(1), *backup(2), available(1), ev("copy.promoted", copy="P/dr", old_primary="P/primary", lost_jobs=[])],
        5,
        (3,),
    ),
    "drills-pass": (
        [
            ev("fault.injected", target="link:wan", action="partition"),
            ev("fault.injected", target="link:wan", action="degrade"),
            ev("fault.healed", target="link:wan", action="heal"),
            ev("fault.healed", target="link:wan", action="restore"),
            drill("failed"),
        ],
        4,
        (),
    ),
    "crashed-stays-down": (
        [
            ev("backup.started", job_id=1, copy="P/primary"),
            ev("mediaagent.crashed", site="prod", stopped=["backup:1"]),
            ev("backup.completed", job_id=1, copy="P/primary"),
        ],
        2,
        (1,),
    ),
    "scratch-holds-no-live-data": (
        [
            ev("backup.started", job_id=1, copy="P/primary"),
            ev("segment.opened", job_id=1, copy="P/primary", barcode="A"),
            ev("backup.completed", job_id=1, copy="P/primary"),
            ev("cartridge.relabelled", barcode="A"),
        ],
        3,
        (2,),
    ),
    "no-plaintext-on-wan": ([ev("wan.plaintext", link="wan", direction="a->b", marker="/QSYS.LIB/")], 0, ()),
    "healthy-backups-complete": (
        [
            ev("fault.injected", target="library:prod/V", action="offline"),
            ev("fault.healed", target="library:prod/V", action="online"),
            ev("backup.started", job_id=1, client="A"),
            ev("backup.failed", job_id=1, client="A", reason="no drive"),
        ],
        3,
        (2,),
    ),
}

FINE = {
    "failed-jobs-never-copied": [*backup(1, "killed"), *backup(2), available(2)],
    "copied-once": [*backup(1), available(1), ev("copy.damaged", job_id=1, copy="P/dr"), available(1), available(1, "P/vault")],
    "drives-held-once": [loaded("d#1", "A"), unloaded("d#1", "A"), loaded("d#2", "A"), loaded("d#1", "B")],
    "restores-exact": [ev("restore.failed", client="C", copy="P/dr", failures=[]), ev("restore.completed", client="C")],
    "promotions-report-losses": [
        *backup(1),
        *backup(2),
        available(1),
        ev("copy.promoted", copy="P/dr", old_primary="P/primary", lost_jobs=[2]),
    ],
    "drills-pass": [
        ev("fault.injected", target="link:wan", action="partition"),
        ev("fault.injected", target="link:wan", action="degrade"),
        ev("fault.healed", target="link:wan", action="heal"),
        drill("failed"),  # still degraded: a drill may fail
        ev("fault.healed", target="link:wan", action="restore"),
        ev("fault.injected", target="link:wan", action="corrupt"),  # one-shot: never lasts
        drill("passed"),
        ev("fault.injected", target="client:A", action="fail-backup"),
        ev("backup.started", job_id=1, client="A", type="full"),
        ev("fault.fired", fault="fail-backup", job_id=1, client="A"),
        ev("backup.failed", job_id=1, client="A"),
        ev("drill.failed", drill=2, summary="", failed=["A"]),  # A never had a full to restore
    ],
    "crashed-stays-down": [
        ev("backup.started", job_id=1, copy="P/primary"),
        ev("mediaagent.crashed", site="prod", stopped=["backup:1"]),
        ev("backup.failed", job_id=1, copy="P/primary"),
        ev("auxcopy.job_available", job_id=2, copy="P/dr", site="dr"),  # the other site goes on
        ev("mediaagent.restarted", site="prod"),
        ev("drive.loaded", drive="prod/V#1", barcode="A", site="prod"),
    ],
    "scratch-holds-no-live-data": [
        ev("segment.opened", job_id=1, copy="P/primary", barcode="A"),
        ev("backup.failed", job_id=1, copy="P/primary"),
        ev("segment.opened", job_id=2, copy="P/dr", barcode="B"),
        ev("auxcopy.job_available", job_id=2, copy="P/dr"),
        ev("aging.job_aged", job_id=2, copy="P/dr"),
        ev("cartridge.scratch", barcode="A"),
        ev("cartridge.scratch", barcode="B"),
    ],
    "no-plaintext-on-wan": [ev("wan.scanned", link="wan", segments=12, bytes=4096)],
    "healthy-backups-complete": [
        ev("backup.started", job_id=1, client="A"),
        ev("backup.completed", job_id=1, client="A"),
        ev("fault.injected", target="client:A", action="fail-backup"),
        ev("backup.started", job_id=2, client="A"),  # its fault is armed: judged by it, not us
        ev("fault.fired", fault="fail-backup", job_id=2, client="A"),
        ev("backup.failed", job_id=2, client="A"),
        ev("fault.injected", target="library:prod/V", action="offline"),
        ev("backup.started", job_id=3, client="B"),  # started with a fault in force
        ev("fault.healed", target="library:prod/V", action="online"),
        ev("backup.failed", job_id=3, client="B"),
        ev("backup.started", job_id=4, client="B"),
        ev("fault.injected", target="link:wan", action="corrupt"),  # a fault while it ran
        ev("backup.failed", job_id=4, client="B"),
        ev("backup.started", job_id=5, client="B"),
        ev("daemon.ready"),  # its daemon died under it
        ev("backup.failed", job_id=5, client="B"),
        ev("backup.started", job_id=6, client="B"),
        ev("backup.chance_failure", job_id=6, client="B"),  # the client's own failure rate
        ev("backup.failed", job_id=6, client="B"),
        ev("backup.started", job_id=7, client="B"),
        ev("backup.killed", job_id=7, client="B"),  # an operator's kill
    ],
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_invariant_catches_its_breach_at_its_step_quoting_the_events_behind_it(name):
    events, step, because = BROKEN[name]
    checker = Checker().feed(events)
    [violation] = checker.violations
    assert (violation.invariant, violation.step) == (name, step)
    assert [n for n, _ in violation.events] == [*because, step]
    assert violation.events[-1][1] == events[step]
    assert checker.exercised[name] > 0


@pytest.mark.parametrize("name", sorted(FINE))
def test_what_only_looks_like_a_breach_passes(name):
    checker = Checker().feed(FINE[name])
    assert checker.violations == [] and checker.exercised[name] > 0


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), max_size=60))
def test_drives_and_cartridges_moved_as_a_library_moves_them_never_break_it(moves):
    """A model library (each move loads a free cartridge into an empty drive, or unloads
    a full one) never breaks drives-held-once; the same history with one unload lost does."""
    in_drive: dict[int, int] = {}
    events = []
    for drive, cart in moves:
        if drive in in_drive:
            events.append(unloaded(f"d#{drive}", f"C{in_drive.pop(drive)}"))
        elif cart not in in_drive.values():
            in_drive[drive] = cart
            events.append(loaded(f"d#{drive}", f"C{cart}"))
    assert Checker().feed(events).violations == []
    unloads = [i for i, e in enumerate(events) if e["event"] == "drive.unloaded"]
    if unloads and any(e["event"] == "drive.loaded" for e in events[unloads[0] :]):
        reloads = [e for e in events[unloads[0] + 1 :] if e["event"] == "drive.loaded"]
        lost = events[unloads[0]]
        if any(e["drive"] == lost["drive"] or e["barcode"] == lost["barcode"] for e in reloads):
            assert Checker().feed(events[: unloads[0]] + events[unloads[0] + 1 :]).violations


def test_a_drill_that_fails_a_client_with_a_valid_full_breaks_drills_pass():
    events = [
        ev("backup.started", job_id=1, client="A", type="full"),
        ev("backup.completed", job_id=1, client="A"),
        ev("backup.started", job_id=2, client="B", type="full"),
        ev("backup.chance_failure", job_id=2, client="B"),
        ev("backup.failed", job_id=2, client="B"),
        ev("drill.failed", drill=1, summary="2 failed", failed=["A", "B"]),
    ]
    [violation] = Checker().feed(events).violations
    assert (violation.invariant, violation.step) == ("drills-pass", 5)


@pytest.mark.parametrize("spent_by", ["fired", "restart", "disarmed"])
def test_a_client_fault_excuses_one_backup_only(spent_by):
    """Once a client fault has fired, been disarmed, or its daemon died holding it, the
    client's next backup is judged again."""
    spent = {
        "fired": ev("fault.fired", fault="kill-backup", job_id=1, client="A"),
        "restart": ev("daemon.ready"),
        "disarmed": ev("fault.disarmed", target="client:A", action="kill-backup", count=1),
    }[spent_by]
    events = [
        ev("fault.injected", target="client:A", action="kill-backup"),
        ev("backup.started", job_id=1, client="A"),
        spent,
        ev("backup.killed", job_id=1, client="A"),
        ev("backup.started", job_id=2, client="A"),
        ev("backup.failed", job_id=2, client="A", reason="client read error on /QSYS.LIB/X"),
    ]
    [violation] = Checker().feed(events).violations
    assert (violation.invariant, violation.step) == ("healthy-backups-complete", 5)
    assert "job 2 of A failed: client read error" in violation.why


def lag(t: float, age: float, kind: str = "synchronous") -> dict[str, object]:
    return ev("copy.lag", t=t, copy="P/dr", kind=kind, oldest_uncopied_seconds=age, to_copy=1)


HOUR = 3600.0


def test_liveness_a_copy_must_catch_up_within_the_bound_once_the_faults_heal():
    healed = [
        ev("fault.injected", t=0.0, target="link:wan", action="partition"),
        lag(2 * HOUR, 9 * HOUR),  # a fault holds: not judged
        ev("fault.healed", t=3 * HOUR, target="link:wan", action="heal"),
        lag(4 * HOUR, 9 * HOUR),  # healed only an hour ago: not yet
        lag(6 * HOUR, 9 * HOUR, kind="selective"),  # selective copies wait for their rule
    ]
    fine = Checker(every(2 * HOUR)).feed([*healed, lag(5.5 * HOUR, 1.5 * HOUR)])
    assert fine.violations == [] and fine.exercised["caught-up-after-healing"] == 1
    late = Checker(every(2 * HOUR)).feed([*healed, lag(5.5 * HOUR, 7 * HOUR)])
    [violation] = late.violations
    assert violation.invariant == "caught-up-after-healing" and "2.5 h after the last fault healed" in violation.why
    assert "caught-up-after-healing" not in Checker().exercised, "judged only with a stated bound"


def test_the_wire_tap_finds_a_marker_even_split_across_two_segments():
    with capture_logs() as logs:
        tap = WireTap("wan")
        tap("a->b", bytes(range(256)) * 4)
        tap("b->a", b"xx/QSYS.")  # the other way: its own stream
        tap("a->b", b"noise /QSYS.")
        tap("a->b", b"LIB/PAYROLL.LIB/OBJ0001.PGM")
        tap.report()
    found = [e for e in logs if e["event"] == "wan.plaintext"]
    assert [(e["direction"], e["marker"]) for e in found] == [("a->b", "/QSYS.LIB/")]
    checker = Checker().feed(logs)
    assert [v.invariant for v in checker.violations] == ["no-plaintext-on-wan"]
    assert checker.exercised["no-plaintext-on-wan"] == 5  # 4 segments scanned, 1 found


def test_check_history_judges_a_file_and_exits_by_its_verdict(tmp_path, capsys):
    good, bad, junk = tmp_path / "good.jsonl", tmp_path / "bad.jsonl", tmp_path / "junk.jsonl"
    good.write_text("".join(json.dumps(e) + "\n" for e in FINE["copied-once"]))
    bad.write_text("".join(json.dumps(e) + "\n" for e in BROKEN["drives-held-once"][0]))
    junk.write_text('{"event": "a"}\nnot json\n')
    assert cli.main(["check-history", str(good)]) == 0
    assert "no invariant broken in 6 events" in capsys.readouterr().out
    assert cli.main(["check-history", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "BROKEN drives-held-once at step 1: cartridge A loaded in d#2 while in d#1" in out and "step 0:" in out
    assert cli.main(["check-history", str(bad), "--json"]) == 1
    verdict = json.loads(capsys.readouterr().out)
    assert [v["invariant"] for v in verdict["violations"]] == ["drives-held-once"] and verdict["steps"] == 2
    assert cli.main(["check-history", str(junk)]) == 2
    assert f"{junk}:2: not a JSON object" in capsys.readouterr().out
