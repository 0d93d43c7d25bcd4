"""`make bench`'s last step: its three parts' figures, and the machine they ran on, in
one file, ``bench/results.json``.

Each part (tests/bench.py, tests/benchsim.py, tests/benchcatalog.py) writes its own
JSON into the directory as it finishes, so a part that fails leaves the others'
figures. This step gathers whichever are there, names any that are missing, and adds
the machine: a figure means little without the CPUs, the kernel and the commit.

    .venv/bin/python -m tests.benchresults [--dir bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).parent.parent
PARTS = {"throughput": "throughput.json", "simulator": "simulator.json", "catalog": "catalog.json"}
RESULTS = "results.json"


def proc_field(path: str, key: str) -> str | None:
    """The first ``key: value`` line's value in a /proc file, or None off Linux."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == key), None)


def commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


def machine() -> dict:
    memory = proc_field("/proc/meminfo", "MemTotal")
    return {
        "cpu": proc_field("/proc/cpuinfo", "model name") or platform.processor() or None,
        "cpus": os.cpu_count(),
        "memory_kib": int(memory.split()[0]) if memory else None,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": commit(),
    }


def gather(directory: Path) -> dict:
    parts = {name: directory / file for name, file in PARTS.items()}
    results: dict = {
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),  # clock-ok: when the bench ran
        "machine": machine(),
    }
    results |= {name: json.loads(path.read_text()) for name, path in parts.items() if path.exists()}
    missing = [f"{name} ({path.name})" for name, path in parts.items() if not path.exists()]
    if missing:
        results["missing"] = missing
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchresults", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "bench", help="where the parts are, and results.json goes")
    args = parser.parse_args(argv)
    results = gather(args.dir)
    out = args.dir / RESULTS
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures: {out}" + (f" (missing: {', '.join(results['missing'])})" if "missing" in results else ""))
    return 1 if "missing" in results else 0


if __name__ == "__main__":
    sys.exit(main())
