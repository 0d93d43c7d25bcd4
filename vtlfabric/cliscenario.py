"""``vtlfabric scenario run FILE``: a scenario, run by the real daemon on a virtual clock.

It prints a short summary (or, with --json, the report), writes the JSON report with
--report, and exits 0 when the run met the scenario's expectations, 1 when it did not
(or, with --check-determinism, when a second run in a new process hashed differently),
2 for a bad scenario file. Python salts str hashes per process; a run re-executes
itself once with PYTHONHASHSEED=0, so set iteration is the same in every process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vtlfabric.errors import EXIT_BAD, EXIT_FAILED

EXIT_OK = 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    scenario = sub.add_parser("scenario", help="run a fault-injection scenario on a virtual clock (see config/scenarios/)")
    cmds = scenario.add_subparsers(required=True, metavar="COMMAND")
    run = cmds.add_parser("run", help="run one scenario with one seed; print its summary and replay line")
    run.add_argument("file", metavar="FILE", help="a scenario file, e.g. config/scenarios/week.toml")
    run.add_argument("--seed", type=int, help="the world's seed (default: the scenario's)")
    run.add_argument("--report", type=Path, help="write the JSON report here")
    run.add_argument("--history", type=Path, help="write the event history here, as JSON lines")
    run.add_argument("--json", action="store_true", help="print the report as JSON instead of the summary")
    run.add_argument(
        "--check-determinism", action="store_true", help="run the seed again in a new process; exit 1 if the histories differ"
    )
    run.set_defaults(handler=cmd_scenario_run)


def cmd_scenario_run(args: argparse.Namespace) -> int:
    if args.from_command_line and os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, "-m", "vtlfabric.cli", *sys.argv[1:]], {**os.environ, "PYTHONHASHSEED": "0"})
    from vtlfabric.config.reader import ConfigError
    from vtlfabric.errors import BadRequest
    from vtlfabric.scenario import report as report_mod
    from vtlfabric.scenario import run as run_mod
    from vtlfabric.scenario import spec

    try:
        scenario = spec.load(args.file)
        seed = scenario.seed if args.seed is None else args.seed
        report = run_mod.run(scenario, seed, history_file=args.history, wall=time.perf_counter)  # clock-ok: wall_seconds
    except (ConfigError, BadRequest) as e:
        print(f"vtlfabric: bad scenario: {e}", file=sys.stderr)
        return EXIT_BAD
    ok = report["expect"]["passed"]
    if args.check_determinism:
        again = _run_in_new_process(args.file, seed)
        same = again == report["history_sha256"]
        report["determinism"] = {"second_run_sha256": again, "same": same}
        ok = ok and same
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(report_mod.summary(report))
        if args.check_determinism:
            print("determinism: " + ("the same history in a second process" if same else f"DIFFERENT history: {again}"))
    return EXIT_OK if ok else EXIT_FAILED


def _run_in_new_process(file: str, seed: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "vtlfabric.cli", "scenario", "run", file, "--seed", str(seed), "--report", str(out)]
        subprocess.run(command, env={**os.environ, "PYTHONHASHSEED": "0"}, stdout=subprocess.DEVNULL, check=False)
        return json.loads(out.read_text())["history_sha256"] if out.exists() else "(the second run wrote no report)"
