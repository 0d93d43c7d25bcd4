"""A DR drill's report: per-client results, failover steps, the summary line, and the
text and JSON files written beside each other. Pure, so the CLI renders a reply
with the same code the drill writes its text file with, without loading the daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from vtlfabric.tojson import jsonable


@attrs.frozen
class ClientResult:
    client: str
    copy: str
    site: str
    passed: bool
    rpo: float  # seconds
    rto: float  # seconds
    jobs: tuple[int, ...] = ()
    objects: int = 0
    bytes: int = 0
    failure: str = ""


@attrs.frozen
class Step:
    """One step of a failover drill."""

    copy: str
    step: str
    ok: bool
    seconds: float
    detail: str = ""


@attrs.frozen
class DrillReport:
    id: int
    mode: str
    trigger: str
    started: str  # ISO times
    ended: str
    passed: bool
    summary: str
    objects_verified: int
    bytes_verified: int
    clients: tuple[ClientResult, ...]
    steps: tuple[Step, ...]
    status: str = "completed"  # the operation ran to its end, passed or not
    clock_skew: dict[str, float] = attrs.field(factory=dict)  # site -> seconds its clock was off (RPOs are by it)

    @classmethod
    def of(
        cls,
        drill_id: int,
        mode: str,
        trigger: str,
        started: str,
        ended: str,
        results: list[ClientResult],
        steps: list[Step],
        clock_skew: dict[str, float] | None = None,
    ) -> DrillReport:
        bad_steps = [f"{s.copy} {s.step}" for s in steps if not s.ok]
        passed = bool(results) and all(r.passed for r in results) and not bad_steps
        return cls(
            drill_id,
            mode,
            trigger,
            started,
            ended,
            passed,
            _summary(drill_id, mode, passed, results, bad_steps) + _skew_note(clock_skew or {}),
            sum(r.objects for r in results),
            sum(r.bytes for r in results),
            tuple(results),
            tuple(steps),
            clock_skew=dict(sorted((clock_skew or {}).items())),
        )


def _skew_note(skews: dict[str, float]) -> str:
    """A skewed site clock measures its RPOs wrong: the summary says so."""
    off = [f"{site} {skew:+g}s" for site, skew in sorted(skews.items()) if skew]
    return f"; clock skew: {', '.join(off)}" if off else ""


def _summary(drill_id: int, mode: str, passed: bool, results: list[ClientResult], bad_steps: list[str]) -> str:
    if not results:
        return f"drill {drill_id} ({mode}) FAILED: no DR copy to drill"
    failed = [r.client for r in results if not r.passed]
    return (
        f"drill {drill_id} ({mode}) {'passed' if passed else 'FAILED'}: {len(results) - len(failed)}/{len(results)} clients "
        f"restored and verified; worst RPO {max(r.rpo for r in results):.0f}s, worst RTO {max(r.rto for r in results):.1f}s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + (f"; failed steps: {', '.join(bad_steps)}" if bad_steps else "")
    )


def report_text(report: dict[str, Any]) -> str:
    """A drill report (as JSON) as the text file beside its JSON, and as `ctl drill --wait` prints it."""
    lines = [report["summary"], f"started {report['started']}, ended {report['ended']}, trigger {report['trigger']}", ""]
    lines.append(f"{'CLIENT':<12} {'COPY':<14} {'SITE':<8} {'RESULT':<7} {'RPO':>9} {'RTO':>8} {'OBJECTS':>8}  DETAIL")
    for c in report["clients"]:
        lines.append(
            f"{c['client']:<12} {c['copy']:<14} {c['site']:<8} {'pass' if c['passed'] else 'FAIL':<7} "
            f"{c['rpo']:>8.0f}s {c['rto']:>7.1f}s {c['objects']:>8}  {c['failure'] or 'jobs ' + ','.join(map(str, c['jobs']))}"
        )
    if report["steps"]:
        lines += ["", f"{'COPY':<14} {'STEP':<12} {'RESULT':<7} {'TIME':>8}  DETAIL"]
        lines += [
            f"{s['copy']:<14} {s['step']:<12} {'ok' if s['ok'] else 'FAIL':<7} {s['seconds']:>7.1f}s  {s['detail']}"
            for s in report["steps"]
        ]
    return "\n".join(lines) + "\n"


def write_report(root: Path, report: DrillReport) -> Path:
    """``<id>.json`` (written whole, then renamed) and ``<id>.txt``; returns the JSON's path."""
    root.mkdir(parents=True, exist_ok=True)
    data = jsonable(report)
    path = root / f"{report.id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    (root / f"{report.id}.txt").write_text(report_text(data))
    return path
