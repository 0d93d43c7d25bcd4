"""The page around a report's plot: the document, its sections and tables, escaped
text, and numbers as people read them. Nothing here draws: see plot.py."""

from __future__ import annotations

import html
from collections.abc import Iterable

import attrs

# Nothing from outside the page: inline style only, images only as data: URIs. An inline
# SVG is part of the document, not a fetch, so it needs no source.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
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


@attrs.frozen
class Cell:
    """A table cell: its text (escaped when written) and a class that styles it."""

    text: str
    cls: str = ""


def document(title: str, passed: bool, verdict: str, parts: Iterable[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}: {escape(verdict)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>{escape(title)}</h1>",
            f'<p><span class="verdict {"pass" if passed else "fail"}">{escape(verdict)}</span></p>',
            *(p for p in parts if p),
            "</body>",
            "</html>",
            "",
        ]
    )


def figure(svg: str, caption: str) -> str:
    return f"<figure>\n{svg}\n<figcaption>{escape(caption)}</figcaption>\n</figure>"


def section(title: str, *parts: str) -> str:
    return f"<section>\n<h2>{escape(title)}</h2>\n" + "\n".join(p for p in parts if p) + "\n</section>"


def table(headers: list[str], rows: list[list[str | Cell]], empty: str = "none") -> str:
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>' if empty else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(td(c) for c in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def facts(pairs: list[tuple[str, str | Cell]]) -> str:
    rows = "\n".join(f"<tr><th>{escape(k)}</th>{td(v)}</tr>" for k, v in pairs)
    return f'<table class="facts">\n{rows}\n</table>'


def bullets(items: list[str]) -> str:
    return "<ul>\n" + "\n".join(f"<li>{escape(i)}</li>" for i in items) + "\n</ul>"


def td(cell: str | Cell) -> str:
    if isinstance(cell, Cell):
        return f'<td class="{escape(cell.cls)}">{escape(cell.text)}</td>' if cell.cls else f"<td>{escape(cell.text)}</td>"
    return f"<td>{escape(cell)}</td>"


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def num(n: int | float) -> Cell:
    return Cell(f"{n:,}", "num")


def verdict_cell(ok: bool, yes: str = "pass", no: str = "FAIL") -> Cell:
    return Cell(yes, "pass") if ok else Cell(no, "fail")


# ---------------------------------------------------------------- numbers as people read them


def at(seconds: float) -> str:
    """A moment of the run: days since the start and the time of that day, e.g. ``2d 23:31:00``."""
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    return f"{days}d {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def duration(seconds: float) -> str:
    """``0s``, ``504.3s``, ``20m 00s``, ``3h 05m``, ``2d 4h 00m``."""
    if seconds < 60:
        return f"{seconds:.0f}s" if float(seconds).is_integer() else f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h {whole % 3600 // 60:02d}m"
