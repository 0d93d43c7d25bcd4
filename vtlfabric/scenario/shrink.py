"""Shrink a failing seed's fault schedule to the smallest one that still fails it.

As hypothesis shrinks an example: the faults that fired in the failing run become a
schedule of fixed-time faults (chance faults drawn no more), and delta debugging
(Zeller's ddmin) removes faults while the run still fails the same way (its first
failure, up to the first colon: the same invariant, or the same expectation). The
result is a scenario file, the original with that schedule, that replays the failure
with ``scenario run FILE --seed N``.
"""

from __future__ import annotations

import tempfile
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from vtlfabric.scenario.sweep import report_of

Fault = dict[str, Any]  # a [[fault]] table


def schedule_of(report: dict[str, Any]) -> list[Fault]:
    """The faults that fired in a run, as fixed-time [[fault]] tables (in seconds)."""
    out = []
    for f in report["faults"]:
        if "done" not in f:
            continue
        fault: Fault = {"at": f"{f['at']}s", "target": f["target"], "action": f["action"]}
        if f.get("where") is not None:
            fault["where"] = f["where"]
        if "healed" in f:
            fault["heal"] = f"{round(f['healed'] - f['at'], 3)}s"
        out.append(fault)
    return out


def kind_of(failures: Sequence[str]) -> str:
    """What a run failed on, for telling one failure from another: the first failure's
    words up to its first colon ("invariant drives-held-once broken at step 189")."""
    first = failures[0] if failures else ""
    words = first.partition(":")[0]
    return words.partition(" at step")[0]


def write_variant(original: Path, faults: list[Fault], dest: Path) -> Path:
    """The original scenario with only ``faults``; its fabric config found from ``dest``."""
    data = tomllib.loads(original.read_text())
    data["fabric"]["config"] = str((original.parent / data["fabric"]["config"]).resolve())
    data["fault"] = faults
    if not faults:
        del data["fault"]
    data.setdefault("expect", {}).pop("min_faults", None)  # the shrunk schedule says how many faults there are
    dest.write_text(f"# {original.name}, its faults shrunk to those its failure needs\n" + tomli_w.dumps(data))
    return dest


async def ddmin(items: list[Fault], fails: Callable[[list[Fault]], Awaitable[bool]]) -> list[Fault]:
    """The smallest sublist of ``items`` (1-minimal: no single fault can go) that still fails."""
    n = 2
    while len(items) >= 2:
        chunk = -(-len(items) // n)
        parts = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        for i in range(len(parts)):
            rest = [f for j, part in enumerate(parts) if j != i for f in part]
            if await fails(rest):
                items, n = rest, max(n - 1, 2)
                break
        else:
            if n >= len(items):
                break
            n = min(n * 2, len(items))
    if len(items) == 1 and await fails([]):
        return []
    return items


async def shrink(file: Path, seed: int, report: dict[str, Any], dest: Path) -> tuple[Path, list[Fault]]:
    """Shrink the failing run's schedule; write the smallest as a scenario file at ``dest``."""
    wanted = kind_of(report["expect"]["failures"])

    async def fails(faults: list[Fault]) -> bool:
        with tempfile.TemporaryDirectory(prefix="vtlfabric-shrink-") as tmp:
            variant = write_variant(file, faults, Path(tmp) / file.name)
            return kind_of((await report_of(str(variant), seed))["expect"]["failures"]) == wanted

    faults = schedule_of(report)
    smallest = await ddmin(faults, fails) if await fails(faults) else faults
    return write_variant(file, smallest, dest), smallest
