"""A drill report's page: each client's RPO and RTO as bars, then its tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vtlfabric.report.html import Cell, document, duration, escape, facts, figure, num, section, table, verdict_cell
from vtlfabric.report.plot import render
from vtlfabric.units import format_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DRILL_PLOT_ID = "drill-plot"


def drill_page(report: dict[str, Any]) -> str:
    passed = bool(report["passed"])
    title = f"DR drill {report['id']} ({report['mode']})"
    return document(
        title,
        passed,
        "passed" if passed else "FAILED",
        [
            f"<p>{escape(report['summary'])}</p>",
            figure(
                _drill_svg(report),
                "Each client's RPO (how old the newest point it could restore from DR was when the drill began) "
                "and RTO (how long its restore and verification took). Green passed, red failed.",
            ),
            section("Summary", facts(_drill_facts(report))),
            section("Clients", _clients_table(report["clients"])),
            section("Failover steps", _steps_table(report["steps"])),
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
        ("worst RPO", duration(max((c["rpo"] for c in clients), default=0.0))),
        ("worst RTO", duration(max((c["rto"] for c in clients), default=0.0))),
        ("objects verified", f"{report.get('objects_verified', 0):,}"),
        ("bytes verified", format_bytes(report.get("bytes_verified", 0))),
        ("verdict", verdict_cell(report["passed"], "passed", "FAILED")),
    ]


def _clients_table(clients: list[dict[str, Any]]) -> str:
    rows = [
        [
            c["client"],
            c["copy"],
            c.get("site", ""),
            verdict_cell(c["passed"]),
            Cell(duration(c["rpo"]), "num"),
            Cell(duration(c["rto"]), "num"),
            Cell(", ".join(map(str, c.get("jobs", []))), "mono"),
            num(c.get("objects", 0)),
            Cell(format_bytes(c.get("bytes", 0)), "num"),
            Cell(c["failure"], "fail") if c.get("failure") else "",
        ]
        for c in clients
    ]
    return table(
        ["client", "copy", "site", "result", "RPO", "RTO", "jobs", "objects", "bytes", "failure"],
        rows,
        empty="no clients: there was no DR copy to drill",
    )


def _steps_table(steps: list[dict[str, Any]]) -> str:
    rows = [
        [s["copy"], s["step"], verdict_cell(s["ok"], "ok", "FAIL"), Cell(f"{s['seconds']:.1f}s", "num"), s.get("detail", "")]
        for s in steps
    ]
    return table(["copy", "step", "result", "time", "detail"], rows, empty="none: a check drill fails nothing over")


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
    return render(lambda fig, mpl: _draw_drill(fig, report["clients"], title), DRILL_PLOT_ID, title, (11.5, height))


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
        ax.bar_label(bars, labels=[duration(v) for v in values], padding=3, fontsize="small")
        ax.set_xlabel(f"{what} ({unit})")
        ax.set_xlim(0, max(1.0, max(values) / scale) * 1.25)  # room for the value labels
        ax.grid(True, axis="x", alpha=0.3)
    rpo_ax.set_yticks(ys, [c["client"] for c in clients])
    rpo_ax.invert_yaxis()  # the first client on top, as the table lists them
