"""``vtlfabric scenario run FILE``: a scenario, run by the real daemon on a virtual clock.

It prints a short summary (or, with --json, the report), writes the JSON report with
--report (and as a self-contained HTML page with a timeline plot with --html), and
exits 0 when the run met the scenario's expectations, 1 when it did not (or, with
--check-determinism, when a second run in a new process hashed differently), 2 for a
bad scenario file. Python salts str hashes per process; a run re-executes
itself once with PYTHONHASHSEED=0, so set iteration is the same in every process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from vtlfabric.errors import EXIT_BAD, EXIT_FAILED
from vtlfabric.units import duration_arg

EXIT_OK = 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    scenario = sub.add_parser("scenario", help="run a fault-injection scenario on a virtual clock (see config/scenarios/)")
    cmds = scenario.add_subparsers(required=True, metavar="COMMAND")
    run = cmds.add_parser("run", help="run one scenario with one seed; print its summary and replay line")
    run.add_argument("file", metavar="FILE", help="a scenario file, e.g. config/scenarios/week.toml")
    run.add_argument("--seed", type=int, help="the world's seed (default: the scenario's)")
    run.add_argument("--report", type=Path, help="write the JSON report here")
    run.add_argument(
        "--html", type=Path, metavar="FILE", help="write the report as an HTML page with a timeline plot (needs matplotlib)"
    )
    run.add_argument("--history", type=Path, help="write the event history here, as JSON lines")
    run.add_argument("--json", action="store_true", help="print the report as JSON instead of the summary")
    run.add_argument(
        "--check-determinism", action="store_true", help="run the seed again in a new process; exit 1 if the histories differ"
    )
    run.set_defaults(handler=cmd_scenario_run)
    sweep = cmds.add_parser("sweep", help="run many seeds in parallel processes; print failures, fault coverage, invariants")
    sweep.add_argument("file", metavar="FILE", help="a scenario file")
    sweep.add_argument("--seeds", required=True, help="which seeds: N-M, N, or a list of those (1-1000, or 3,7,20-30)")
    sweep.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: one per core)")
    sweep.add_argument("--json", action="store_true", help="print one JSON object (failures, fault_coverage, ...)")
    sweep.add_argument(
        "--time-box",
        type=duration_arg,
        default=0.0,
        metavar="DURATION",
        help="after the seeds given, go on with the next ones until DURATION (wall time) has passed",
    )
    sweep.add_argument(
        "--cluster",
        metavar="tcp://HOST:PORT",
        help="run the seeds on this Dask cluster's workers (pip install 'vtlfabric[cluster]')",
    )
    sweep.add_argument(
        "--shrink",
        type=Path,
        metavar="DIR",
        help="shrink each failing seed's faults to the fewest that still fail it; write each as a scenario file in DIR",
    )
    sweep.set_defaults(handler=cmd_scenario_sweep)


def cmd_scenario_run(args: argparse.Namespace) -> int:
    if args.from_command_line and os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, "-m", "vtlfabric.cli", *sys.argv[1:]], {**os.environ, "PYTHONHASHSEED": "0"})
    from vtlfabric.config.reader import ConfigError
    from vtlfabric.errors import BadRequest
    from vtlfabric.scenario import report as report_mod
    from vtlfabric.scenario import run as run_mod
    from vtlfabric.scenario import spec

    if args.html:
        from vtlfabric import report as htmlreport

        try:
            htmlreport.require_plotting()  # now, not after a run whose page could not be drawn
        except htmlreport.MissingPlotting as e:
            print(f"vtlfabric: {e}", file=sys.stderr)
            return EXIT_BAD
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
    if args.html:
        args.html.write_text(htmlreport.scenario_page(report))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(report_mod.summary(report))
        if args.check_determinism:
            print("determinism: " + ("the same history in a second process" if same else f"DIFFERENT history: {again}"))
    return EXIT_OK if ok else EXIT_FAILED


def _run_in_new_process(file: str, seed: int) -> str:
    from vtlfabric.scenario.sweep import run_seed_here

    return run_seed_here(file, seed)["history_sha256"] or "(the second run wrote no report)"


def cmd_scenario_sweep(args: argparse.Namespace) -> int:
    from vtlfabric.config.reader import ConfigError
    from vtlfabric.errors import BadRequest
    from vtlfabric.scenario import spec
    from vtlfabric.scenario.sweep import parse_seeds, sweep

    try:
        seeds = parse_seeds(args.seeds)
        if args.jobs < 1:
            raise ValueError(f"jobs: {args.jobs} is not a number of worker processes")
        spec.load(Path(args.file))  # a bad file is one error now, not one per seed
    except ValueError as e:
        print(f"vtlfabric: {e}", file=sys.stderr)
        return EXIT_BAD
    except (ConfigError, BadRequest) as e:
        print(f"vtlfabric: bad scenario: {e}", file=sys.stderr)
        return EXIT_BAD
    progress = (
        (lambda o: None) if args.json else (lambda o: print(f"seed {o.seed}: {'ok' if o.passed else 'FAILED'}", flush=True))
    )
    import trio

    if args.cluster:
        from vtlfabric.scenario.sweep import sweep_on_cluster

        if args.time_box:
            print("vtlfabric: --time-box is for a local sweep; give a cluster the seeds to run", file=sys.stderr)
            return EXIT_BAD

        try:
            result = sweep_on_cluster(args.cluster, args.file, seeds, progress)
        except ImportError:
            print("vtlfabric: --cluster needs Dask's distributed: pip install 'vtlfabric[cluster]'", file=sys.stderr)
            return EXIT_BAD
        except OSError as e:  # distributed's own for a cluster it cannot reach
            print(f"vtlfabric: cluster {args.cluster}: {e}", file=sys.stderr)
            return EXIT_BAD
    else:
        result = trio.run(sweep, args.file, seeds, args.jobs, progress, args.time_box)
    verdict = result.to_json()
    if args.shrink and result.failures:
        for failure in verdict["failures"]:
            failure["shrunk"] = trio.run(_shrunk, Path(args.file), failure["seed"], args.shrink)
    if args.json:
        print(json.dumps(verdict, indent=2))
    else:
        print(result.summary())
        for failure in verdict["failures"]:
            if "shrunk" in failure:
                shrunk = failure["shrunk"]
                print(f"seed {failure['seed']} shrunk to {len(shrunk['faults'])} of {shrunk['from']} fault(s): {shrunk['file']}")
                print(f"  replay: {shrunk['replay']}")
    return EXIT_OK if result.passed else EXIT_FAILED


async def _shrunk(file: Path, seed: int, into: Path) -> dict[str, object]:
    from vtlfabric.scenario.shrink import schedule_of, shrink
    from vtlfabric.scenario.sweep import report_of

    report = await report_of(str(file), seed)
    into.mkdir(parents=True, exist_ok=True)
    dest = into / f"{file.stem}-seed{seed}-shrunk.toml"
    written, faults = await shrink(file, seed, report, dest)
    replay = f"vtlfabric scenario run {written} --seed {seed}"
    return {"file": str(written), "faults": faults, "from": len(schedule_of(report)), "replay": replay}
