"""`make bench`, the simulator's rows: how many simulated seconds pass per wall second.

* the month scenario (config/scenarios/month.toml), run as a user runs it: its report's
  simulated_seconds / wall_seconds; the goal is 40,000x;
* the demo config under ``vtlfabric run --virtual-clock`` for a fixed wall time, stopped
  with SIGTERM: the fabric time it saved, less where a new virtual clock starts,
  over the wall time (its start and stop included); the goal is 1,000x.

Each row is the median ratio of ``--runs`` runs (5), with min and max; each run is a
new process on a new state dir.

    .venv/bin/python -m tests.benchsim [--runs 5] [--demo-seconds 8] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import tomli_w

from tests.daemon import CLI
from vtlfabric.vocab import VIRTUAL_EPOCH

ROOT = Path(__file__).parent.parent
MONTH = ROOT / "config" / "scenarios" / "month.toml"
DEMO = ROOT / "config" / "vtlfabric.toml"
GOALS = {"month scenario": 40_000, "demo --virtual-clock": 1_000}


def month(tmp: Path) -> dict:
    out = tmp / "month.json"
    subprocess.run([*CLI, "scenario", "run", str(MONTH), "--report", str(out)], check=True, stdout=subprocess.DEVNULL)
    report = json.loads(out.read_text())
    return {"simulated_seconds": report["simulated_seconds"], "wall_seconds": report["wall_seconds"]}


def demo(tmp: Path, seconds: float) -> dict:
    """The demo config as shipped, but with its state in ``tmp`` and no metrics port."""
    config = tomllib.loads(DEMO.read_text())
    config["sites"] = [str((DEMO.parent / s).resolve()) for s in config["sites"]]
    config["daemon"]["state_dir"] = str(tmp / "state")
    config.pop("metrics", None)
    path = tmp / "demo.toml"
    path.write_text(tomli_w.dumps(config))
    began = time.perf_counter()  # clock-ok: a benchmark measures wall time
    proc = subprocess.Popen([*CLI, "run", "--virtual-clock", "--config", str(path), "--log-level", "error"])
    time.sleep(seconds)  # clock-ok
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    wall = time.perf_counter() - began  # clock-ok
    with sqlite3.connect(tmp / "state" / "catalog.db") as db:
        saved = float(db.execute("SELECT value FROM meta WHERE key = 'fabric_time'").fetchone()[0])
    return {"simulated_seconds": round(saved - VIRTUAL_EPOCH, 1), "wall_seconds": round(wall, 2)}


def row(name: str, runs: list[dict]) -> dict:
    """A row's figures: the median ratio of its runs, min and max, its goal, and each run."""
    ratios = [run["simulated_seconds"] / run["wall_seconds"] for run in runs]
    return {
        "ratio": round(statistics.median(ratios)),
        "min": round(min(ratios)),
        "max": round(max(ratios)),
        "wall_seconds": round(statistics.median(run["wall_seconds"] for run in runs), 2),
        "goal": GOALS[name],
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchsim", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs a row (each a new process and state dir)")
    parser.add_argument("--demo-seconds", type=float, default=8.0, help="wall seconds to run the demo for, each run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {name: [] for name in GOALS}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="vtlfabric-benchsim-") as tmp:
            runs["month scenario"].append(month(Path(tmp)))
            runs["demo --virtual-clock"].append(demo(Path(tmp), args.demo_seconds))
    rows = {name: row(name, found) for name, found in runs.items()}
    print(f"{'simulator':<22} {'wall s':>8} {'ratio':>10} {'min':>10} {'max':>10} {'goal':>8}")
    for name, r in rows.items():
        verdict = "" if r["ratio"] >= r["goal"] else "  below the goal"
        print(f"{name:<22} {r['wall_seconds']:>8.1f} {r['ratio']:>9,}x {r['min']:>9,}x {r['max']:>9,}x {r['goal']:>7,}x{verdict}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
