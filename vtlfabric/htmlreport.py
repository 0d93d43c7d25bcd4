"""A scenario report or a drill report (the JSON that ``scenario run --report`` and a
drill write) as one self-contained HTML page: a plot, then the report's tables.

Self-contained, so it can be attached to a ticket or archived beside the JSON and still
show the same years later: the plot is matplotlib's SVG inlined in the page, the style
sits in the page, and nothing is fetched (the page's Content-Security-Policy forbids it,
so a reference that slipped in would show as missing rather than phone home). The page
runs no script. Pure: a report in, the page's text out, and the same report gives the
same bytes (the SVG's ids are salted with a constant and it carries no date).

matplotlib is optional (``vtlfabric[report]``): it is imported when a plot is drawn, not
when this module is, so the CLI can say how to install it instead of a traceback.
A leaf: it imports nothing of ours.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL = "pip install 'vtlfabric[report]'"
TIMELINE_ID = "timeline"
DRILL_PLOT_ID = "drill-plot"
# Nothing from outside the page: inline style only, images only as data: URIs. An inline
# SVG is part of the document, not a fetch, so it needs no source.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# Faults get colours of their own, apart from the copies' lines (C0, C1, ...).
FAULT_COLOURS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
DRILL_COLOURS = {True: "black", False: "crimson"}  # passed, failed
JOB_COLOURS = {"completed": "tab:green", "failed": "crimson", "killed": "darkorange", "running": "0.5"}
MAX_BAND_LABELS = 24  # beyond this the F-numbers overlap into a smear; the table still numbers them
SCENARIO_KEYS = ("scenario", "seed", "simulated_seconds", "jobs", "copies", "lag", "faults", "drills", "expect", "history_sha256")
DRILL_KEYS = ("id", "mode", "passed", "summary", "clients", "steps")

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; margin: 1.5em auto;
       max-width: 1180px; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.verdict { display: inline-block; padding: .25em .7em; border-radius: 4px; font-weight: 600; }
.verdict.pass { background: #e3f4e3; color: #14601a; }
.verdict.fail { background: #fbe3e3; color: #9b1111; }
figure { margin: 1em 0; }
figure svg { width: 100%; height: auto; }
figcaption { color: #555; font-size: .9em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .92em; }
th, td { border: 1px solid #d6d6d6; padding: .25em .6em; text-align: left; vertical-align: top; }
thead th { background: #f3f3f3; }
table.facts th { background: #f7f7f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.pass { color: #14601a; font-weight: 600; }
td.fail { color: #9b1111; font-weight: 600; }
td.mono, code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9em; word-break: break-all; }
p.empty { color: #777; font-style: italic; }
"""


class NotAReport(Exception):
    """JSON that is neither a scenario report nor a drill report."""


class MissingPlotting(Exception):
    """matplotlib is not installed; the message says how to install it."""


# ---------------------------------------------------------------- the records the plots draw


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


@attrs.frozen
class Cell:
    """A table cell: its text (escaped when written) and a class that styles it."""

    text: str
    cls: str = ""


# ---------------------------------------------------------------- what a report is


def kind_of(data: Any) -> str | None:
    """The kind of report, "scenario" or "drill" (or None), by the keys each kind always has."""
    if not isinstance(data, dict):
        return None
    if all(k in data for k in SCENARIO_KEYS):
        return "scenario"
    if all(k in data for k in DRILL_KEYS):
        return "drill"
    return None


def unwrap(data: Any) -> Any:
    """A drill report from ``ctl drill --wait --json`` comes inside its operation; take it out."""
    if isinstance(data, dict) and data.get("kind") == "drill" and isinstance(data.get("result"), dict):
        return data["result"]
    return data


def page(data: Any) -> str:
    """The page for either kind of report (or a drill's operation, as ``ctl drill --json`` prints it)."""
    data = unwrap(data)
    kind = kind_of(data)
    if kind == "scenario":
        return scenario_page(data)
    if kind == "drill":
        return drill_page(data)
    raise NotAReport("neither a scenario report (scenario run --report) nor a drill report (a drill's JSON)")


def require_plotting() -> None:
    """Raise MissingPlotting now, before a long run whose page could not be drawn."""
    _matplotlib()


def _matplotlib() -> Any:
    try:
        import matplotlib
        import matplotlib.style
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] != "matplotlib":
            raise  # matplotlib is there but something it needs is not: that error says more
        raise MissingPlotting(f"an HTML report plots with matplotlib, which is not installed: {INSTALL}") from None
    return matplotlib


# ---------------------------------------------------------------- the scenario page


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
    return _document(
        title,
        passed,
        "expectations met" if passed else "EXPECTATIONS MISSED",
        [
            _list(failures) if failures else "",
            _figure(_timeline_svg(report), caption),
            _section("Summary", _facts(_scenario_facts(report))),
            _section("Jobs", _table(["status", "jobs"], [[s, _num(n)] for s, n in report["jobs"].items()])),
            _section("Copies", _copies_table(report)),
            _section("Faults", _faults_table(report)),
            _section("Drills", _drills_table(report, marks), _drill_clients_table(report)),
            _section("Operator commands", _ctl_table(report.get("ctl") or [])),
            _section("Invariants", _invariants(report.get("invariants"))),
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
            f"{_duration(report['simulated_seconds'])} in {report.get('wall_seconds', 0):.1f}s of wall time{speed}",
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
                _num(c.get("available", 0)),
                _num(c.get("to_copy", 0)),
                Cell("" if worst is None else _duration(worst), "num"),
            ]
        )
    return _table(["copy", "role", "jobs available", "jobs to copy", "worst lag"], rows)


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
                healed = Cell(_at(f["healed"]), "mono") if "healed" in f else Cell("never (in force at the end)", "fail")
                lasted = _duration(f.get("healed", end) - f["at"])
        rows.append([Cell(f"F{n}", "num"), Cell(_at(f["at"]), "mono"), f["target"], f["action"], outcome, healed, lasted])
    return _table(["#", "at", "target", "action", "what it did", "healed", "in force"], rows, empty="no faults")


def _drills_table(report: dict[str, Any], marks: list[DrillMark]) -> str:
    summaries = {d["id"]: d for d in report["drills"]}
    rows = [
        [
            Cell(str(m.id), "num"),
            Cell("" if m.at is None else _at(m.at), "mono"),
            Cell(summaries[m.id]["status"], "pass" if m.passed else "fail"),
            Cell("" if m.rpo is None else _duration(m.rpo), "num"),
            Cell("" if m.rto is None else _duration(m.rto), "num"),
            summaries[m.id].get("summary") or "",
        ]
        for m in marks
    ]
    return _table(["drill", "at", "status", "RPO (worst)", "RTO (worst)", "summary"], rows, empty="no drills")


def _drill_clients_table(report: dict[str, Any]) -> str:
    rows = [
        [
            Cell(str(d["id"]), "num"),
            c["client"],
            c["copy"],
            _verdict_cell(c["passed"]),
            Cell(_duration(c["rpo"]), "num"),
            Cell(_duration(c["rto"]), "num"),
        ]
        for d in report["drills"]
        for c in d.get("clients") or []
    ]
    return _table(["drill", "client", "copy", "result", "RPO", "RTO"], rows, empty="")  # nothing when no drill had clients


def _ctl_table(steps: list[dict[str, Any]]) -> str:
    rows = []
    for s in steps:
        reply = s.get("reply") or {}
        said = Cell("ok", "pass") if reply.get("ok") else Cell(f"refused: {reply.get('error', 'no reply')}", "fail")
        rows.append([Cell(_at(s["at"]), "mono"), Cell(json.dumps(s["request"], sort_keys=True), "mono"), said])
    return _table(["at", "request", "reply"], rows, empty="no operator commands")


def _invariants(checked: dict[str, Any] | None) -> str:
    if checked is None:
        return '<p class="empty">not checked in this run</p>'
    broken = _table(
        ["invariant", "step", "why"],
        [[Cell(v["invariant"], "fail"), Cell(str(v["step"]), "num"), v["why"]] for v in checked.get("violations", [])],
        empty=f"none broken in {checked.get('steps', 0):,} events",
    )
    exercised = _table(
        ["invariant", "events weighed"], [[name, _num(n)] for name, n in sorted(checked.get("exercised", {}).items())]
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
    return _render(lambda fig, mpl: _draw_timeline(fig, mpl, report, title), TIMELINE_ID, title, (11.5, 6.8))


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
                f"RPO {_duration(m.rpo)}",
                (x, m.rpo / 3600),
                xytext=(6, 6),
                textcoords="offset points",
                fontsize="small",
                color=colour,
            )


# ---------------------------------------------------------------- the drill page


def drill_page(report: dict[str, Any]) -> str:
    passed = bool(report["passed"])
    title = f"DR drill {report['id']} ({report['mode']})"
    return _document(
        title,
        passed,
        "passed" if passed else "FAILED",
        [
            f"<p>{_e(report['summary'])}</p>",
            _figure(
                _drill_svg(report),
                "Each client's RPO (how old the newest point it could restore from DR was when the drill began) "
                "and RTO (how long its restore and verification took). Green passed, red failed.",
            ),
            _section("Summary", _facts(_drill_facts(report))),
            _section("Clients", _clients_table(report["clients"])),
            _section("Failover steps", _steps_table(report["steps"])),
        ],
    )


def _drill_facts(report: dict[str, Any]) -> list[tuple[str, str | Cell]]:
    clients = report["clients"]
    return [
        ("drill", str(report["id"])),
        ("mode", str(report["mode"])),
        ("trigger", str(report.get("trigger", ""))),
        ("started", Cell(str(report.get("started", "")), "mono")),
        ("ended", Cell(str(report.get("ended", "")), "mono")),
        ("status", str(report.get("status", ""))),
        ("clients passed", f"{sum(1 for c in clients if c['passed'])} of {len(clients)}"),
        ("worst RPO", _duration(max((c["rpo"] for c in clients), default=0.0))),
        ("worst RTO", _duration(max((c["rto"] for c in clients), default=0.0))),
        ("objects verified", f"{report.get('objects_verified', 0):,}"),
        ("bytes verified", _bytes(report.get("bytes_verified", 0))),
        ("verdict", _verdict_cell(report["passed"], "passed", "FAILED")),
    ]


def _clients_table(clients: list[dict[str, Any]]) -> str:
    rows = [
        [
            c["client"],
            c["copy"],
            c.get("site", ""),
            _verdict_cell(c["passed"]),
            Cell(_duration(c["rpo"]), "num"),
            Cell(_duration(c["rto"]), "num"),
            Cell(", ".join(map(str, c.get("jobs", []))), "mono"),
            _num(c.get("objects", 0)),
            Cell(_bytes(c.get("bytes", 0)), "num"),
            Cell(c["failure"], "fail") if c.get("failure") else "",
        ]
        for c in clients
    ]
    return _table(
        ["client", "copy", "site", "result", "RPO", "RTO", "jobs", "objects", "bytes", "failure"],
        rows,
        empty="no clients: there was no DR copy to drill",
    )


def _steps_table(steps: list[dict[str, Any]]) -> str:
    rows = [
        [s["copy"], s["step"], _verdict_cell(s["ok"], "ok", "FAIL"), Cell(f"{s['seconds']:.1f}s", "num"), s.get("detail", "")]
        for s in steps
    ]
    return _table(["copy", "step", "result", "time", "detail"], rows, empty="none: a check drill fails nothing over")


def duration_scale(seconds: float) -> tuple[float, str]:
    """A unit that keeps a bar's numbers short: seconds, minutes or hours."""
    if seconds >= 2 * 3600:
        return 3600.0, "hours"
    if seconds >= 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _drill_svg(report: dict[str, Any]) -> str:
    title = f"drill {report['id']} ({report['mode']}): {'passed' if report['passed'] else 'FAILED'}, RPO and RTO by client"
    height = max(2.6, 1.3 + 0.38 * len(report["clients"]))
    return _render(lambda fig, mpl: _draw_drill(fig, report["clients"], title), DRILL_PLOT_ID, title, (11.5, height))


def _draw_drill(fig: Figure, clients: list[dict[str, Any]], title: str) -> None:
    rpo_ax, rto_ax = fig.subplots(1, 2, sharey=True)
    fig.suptitle(title)
    if not clients:
        for ax in (rpo_ax, rto_ax):
            ax.text(0.5, 0.5, "no clients drilled", transform=ax.transAxes, ha="center", color="0.4")
        return
    ys = list(range(len(clients)))
    colours = ["tab:green" if c["passed"] else "tab:red" for c in clients]
    for ax, key, what in (
        (rpo_ax, "rpo", "RPO: age of the newest restorable point"),
        (rto_ax, "rto", "RTO: time to restore and verify"),
    ):
        values = [float(c[key]) for c in clients]
        scale, unit = duration_scale(max(values))
        bars = ax.barh(ys, [v / scale for v in values], color=colours, height=0.6)
        for i, bar in enumerate(bars):
            bar.set_gid(f"{key}-{i + 1}")
        ax.bar_label(bars, labels=[_duration(v) for v in values], padding=3, fontsize="small")
        ax.set_xlabel(f"{what} ({unit})")
        ax.set_xlim(0, max(1.0, max(values) / scale) * 1.25)  # room for the value labels
        ax.grid(True, axis="x", alpha=0.3)
    rpo_ax.set_yticks(ys, [c["client"] for c in clients])
    rpo_ax.invert_yaxis()  # the first client on top, as the table lists them


# ---------------------------------------------------------------- drawing, and the page around it


def _render(draw: Callable[[Figure, Any], None], svg_id: str, title: str, size: tuple[float, float]) -> str:
    """The figure ``draw`` fills, as an SVG element to inline, with ``svg_id`` for its id."""
    mpl = _matplotlib()
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    # matplotlib's defaults, not whatever a matplotlibrc on this machine says, so a report
    # looks the same wherever it is drawn; a fixed salt makes the SVG's ids the same each time.
    with mpl.style.context("default"), mpl.rc_context({"svg.hashsalt": f"vtlfabric-{svg_id}"}):
        fig = Figure(figsize=size, layout="constrained")
        draw(fig, mpl)
        out = io.StringIO()
        # No date (the same report, the same page) and no creator URL (nothing outside the page).
        metadata = {"Title": title, "Date": None, "Creator": None, "Format": None, "Type": None}
        FigureCanvasSVG(fig).print_svg(out, metadata=metadata)
    text = out.getvalue()
    # Inline SVG is an element, not a file: the XML declaration and DOCTYPE go.
    return f'<svg id="{_e(svg_id)}" role="img" aria-label="{_e(title)}"' + text[text.index("<svg") + len("<svg") :]


def _document(title: str, passed: bool, verdict: str, parts: Iterable[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}: {_e(verdict)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>{_e(title)}</h1>",
            f'<p><span class="verdict {"pass" if passed else "fail"}">{_e(verdict)}</span></p>',
            *(p for p in parts if p),
            "</body>",
            "</html>",
            "",
        ]
    )


def _figure(svg: str, caption: str) -> str:
    return f"<figure>\n{svg}\n<figcaption>{_e(caption)}</figcaption>\n</figure>"


def _section(title: str, *parts: str) -> str:
    return f"<section>\n<h2>{_e(title)}</h2>\n" + "\n".join(p for p in parts if p) + "\n</section>"


def _table(headers: list[str], rows: list[list[str | Cell]], empty: str = "none") -> str:
    if not rows:
        return f'<p class="empty">{_e(empty)}</p>' if empty else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _facts(pairs: list[tuple[str, str | Cell]]) -> str:
    rows = "\n".join(f"<tr><th>{_e(k)}</th>{_td(v)}</tr>" for k, v in pairs)
    return f'<table class="facts">\n{rows}\n</table>'


def _list(items: list[str]) -> str:
    return "<ul>\n" + "\n".join(f"<li>{_e(i)}</li>" for i in items) + "\n</ul>"


def _td(cell: str | Cell) -> str:
    if isinstance(cell, Cell):
        return f'<td class="{_e(cell.cls)}">{_e(cell.text)}</td>' if cell.cls else f"<td>{_e(cell.text)}</td>"
    return f"<td>{_e(cell)}</td>"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(n: int | float) -> Cell:
    return Cell(f"{n:,}", "num")


def _verdict_cell(ok: bool, yes: str = "pass", no: str = "FAIL") -> Cell:
    return Cell(yes, "pass") if ok else Cell(no, "fail")


# ---------------------------------------------------------------- numbers as people read them


def _at(seconds: float) -> str:
    """A moment of the run: days since the start and the time of that day, e.g. ``2d 23:31:00``."""
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    return f"{days}d {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def _duration(seconds: float) -> str:
    """``0s``, ``504.3s``, ``20m 00s``, ``3h 05m``, ``2d 4h 00m``."""
    if seconds < 60:
        return f"{seconds:.0f}s" if float(seconds).is_integer() else f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h {whole % 3600 // 60:02d}m"


def _bytes(n: int | float) -> str:
    """Binary units: ``512 B``, ``1.5 GiB``."""
    size, unit = float(n), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
