"""``vtlfabric check-history FILE``: judge a history against the fabric's invariants.

The history is JSON lines of structlog events: a scenario's ``--history``, or a
daemon's log in JSON (``vtlfabric run --log-format json``, or its journal under
systemd as ``journalctl -o cat``). It prints each violation (the invariant, the step,
why, and the events that broke it) and how often each invariant was exercised; exits
0 when none is broken, 1 when one is, 2 when the file is not a history.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from vtlfabric.errors import EXIT_BAD, EXIT_FAILED
from vtlfabric.units import duration_arg

if TYPE_CHECKING:
    from vtlfabric.check.checker import Checker

EXIT_OK = 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    check = sub.add_parser("check-history", help="judge a history (JSON lines of events) against the fabric's invariants")
    check.add_argument("file", metavar="FILE", type=Path, help="a scenario's --history, or a daemon's JSON log")
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.add_argument(
        "--liveness",
        type=duration_arg,
        metavar="DURATION",
        help="also judge that each synchronous copy catches up within DURATION once every fault has healed (from copy.lag)",
    )
    check.set_defaults(handler=cmd_check_history)


def cmd_check_history(args: argparse.Namespace) -> int:
    from vtlfabric.check.checker import Checker, HistoryFormatError, read_history
    from vtlfabric.check.invariants import every

    try:
        checker = Checker(every(args.liveness)).feed(read_history(args.file))
    except (OSError, HistoryFormatError) as e:
        print(f"vtlfabric: {e}")
        return EXIT_BAD
    if args.json:
        print(json.dumps(checker.to_json(), indent=2))
    else:
        print(_text(checker))
    return EXIT_FAILED if checker.violations else EXIT_OK


def _text(checker: Checker) -> str:
    lines = []
    for v in checker.violations:
        lines.append(f"BROKEN {v.invariant} at step {v.step}: {v.why}")
        lines += [f"  step {n}: {json.dumps(e, sort_keys=True, default=str)}" for n, e in v.events]
    exercised = ", ".join(f"{name} {n}" for name, n in checker.exercised.items())
    verdict = f"{len(checker.violations)} violation(s)" if checker.violations else "no invariant broken"
    lines += [f"{verdict} in {checker.steps} events; exercised: {exercised}"]
    return "\n".join(lines)
