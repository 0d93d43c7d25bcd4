"""HTML reports: a scenario report or a drill report as one self-contained page with a
plot (matplotlib's SVG, inlined). The pages are checked as text, as the SVG the plot
became, and in a real browser: headless Debian chromium renders the page, and the
screenshot must show the plot, fault band included."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import CLI
from vtlfabric import cli
from vtlfabric import report as htmlreport
from vtlfabric.jobs.drillreport import ClientResult, DrillReport, Step
from vtlfabric.report import Band, DrillMark
from vtlfabric.tojson import jsonable

ROOT = Path(__file__).parent.parent
FABRIC = ROOT / "config" / "scenarios" / "fabric" / "fabric.toml"
HOUR, DAY = 3600.0, 86400.0
EVIL = "link:<script>alert(1)</script>"
SVG_NS = "{http://www.w3.org/2000/svg}"


def client(name: str, rpo: float, rto: float, passed: bool = True) -> dict[str, Any]:
    return {"client": name, "copy": "IBMI/dr", "passed": passed, "rpo": rpo, "rto": rto}


def hand_made() -> dict[str, Any]:
    """Three days, as `scenario run --report` writes them: two secondary copies, a fault
    that healed, one still in force at the end (its target a script tag), one refused,
    two drills where the report says when they ran and one where it does not."""
    end = 3 * DAY
    hours = range(0, 73, 2)
    lag = lambda h: (h % 24) * HOUR if 30 <= h < 40 else 0.0  # noqa: E731
    return {
        "scenario": "hand-made",
        "file": "/somewhere/hand-made.toml",
        "seed": 7,
        "scale": 65536,
        "simulated_seconds": end,
        "wall_seconds": 1.5,
        "speedup": 172800,
        "jobs": {"completed": 11, "failed": 1},
        "copies": {
            "IBMI/primary": {"primary": 1, "available": 11, "to_copy": 0},
            "IBMI/dr": {"primary": 0, "available": 9, "to_copy": 2},
            "IBMI/monthly": {"primary": 0, "available": 1, "to_copy": 0},
        },
        "lag": {
            "IBMI/dr": {"max_seconds": 15 * HOUR, "samples": [[h * HOUR, lag(h), int(lag(h) > 0) * 3, 0] for h in hours]},
            "IBMI/monthly": {"max_seconds": 0.0, "samples": [[h * HOUR, 0.0, 0, 0] for h in hours]},
        },
        "lag_columns": ["at", "oldest_uncopied_seconds", "jobs_to_copy", "nominal_bytes_to_copy"],
        "faults": [
            {
                "at": 10 * HOUR,
                "target": "link:prod-dr",
                "action": "partition",
                "done": "partition on link:prod-dr",
                "healed": 13 * HOUR,
            },
            {"at": 30 * HOUR, "target": EVIL, "action": "partition-a-b", "done": "partition-a-b on it"},
            {"at": 40 * HOUR, "target": "library:dr/GONE", "action": "offline", "refused": "<b>no such library</b>"},
        ],
        "drills": [
            {"id": 1, "at": 50 * HOUR, "status": "passed", "summary": "drill 1 passed", "clients": [client("A", 0, 500)]},
            {
                "id": 2,
                "at": 60 * HOUR,
                "status": "failed",
                "summary": "drill 2 FAILED",
                "clients": [client("A", 2 * HOUR, 400), client("B", 5 * HOUR, 450, passed=False)],
            },
            {"id": 3, "status": "failed", "summary": "drill 3 (check) FAILED: no DR copy to drill", "clients": []},
        ],
        "ctl": [{"at": HOUR, "request": {"cmd": "auxcopy", "copy": "IBMI/dr"}, "reply": {"ok": True, "result": {}}}],
        "events": 1234,
        "history_sha256": "ab" * 32,
        "replay": "vtlfabric scenario run hand-made.toml --seed 7",
        "invariants": {
            "steps": 1234,
            "violations": [{"invariant": "drives-held-once", "says": "", "step": 42, "why": "cartridge <X> in two drives"}],
            "exercised": {"drives-held-once": 80, "copied-once": 12},
        },
        "expect": {"passed": False, "failures": ["copy IBMI/dr: 2 jobs still to copy at the end, expected none"]},
    }


def drill_report() -> dict[str, Any]:
    """A failover drill's JSON, as the drill writes it."""
    clients = [
        ClientResult("PRODIBM1", "IBMI/dr", "dr", True, 1800.0, 420.5, (1, 5), 10, 2**30),
        ClientResult("PRODIBM2", "IBMI/dr", "dr", False, 7200.0, 610.0, (2,), 3, 2**20, failure="object <Q> differs"),
    ]
    steps = [Step("IBMI/dr", "promote", True, 12.5, "made primary"), Step("IBMI/dr", "failback", False, 3.0, "refused")]
    report = DrillReport.of(4, "failover", "SIGUSR1", "2026-01-01T00:00:00+00:00", "2026-01-01T00:20:00+00:00", clients, steps)
    return jsonable(report)


def svg_of(page: str, svg_id: str) -> ET.Element:
    """The page's inline SVG, parsed: it must be well-formed XML to be SVG at all."""
    start = page.index(f'<svg id="{svg_id}"')
    return ET.fromstring(page[start : page.index("</svg>", start) + len("</svg>")])


def group(svg: ET.Element, gid: str) -> ET.Element:
    [found] = [g for g in svg.iter(f"{SVG_NS}g") if g.get("id") == gid]
    return found


def xs_of(g: ET.Element) -> list[float]:
    """The x of every point of the paths in a group, in drawing order."""
    return [float(x) for p in g.iter(f"{SVG_NS}path") for x in re.findall(r"[ML] (-?[\d.]+) ", p.get("d", "") + " ")]


# ---------------------------------------------------------------- what the plot is made of


def test_a_fault_is_shaded_from_when_it_fired_until_it_healed_or_the_end_and_a_refused_one_not_at_all():
    assert htmlreport.fault_bands(hand_made()) == [
        Band(1, 10 * HOUR, 13 * HOUR, "link:prod-dr partition", healed=True),
        Band(2, 30 * HOUR, 3 * DAY, f"{EVIL} partition-a-b", healed=False),
    ]


def test_a_drill_is_marked_with_its_worst_clients_rpo_and_rto():
    assert htmlreport.drill_marks(hand_made()) == [
        DrillMark(1, 50 * HOUR, True, 0, 500),
        DrillMark(2, 60 * HOUR, False, 5 * HOUR, 450),
        DrillMark(3, None, False, None, None),
    ]


@pytest.mark.parametrize(
    "seconds, unit, major", [(6 * HOUR, "hours", 1.0), (2 * DAY, "hours", 6.0), (3 * DAY, "days", 1.0), (60 * DAY, "days", 7.0)]
)
def test_the_time_axis_is_in_hours_for_a_short_run_and_days_for_a_long_one(seconds, unit, major):
    scale, named, step, _ = htmlreport.time_scale(seconds)
    assert (named, step) == (unit, major)
    assert seconds / scale / step <= 24  # never a crowd of ticks


# ---------------------------------------------------------------- the scenario page


def test_the_scenario_page_is_one_file_that_fetches_nothing_and_runs_nothing():
    page = htmlreport.scenario_page(hand_made())
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 1 and '<svg id="timeline"' in page
    assert "<script" not in page.lower()
    assert re.findall(r"""\b(?:src|href)\s*=\s*["'](?!#)""", page) == []  # every reference is within the page
    assert "<link" not in page and "@import" not in page and re.findall(r"url\((?!#)", page) == []
    # The only URLs are XML namespace names, which nothing fetches.
    assert {m for m in re.findall(r'([\w:-]+)="https?://', page)} <= {"xmlns", "xmlns:xlink", "xmlns:dc", "xmlns:cc", "xmlns:rdf"}
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_every_text_from_the_report_is_escaped():
    page = htmlreport.scenario_page(hand_made())
    for raw in (EVIL, "<b>no such library</b>", "cartridge <X>"):
        assert raw not in page
        assert raw.replace("<", "&lt;").replace(">", "&gt;") in page


def test_the_timeline_shades_the_faults_marks_the_drills_and_draws_the_lag():
    report = hand_made()
    page = htmlreport.scenario_page(report)
    svg = svg_of(page, "timeline")
    ids = {g.get("id") for g in svg.iter(f"{SVG_NS}g")}
    assert {"fault-1", "fault-2", "fault-1-jobs", "fault-2-jobs", "refused-3"} <= ids
    assert "fault-3" not in ids  # refused: it changed nothing, so it shades nothing
    assert {"drill-1", "drill-2", "drill-rpo-1", "drill-rpo-2", "drill-1-jobs"} <= ids
    assert {"lag-1", "lag-2", "to-copy-1", "to-copy-2"} <= ids
    assert not any(i.startswith("drill-3") for i in ids if i)
    assert "Not marked: drill(s) 3" in page  # and the page says why
    # The band of the fault that never healed reaches the end of the run: the lag line's last point.
    assert max(xs_of(group(svg, "fault-2"))) == pytest.approx(xs_of(group(svg, "lag-1"))[-1], abs=0.01)
    assert max(xs_of(group(svg, "fault-1"))) < min(xs_of(group(svg, "fault-2")))
    # The healed fault's band is 3 of the run's 72 hours wide.
    lag_xs = xs_of(group(svg, "lag-1"))
    width = lag_xs[-1] - lag_xs[0]
    band = xs_of(group(svg, "fault-1"))
    assert max(band) - min(band) == pytest.approx(width * 3 / 72, rel=0.02)


def test_the_scenario_page_has_its_tables_and_its_verdict():
    page = htmlreport.scenario_page(hand_made())
    assert "<title>Scenario hand-made, seed 7: EXPECTATIONS MISSED</title>" in page
    assert '<span class="verdict fail">EXPECTATIONS MISSED</span>' in page
    assert "copy IBMI/dr: 2 jobs still to copy at the end, expected none" in page
    for heading in ("Summary", "Jobs", "Copies", "Faults", "Drills", "Operator commands", "Invariants"):
        assert f"<h2>{heading}</h2>" in page
    assert "ab" * 32 in page and "vtlfabric scenario run hand-made.toml --seed 7" in page
    assert "never (in force at the end)" in page and "0d 13:00:00" in page  # the faults' healing
    assert "drives-held-once" in page and '<td class="num">42</td>' in page  # the broken invariant and its step
    assert '<td class="num">5h 00m</td>' in page  # drill 2's worst RPO


def test_a_report_without_invariants_says_they_were_not_checked():
    report = {**hand_made(), "invariants": None, "faults": [], "drills": [], "ctl": []}
    page = htmlreport.scenario_page(report)
    assert "not checked in this run" in page and "no faults" in page and "no drills" in page
    assert '<svg id="timeline"' in page


def test_the_same_report_gives_the_same_page():
    assert htmlreport.scenario_page(hand_made()) == htmlreport.scenario_page(hand_made())
    assert htmlreport.drill_page(drill_report()) == htmlreport.drill_page(drill_report())


# ---------------------------------------------------------------- the drill page


def test_the_drill_page_plots_each_clients_rpo_and_rto():
    report = drill_report()
    page = htmlreport.drill_page(report)
    svg = svg_of(page, "drill-plot")
    ids = {g.get("id") for g in svg.iter(f"{SVG_NS}g")}
    assert {"rpo-1", "rpo-2", "rto-1", "rto-2"} <= ids
    assert '<span class="verdict fail">FAILED</span>' in page
    assert "object &lt;Q&gt; differs" in page and "object <Q>" not in page
    for heading in ("Summary", "Clients", "Failover steps"):
        assert f"<h2>{heading}</h2>" in page
    assert "failback" in page and "made primary" in page
    assert "<script" not in page.lower() and re.findall(r"""\b(?:src|href)\s*=\s*["'](?!#)""", page) == []


def test_either_kind_is_told_by_its_keys_and_a_drill_comes_out_of_its_operation():
    scenario, drill = hand_made(), drill_report()
    assert htmlreport.kind_of(scenario) == "scenario" and htmlreport.kind_of(drill) == "drill"
    assert htmlreport.page(scenario) == htmlreport.scenario_page(scenario)
    assert htmlreport.page({"kind": "drill", "id": "op-3", "result": drill}) == htmlreport.drill_page(drill)
    for other in ({}, [], None, 3, {"scenario": "x"}, {k: v for k, v in drill.items() if k != "clients"}):
        assert htmlreport.kind_of(other) is None
        with pytest.raises(htmlreport.NotAReport):
            htmlreport.page(other)


# ---------------------------------------------------------------- the CLI


def test_report_html_writes_the_page_beside_the_report(tmp_path, capsys):
    path = tmp_path / "week.json"
    path.write_text(json.dumps(hand_made()))
    assert cli.main(["report-html", str(path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "week.html")
    assert (tmp_path / "week.html").read_text() == htmlreport.scenario_page(hand_made())
    drill = tmp_path / "4.json"
    drill.write_text(json.dumps(drill_report()))
    assert cli.main(["report-html", str(drill), "-o", str(tmp_path / "drill.html")]) == 0
    assert '<svg id="drill-plot"' in (tmp_path / "drill.html").read_text()


@pytest.mark.parametrize(
    "content, says", [(None, "cannot read"), ("{not json", "not JSON"), (b"\xff\xfe", "not JSON"), ('{"a": 1}', "neither")]
)
def test_report_html_of_a_bad_file_is_one_error_naming_it(tmp_path, capsys, content, says):
    path = tmp_path / "report.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert cli.main(["report-html", str(path)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert str(path) in line and says in line
    assert not (tmp_path / "report.html").exists()


def test_without_matplotlib_both_commands_say_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails as if it were not installed
    path = tmp_path / "week.json"
    path.write_text(json.dumps(hand_made()))
    assert cli.main(["report-html", str(path)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "pip install 'vtlfabric[report]'" in line
    # A scenario run says so before it runs, not after.
    assert cli.main(["scenario", "run", str(tmp_path / "no-such.toml"), "--html", str(tmp_path / "r.html")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "pip install 'vtlfabric[report]'" in line


A_DAY = f"""
description = "a day: the link cut for three hours, and a drill"
seed = 3
scale = 65536
duration = "1d"
sample_every = "1h"

[fabric]
config = "{FABRIC}"

[[schedule]]
name = "fulls"
backup = ["PRODIBM1", "PRODIBM2"]
type = "full"
start = "1h"
every = "1d"

[[schedule]]
name = "copies"
auxcopy = ["IBMI/dr"]
start = "90m"
every = "1h"

[[fault]]
at = "2h"
target = "link:prod-dr"
action = "partition"
heal = "3h"

[[drill]]
at = "20h"
"""


def test_a_scenario_run_writes_the_page_and_report_html_draws_the_same_from_its_json(tmp_path):
    scenario = tmp_path / "a-day.toml"
    scenario.write_text(A_DAY)
    report, page = tmp_path / "r.json", tmp_path / "r.html"
    done = subprocess.run(
        [*CLI, "scenario", "run", str(scenario), "--report", str(report), "--html", str(page)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    text = page.read_text()
    data = json.loads(report.read_text())
    [fault] = data["faults"]
    assert "healed" in fault
    svg = svg_of(text, "timeline")
    ids = {g.get("id") for g in svg.iter(f"{SVG_NS}g")}
    assert {"fault-1", "lag-1", "to-copy-1"} <= ids
    assert data["history_sha256"] in text
    again = subprocess.run(
        [*CLI, "report-html", str(report), "-o", str(tmp_path / "again.html")], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.html").read_text() == text


# ---------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium")


def band_colour() -> tuple[int, int, int]:
    """The first fault kind's band on the screen: its colour at alpha 0.18 over white."""
    from matplotlib.colors import to_rgb

    return tuple(round(255 * (0.18 * c + 0.82)) for c in to_rgb(htmlreport.FAULT_COLOURS[0]))  # type: ignore[return-value]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM or "chromium",
            "--headless",
            "--no-sandbox",  # CI runs as root, where chromium's sandbox will not start
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/debian-deps installs it)")
def test_chromium_renders_the_page_with_its_plot(tmp_path):
    from matplotlib.image import imread

    page = tmp_path / "report.html"
    page.write_text(htmlreport.scenario_page(hand_made()))
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    # The browser parsed the plot as part of the document, marks and all.
    assert re.search(r'<svg id="timeline"[^>]*>', dom.stdout)
    for gid in ("fault-1", "fault-2", "refused-3", "drill-1", "drill-rpo-2", "lag-1"):
        assert f'id="{gid}"' in dom.stdout, gid
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr
    pixels = (imread(shot)[:, :, :3] * 255).round().astype(int)
    plot = pixels[100:900]  # below the heading, above the tables: where the figure is
    colours = {tuple(p) for p in plot.reshape(-1, 3)}
    assert len(colours) > 200, f"{len(colours)} colours: the plot did not render"
    not_white = (plot.sum(axis=2) < 3 * 250).mean()
    assert 0.02 < not_white < 0.6, not_white
    near_band = (abs(plot - band_colour()).max(axis=2) <= 3).sum()
    assert near_band > 500, "the shaded fault band is not on the screen"
