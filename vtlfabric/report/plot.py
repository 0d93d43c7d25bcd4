"""Drawing with matplotlib: imported when a plot is drawn, not when a page is asked
for, so the CLI can say how to install it instead of a traceback."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vtlfabric.report.html import escape

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INSTALL = "pip install 'vtlfabric[report]'"


class MissingPlotting(Exception):
    """matplotlib is not installed; the message says how to install it."""


def require_plotting() -> None:
    """Raise MissingPlotting now, before a long run whose page could not be drawn."""
    matplotlib_module()


def matplotlib_module() -> Any:
    try:
        import matplotlib
        import matplotlib.style
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] != "matplotlib":
            raise  # matplotlib is there but something it needs is not: that error says more
        raise MissingPlotting(f"an HTML report plots with matplotlib, which is not installed: {INSTALL}") from None
    return matplotlib


def render(draw: Callable[[Figure, Any], None], svg_id: str, title: str, size: tuple[float, float]) -> str:
    """The figure ``draw`` fills, as an SVG element to inline, with ``svg_id`` for its id."""
    mpl = matplotlib_module()
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
    return f'<svg id="{escape(svg_id)}" role="img" aria-label="{escape(title)}"' + text[text.index("<svg") + len("<svg") :]
