"""`make bench`, the simulator's rows: how many simulated seconds pass per wall second.

* the month scenario (config/scenarios/month.toml), run as a user runs it: its report's
  simulated_seconds / wall_seconds; the goal is 40,000x;
* the demo config under ``vtlfabric run --virtual-clock`` for a fixed wall time, stopped
  with SIGTERM: the fabric time it saved, less where a new virtual clock starts,
  over the wall time; the goal is 1,000x.

    .venv/bin/python -m tests.benchsim [--demo-seconds 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchsim", description=__doc__.splitlines()[0])
    parser.add_argument("--demo-seconds", type=float, default=20.0, help="wall seconds to run the demo for")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vtlfabric-benchsim-") as tmp:
        rows = {"month scenario": month(Path(tmp)), "demo --virtual-clock": demo(Path(tmp), args.demo_seconds)}
    print(f"{'simulator':<22} {'simulated s':>12} {'wall s':>8} {'ratio':>10} {'goal':>8}")
    for name, row in rows.items():
        row["ratio"] = round(row["simulated_seconds"] / row["wall_seconds"])
        row["goal"] = GOALS[name]
        verdict = "" if row["ratio"] >= row["goal"] else "  below the goal"
        print(
            f"{name:<22} {row['simulated_seconds']:>12,.0f} {row['wall_seconds']:>8.1f} "
            f"{row['ratio']:>9,}x {row['goal']:>7,}x{verdict}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
