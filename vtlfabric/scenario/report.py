"""A scenario's report: what ran, what happened, whether it met its expectations, the
hash of its history, and the line that replays it. Pure: built from the run's outcome."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from vtlfabric.scenario.history import History
from vtlfabric.scenario.spec import Expect, Scenario


def replay_line(scenario: Scenario, seed: int) -> str:
    """The command that replays the run, with the file as seen from here when it is below."""
    file = scenario.file
    shown = file.relative_to(Path.cwd()) if file.is_relative_to(Path.cwd()) else file
    return shlex.join(["vtlfabric", "scenario", "run", str(shown), "--seed", str(seed)])


def build(scenario: Scenario, seed: int, outcome: dict[str, Any], history: History, wall_seconds: float) -> dict[str, Any]:
    simulated = outcome["simulated_seconds"]
    copies = outcome["copies"]
    lag = {
        copy: {"max_seconds": max((s[1] for s in samples), default=0.0), "samples": samples}
        for copy, samples in outcome["lag"].items()
    }
    report = {
        "scenario": scenario.name,
        "file": str(scenario.file),
        "seed": seed,
        "scale": scenario.scale,
        "simulated_seconds": simulated,
        "wall_seconds": round(wall_seconds, 3),
        "speedup": round(simulated / wall_seconds) if wall_seconds > 0 else None,
        "jobs": outcome["jobs"],
        "copies": copies,
        "lag": lag,
        "lag_columns": ["at", "oldest_uncopied_seconds", "jobs_to_copy", "nominal_bytes_to_copy"],
        "faults": outcome["faults"],
        "drills": outcome["drills"],
        "backups": outcome["backups"],
        "ctl": outcome["ctl"],
        "events": history.events,
        "history_sha256": history.sha256(),
        "replay": replay_line(scenario, seed),
        "invariants": history.checker.to_json() if history.checker else None,
    }
    if "lives" in outcome:  # the daemon was killed: each life ran in a process of its own
        report["lives"] = outcome["lives"]
    broken = history.checker.violations if history.checker else []
    failures = [f"invariant {v.invariant} broken at step {v.step}: {v.why}" for v in broken]
    failures += judge(scenario.expect, report)
    report["expect"] = {"passed": not failures, "failures": failures}
    return report


def judge(expect: Expect, report: dict[str, Any]) -> list[str]:
    """Each expectation the run missed, in words."""
    out = []
    jobs = report["jobs"]
    for status, least in expect.min_jobs.items():
        if jobs.get(status, 0) < least:
            out.append(f"jobs {status}: {jobs.get(status, 0)}, expected at least {least}")
    for status, most in expect.max_jobs.items():
        if jobs.get(status, 0) > most:
            out.append(f"jobs {status}: {jobs.get(status, 0)}, expected at most {most}")
    for copy, least in expect.min_available.items():
        have = report["copies"].get(copy, {}).get("available", 0)
        if have < least:
            out.append(f"copy {copy}: {have} jobs available, expected at least {least}")
    for copy, most in expect.max_lag.items():
        worst = report["lag"].get(copy, {}).get("max_seconds")
        if worst is None:
            out.append(f"copy {copy}: no such secondary copy to measure the lag of")
        elif worst > most:
            out.append(f"copy {copy}: lag reached {worst:.0f}s, expected at most {most:.0f}s")
    for copy in expect.caught_up:
        left = report["copies"].get(copy, {}).get("to_copy")
        if left != 0:
            out.append(f"copy {copy}: {left} jobs still to copy at the end, expected none")
    passed = sum(1 for d in report["drills"] if d["status"] == "passed")
    if passed < expect.drills_passed:
        out.append(f"drills passed: {passed}, expected at least {expect.drills_passed}")
    fired = sum(1 for f in report["faults"] if "done" in f)
    if fired < expect.min_faults:
        out.append(f"faults fired: {fired}, expected at least {expect.min_faults}")
    for policy, copy in expect.primary.items():
        now = [c for c, s in report["copies"].items() if s["primary"] and c.startswith(f"{policy}/")]
        if now != [copy]:
            out.append(f"policy {policy}: primary is {', '.join(now) or 'none'}, expected {copy}")
    return out


def summary(report: dict[str, Any]) -> str:
    """The few lines ``scenario run`` prints."""
    days = report["simulated_seconds"] / 86400
    speed = f"{report['speedup']:,}x real time" if report["speedup"] else "speed not measured"
    lines = [
        f"scenario {report['scenario']} seed {report['seed']}: {days:.1f} simulated days in "
        f"{report['wall_seconds']:.1f}s ({speed}), scale 1:{report['scale']}",
        "jobs: " + (", ".join(f"{n} {s}" for s, n in report["jobs"].items()) or "none"),
    ]
    for copy, lag in report["lag"].items():
        c = report["copies"].get(copy, {})
        lines.append(
            f"copy {copy}: {c.get('available', 0)} available, {c.get('to_copy', 0)} to copy, worst lag {lag['max_seconds']:.0f}s"
        )
    fired = [f for f in report["faults"] if "done" in f]
    lines.append(
        f"faults: {len(fired)} fired"
        + (f", {len(report['faults']) - len(fired)} refused" if len(fired) < len(report["faults"]) else "")
    )
    for d in report["drills"]:
        lines.append(f"drill {d['id']}: {d['status']}" + (f" ({d['summary']})" if d["summary"] else ""))
    verdict = (
        "expectations met" if report["expect"]["passed"] else "EXPECTATIONS MISSED: " + "; ".join(report["expect"]["failures"])
    )
    lines += [verdict, f"history_sha256 {report['history_sha256']} ({report['events']} events)", f"replay: {report['replay']}"]
    return "\n".join(lines)
