"""A scenario report's page: its timeline (copy lag and jobs to copy over simulated
time, faults as bands, drills and backups as marks) and its tables."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs

from vtlfabric.report.html import (
    Cell,
    at,
    bullets,
    document,
    duration,
    facts,
    figure,
    num,
    section,
    table,
    verdict_cell,
)
from vtlfabric.report.plot import render

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TIMELINE_ID = "timeline"
FAULT_COLOURS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
DRILL_COLOURS = {True: "black", False: "crimson"}  # passed, failed
JOB_COLOURS = {"completed": "tab:green", "failed": "crimson", "killed": "darkorange", "running": "0.5"}
MAX_BAND_LABELS = 24  # beyond this the F-numbers overlap into a smear; the table still numbers them


@attrs.frozen
class Band:
    """A fault as the timeline shades it: from when it fired until it healed, or until the
    end of the run when it never did (it was still in force when the run was judged)."""

    number: int  # from 1, as the faults table numbers it
    start: float  # seconds from the start of the run
    end: float
    kind: str  # target and action: one colour and one legend entry a kind
    healed: bool


@attrs.frozen
class DrillMark:
    """A drill as the timeline marks it; ``at`` is None when the report does not say when it ran."""

    id: int
    at: float | None
    passed: bool
    rpo: float | None  # the worst client's, seconds: the drill's RPO
    rto: float | None


def fault_bands(report: dict[str, Any]) -> list[Band]:
    """The faults that took effect (refused ones changed nothing, so they shade nothing)."""
    return [
        Band(n, float(f["at"]), _fault_end(report, f), f"{f['target']} {f['action']}", "healed" in f)
        for n, f in enumerate(report["faults"], 1)
        if "done" in f
    ]


def _fault_end(report: dict[str, Any], fault: dict[str, Any]) -> float:
    """When it healed; a one-shot fault (a flipped byte, a failed backup) is over as it fires."""
    if "healed" in fault:
        return float(fault["healed"])
    return float(fault["at"]) if fault.get("lasting") is False else float(report["simulated_seconds"])


def drill_marks(report: dict[str, Any]) -> list[DrillMark]:
    out = []
    for d in report["drills"]:
        clients = d.get("clients") or []
        out.append(
            DrillMark(
                d["id"],
                d.get("at"),
                d["status"] == "passed",
                max((c["rpo"] for c in clients), default=None),
                max((c["rto"] for c in clients), default=None),
            )
        )
    return out


def scenario_page(report: dict[str, Any]) -> str:
    passed = bool(report["expect"]["passed"])
    title = f"Scenario {report['scenario']}, seed {report['seed']}"
    marks = drill_marks(report)
    unplaced = [m.id for m in marks if m.at is None]
    caption = (
        "Top: each secondary copy's lag (the age of its oldest job not yet copied) through the run, with each "
        "drill's RPO (its worst client's) as a diamond. Bottom: jobs waiting to be copied. Shaded: faults in force, "
        "from when they fired until they healed (to the end when they never did), numbered as in the faults table; "
        "an x marks a fault that was refused. Dashed lines: drills."
    )
    if unplaced:
        caption += f" Not marked: drill(s) {', '.join(map(str, unplaced))}, as this report does not say when they ran."
    failures = report["expect"].get("failures") or []
    return document(
        title,
        passed,
        "expectations met" if passed else "EXPECTATIONS MISSED",
        [
            bullets(failures) if failures else "",
            figure(_timeline_svg(report), caption),
            section("Summary", facts(_scenario_facts(report))),
            section("Jobs", table(["status", "jobs"], [[s, num(n)] for s, n in report["jobs"].items()])),
            section("Copies", _copies_table(report)),
            section("Faults", _faults_table(report)),
            section("Drills", _drills_table(report, marks), _drill_clients_table(report)),
            section("Operator commands", _ctl_table(report.get("ctl") or [])),
            section("Invariants", _invariants(report.get("invariants"))),
        ],
    )


def _scenario_facts(report: dict[str, Any]) -> list[tuple[str, str | Cell]]:
    speed = f", {report['speedup']:,}x real time" if report.get("speedup") else ""
    facts: list[tuple[str, str | Cell]] = [
        ("scenario", str(report["scenario"])),
        ("file", Cell(str(report.get("file", "")), "mono")),
        ("seed", str(report["seed"])),
        ("scale", f"1:{report.get('scale', 1):,} (one real byte stands for this many nominal ones)"),
        (
            "simulated time",
            f"{duration(report['simulated_seconds'])} in {report.get('wall_seconds', 0):.1f}s of wall time{speed}",
        ),
        ("events", f"{report.get('events', 0):,}"),
        ("history sha256", Cell(str(report["history_sha256"]), "mono")),
        ("replay", Cell(str(report.get("replay", "")), "mono")),
    ]
    if "determinism" in report:
        same = report["determinism"].get("same")
        facts.append(
            (
                "determinism",
                Cell("the same history in a second process", "pass")
                if same
                else Cell(f"DIFFERENT history in a second process: {report['determinism'].get('second_run_sha256')}", "fail"),
            )
        )
    failures = report["expect"].get("failures") or []
    facts.append(
        (
            "verdict",
            Cell("expectations met", "pass") if not failures else Cell("EXPECTATIONS MISSED: " + "; ".join(failures), "fail"),
        )
    )
    return facts


def _copies_table(report: dict[str, Any]) -> str:
    rows = []
    for copy, c in report["copies"].items():
        worst = report["lag"].get(copy, {}).get("max_seconds")
        rows.append(
            [
                copy,
                "primary" if c.get("primary") else "secondary",
                num(c.get("available", 0)),
                num(c.get("to_copy", 0)),
                Cell("" if worst is None else duration(worst), "num"),
            ]
        )
    return table(["copy", "role", "jobs available", "jobs to copy", "worst lag"], rows)


def _faults_table(report: dict[str, Any]) -> str:
    end = float(report["simulated_seconds"])
    rows = []
    for n, f in enumerate(report["faults"], 1):
        if "done" not in f:
            outcome, healed, lasted = Cell(f"refused: {f.get('refused', '')}", "fail"), Cell(""), ""
        else:
            outcome = Cell(str(f["done"]))
            if f.get("lasting") is False:
                healed, lasted = Cell("one-shot"), "once"
            else:
                healed = Cell(at(f["healed"]), "mono") if "healed" in f else Cell("never (in force at the end)", "fail")
                lasted = duration(f.get("healed", end) - f["at"])
        rows.append([Cell(f"F{n}", "num"), Cell(at(f["at"]), "mono"), f["target"], f["action"], outcome, healed, lasted])
    return table(["#", "at", "target", "action", "what it did", "healed", "in force"], rows, empty="no faults")


def _drills_table(report: dict[str, Any], marks: list[DrillMark]) -> str:
    summaries = {d["id"]: d for d in report["drills"]}
    rows = [
        [
            Cell(str(m.id), "num"),
            Cell("" if m.at is None else at(m.at), "mono"),
            Cell(summaries[m.id]["status"], "pass" if m.passed else "fail"),
            Cell("" if m.rpo is None else duration(m.rpo), "num"),
            Cell("" if m.rto is None else duration(m.rto), "num"),
            summaries[m.id].get("summary") or "",
        ]
        for m in marks
    ]
    return table(["drill", "at", "status", "RPO (worst)", "RTO (worst)", "summary"], rows, empty="no drills")


def _drill_clients_table(report: dict[str, Any]) -> str:
    rows = [
        [
            Cell(str(d["id"]), "num"),
            c["client"],
            c["copy"],
            verdict_cell(c["passed"]),
            Cell(duration(c["rpo"]), "num"),
            Cell(duration(c["rto"]), "num"),
        ]
        for d in report["drills"]
        for c in d.get("clients") or []
    ]
    return table(["drill", "client", "copy", "result", "RPO", "RTO"], rows, empty="")  # nothing when no drill had clients


def _ctl_table(steps: list[dict[str, Any]]) -> str:
    rows = []
    for s in steps:
        reply = s.get("reply") or {}
        said = Cell("ok", "pass") if reply.get("ok") else Cell(f"refused: {reply.get('error', 'no reply')}", "fail")
        rows.append([Cell(at(s["at"]), "mono"), Cell(json.dumps(s["request"], sort_keys=True), "mono"), said])
    return table(["at", "request", "reply"], rows, empty="no operator commands")


def _invariants(checked: dict[str, Any] | None) -> str:
    if checked is None:
        return '<p class="empty">not checked in this run</p>'
    broken = table(
        ["invariant", "step", "why"],
        [[Cell(v["invariant"], "fail"), Cell(str(v["step"]), "num"), v["why"]] for v in checked.get("violations", [])],
        empty=f"none broken in {checked.get('steps', 0):,} events",
    )
    exercised = table(
        ["invariant", "events weighed"], [[name, num(n)] for name, n in sorted(checked.get("exercised", {}).items())]
    )
    return broken + "\n" + exercised


# ---------------------------------------------------------------- the timeline plot


def time_scale(seconds: float) -> tuple[float, str, float, float]:
    """Seconds a unit, its name, and the major and minor tick steps: days for a run of
    more than two days (a tick a day, for up to a month), else hours."""
    days = seconds / 86400
    if days > 2:
        return (86400.0, "days", 1.0, 0.25) if days <= 31 else (86400.0, "days", 7.0, 1.0)
    hours = seconds / 3600
    return (3600.0, "hours", 1.0, 0.25) if hours <= 12 else (3600.0, "hours", 6.0, 1.0)


def _timeline_svg(report: dict[str, Any]) -> str:
    days = report["simulated_seconds"] / 86400
    title = f"{report['scenario']} (seed {report['seed']}): copy lag, faults and drills over {days:.1f} simulated days"
    return render(lambda fig, mpl: _draw_timeline(fig, mpl, report, title), TIMELINE_ID, title, (11.5, 6.8))


def _draw_timeline(fig: Figure, mpl: Any, report: dict[str, Any], title: str) -> None:
    from matplotlib.ticker import MaxNLocator, MultipleLocator

    end = float(report["simulated_seconds"])
    scale, unit, major, minor = time_scale(end)
    lag_ax, jobs_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.2])
    fig.suptitle(title)
    top = 0.0
    for n, (copy, lag) in enumerate(report["lag"].items()):
        samples = lag["samples"]
        xs = [s[0] / scale for s in samples]
        hours = [s[1] / 3600 for s in samples]
        top = max(top, *hours, 0.0)
        lag_ax.plot(xs, hours, color=f"C{n}", linewidth=1.6, label=f"lag of {copy}", gid=f"lag-{n + 1}")
        jobs_ax.step(xs, [s[2] for s in samples], where="post", color=f"C{n}", linewidth=1.3, gid=f"to-copy-{n + 1}")
    if not report["lag"]:
        lag_ax.text(0.5, 0.5, "no secondary copy: no lag to plot", transform=lag_ax.transAxes, ha="center", color="0.4")
    marks = [m for m in drill_marks(report) if m.at is not None]
    top = max([top] + [m.rpo / 3600 for m in marks if m.rpo is not None])
    _shade_faults(mpl, report, (lag_ax, jobs_ax), scale)
    _mark_drills(marks, (lag_ax, jobs_ax), scale)
    _mark_backups(report.get("backups", []), jobs_ax, scale)
    lag_ax.set_ylim(0, max(1.0, top * 1.18))  # room above the highest point for the band and drill labels
    lag_ax.set_ylabel("copy lag: oldest uncopied\njob's age (hours)")
    jobs_ax.set_ylabel("jobs to copy")
    jobs_ax.set_ylim(bottom=0)
    jobs_ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    jobs_ax.set_xlabel(f"simulated time ({unit} since the start)")
    jobs_ax.set_xlim(0, max(end / scale, 1e-9))
    jobs_ax.xaxis.set_major_locator(MultipleLocator(major))
    jobs_ax.xaxis.set_minor_locator(MultipleLocator(minor))
    for ax in (lag_ax, jobs_ax):
        ax.grid(True, which="major", alpha=0.3)
    lag_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def _shade_faults(mpl: Any, report: dict[str, Any], axes: tuple[Axes, Axes], scale: float) -> None:
    lag_ax = axes[0]
    colours: dict[str, str] = {}
    bands = fault_bands(report)
    for band in bands:
        new = band.kind not in colours
        colour = colours.setdefault(band.kind, FAULT_COLOURS[len(colours) % len(FAULT_COLOURS)])
        for ax, suffix in ((lag_ax, ""), (axes[1], "-jobs")):
            # An edge of the band's own colour: a 20-minute flap in a month is under a pixel wide.
            ax.axvspan(
                band.start / scale,
                band.end / scale,
                facecolor=mpl.colors.to_rgba(colour, 0.18),
                edgecolor=colour,
                linewidth=0.6,
                gid=f"fault-{band.number}{suffix}",
                label=f"fault: {band.kind}" if new and ax is lag_ax else None,
            )
        if len(bands) <= MAX_BAND_LABELS:
            lag_ax.text(
                band.start / scale,
                0.985,
                f" F{band.number}",
                transform=lag_ax.get_xaxis_transform(),
                va="top",
                fontsize="x-small",
                color=colour,
            )
    refused = [(n, f) for n, f in enumerate(report["faults"], 1) if "done" not in f]
    for i, (n, f) in enumerate(refused):
        lag_ax.plot(
            [f["at"] / scale],
            [0.94],
            "x",
            transform=lag_ax.get_xaxis_transform(),
            color="0.35",
            gid=f"refused-{n}",
            label="fault refused" if i == 0 else None,
        )


def _mark_backups(backups: list[dict[str, Any]], jobs_ax: Axes, scale: float) -> None:
    """Each backup job as a tick where it started, along the foot of the jobs panel, in
    its status's colour: what the copies had to take, and which of them never counted."""
    for status, colour in JOB_COLOURS.items():
        xs = [b["at"] / scale for b in backups if b["status"] == status]
        if xs:
            jobs_ax.plot(
                xs,
                [0.04] * len(xs),
                "|",
                transform=jobs_ax.get_xaxis_transform(),
                color=colour,
                markersize=10,
                markeredgewidth=1.4,
                gid=f"backups-{status}",
                label=f"backup {status}",
            )
    if backups:
        jobs_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def _mark_drills(marks: list[DrillMark], axes: tuple[Axes, Axes], scale: float) -> None:
    lag_ax, jobs_ax = axes
    labelled: set[bool | str] = set()  # one legend entry a kind of mark
    for m in marks:
        assert m.at is not None
        x, colour = m.at / scale, DRILL_COLOURS[m.passed]
        label = None if m.passed in labelled else f"drill ({'passed' if m.passed else 'failed'})"
        labelled.add(m.passed)
        lag_ax.axvline(x, color=colour, linestyle="--", linewidth=1.2, gid=f"drill-{m.id}", label=label)
        jobs_ax.axvline(x, color=colour, linestyle="--", linewidth=1.2, gid=f"drill-{m.id}-jobs")
        lag_ax.text(x, 0.9, f" drill {m.id}", transform=lag_ax.get_xaxis_transform(), fontsize="small", color=colour, va="top")
        if m.rpo is not None:
            lag_ax.plot(
                [x],
                [m.rpo / 3600],
                "D",
                color=colour,
                markersize=7,
                zorder=5,
                gid=f"drill-rpo-{m.id}",
                label=None if "rpo" in labelled else "drill RPO (worst client)",
            )
            labelled.add("rpo")
            lag_ax.annotate(
                f"RPO {duration(m.rpo)}",
                (x, m.rpo / 3600),
                xytext=(6, 6),
                textcoords="offset points",
                fontsize="small",
                color=colour,
            )
