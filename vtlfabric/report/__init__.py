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
A leaf room: it imports nothing of ours but the leaves. html.py builds the page,
plot.py draws with matplotlib, scenario.py and drill.py make each kind of page.
"""

from __future__ import annotations

from typing import Any

from vtlfabric.report.drill import drill_page
from vtlfabric.report.plot import INSTALL, MissingPlotting, require_plotting
from vtlfabric.report.scenario import FAULT_COLOURS, Band, DrillMark, drill_marks, fault_bands, scenario_page, time_scale

__all__ = [
    "FAULT_COLOURS",
    "INSTALL",
    "Band",
    "DrillMark",
    "MissingPlotting",
    "NotAReport",
    "drill_marks",
    "drill_page",
    "fault_bands",
    "kind_of",
    "page",
    "require_plotting",
    "scenario_page",
    "time_scale",
]
SCENARIO_KEYS = ("scenario", "seed", "simulated_seconds", "jobs", "copies", "lag", "faults", "drills", "expect", "history_sha256")
DRILL_KEYS = ("id", "mode", "passed", "summary", "clients", "steps")


class NotAReport(Exception):
    """JSON that is neither a scenario report nor a drill report."""


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
