"""Many seeds of one scenario, in parallel processes: what failed, and what was covered.

Each seed runs as its replay line says, ``vtlfabric scenario run FILE --seed N``, in a
process of its own, at most ``jobs`` at once (a Trio nursery starts and waits for
them), so its history is the one that line replays. A seed's outcome is small (``SeedOutcome``): whether it
met its expectations and broke no invariant, why not, its replay line, the faults that
fired and how often each invariant was exercised. The sweep adds them up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import trio

from vtlfabric.scenario import spec

# Wall seconds a seed's run may take before the sweep counts it as hung. The longest
# shipped scenario (a month) takes about 30 s; a livelock would otherwise hold a sweep,
# and CI, for good.
SEED_TIMEOUT = 15 * 60.0


@attrs.frozen
class SeedOutcome:
    seed: int
    passed: bool
    failures: tuple[str, ...]
    replay: str
    faults_fired: tuple[str, ...]  # "KIND ACTION" of each fault that fired, in order
    exercised: tuple[tuple[str, int], ...]  # invariant -> events it weighed
    history_sha256: str = ""

    @classmethod
    def of(cls, report: dict[str, Any]) -> SeedOutcome:
        fired = tuple(f"{f['target'].partition(':')[0]} {f['action']}" for f in report["faults"] if "done" in f)
        judged = report.get("invariants") or {}
        return cls(
            report["seed"],
            report["expect"]["passed"],
            tuple(report["expect"]["failures"]),
            report["replay"],
            fired,
            tuple(sorted((judged.get("exercised") or {}).items())),
            report["history_sha256"],
        )


@attrs.frozen
class SweepResult:
    file: str
    seeds: int
    failures: tuple[SeedOutcome, ...]
    fault_coverage: dict[str, int]  # fault kind -> times fired, over every seed
    exercised: dict[str, int]  # invariant -> events weighed, over every seed
    never_fired: tuple[str, ...] = ()  # fault kinds the scenario has that fired in no seed

    @classmethod
    def of(cls, file: str, outcomes: list[SeedOutcome]) -> SweepResult:
        coverage: Counter[str] = Counter()
        exercised: Counter[str] = Counter()
        for o in outcomes:
            coverage.update(o.faults_fired)
            exercised.update(dict(o.exercised))
        failed = tuple(sorted((o for o in outcomes if not o.passed), key=lambda o: o.seed))
        never = tuple(sorted(fault_kinds(file) - set(coverage)))
        return cls(file, len(outcomes), failed, dict(sorted(coverage.items())), dict(sorted(exercised.items())), never)

    @property
    def passed(self) -> bool:
        """No seed failed, and every fault kind the scenario has fired at least once: a
        kind that never fired was never tested, however green the seeds."""
        return not self.failures and not self.never_fired

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "seeds": self.seeds,
            "failures": [
                {"seed": o.seed, "failures": list(o.failures), "replay": o.replay, "history_sha256": o.history_sha256}
                for o in self.failures
            ],
            "fault_coverage": self.fault_coverage,
            "never_fired": list(self.never_fired),
            "invariants_exercised": self.exercised,
        }

    def summary(self) -> str:
        lines = [f"sweep of {self.file}: {self.seeds} seeds, {len(self.failures)} failed"]
        for o in self.failures:
            lines += [f"seed {o.seed}: {'; '.join(o.failures)}", f"  replay: {o.replay}"]
        lines.append("fault coverage: " + (", ".join(f"{k} {n}" for k, n in self.fault_coverage.items()) or "no fault fired"))
        if self.never_fired:
            lines.append("NEVER FIRED (untested): " + ", ".join(self.never_fired))
        lines.append("invariants exercised: " + ", ".join(f"{k} {n}" for k, n in self.exercised.items()))
        return "\n".join(lines)


def fault_kinds(file: str) -> set[str]:
    """The scenario's fault kinds ("KIND ACTION"), as coverage counts them."""
    return {f"{f.target.partition(':')[0]} {f.action}" for f in spec.load(file).faults}


def parse_seeds(text: str) -> list[int]:
    """``1-1000``, ``7``, or ``1,5,9-12``: the seeds, in order, each once."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            lo, hi = int(first), int(last) if dash else int(first)
        except ValueError:
            raise ValueError(f"seeds: {part.strip()!r} is not N or N-M") from None
        if lo < 0 or hi < lo:
            raise ValueError(f"seeds: {part.strip()!r} is not a range of seeds from 0 up")
        seeds += [s for s in range(lo, hi + 1) if s not in seeds]
    return seeds


async def sweep(
    file: str,
    seeds: Iterable[int],
    jobs: int,
    done: Callable[[SeedOutcome], None] = lambda o: None,
    time_box: float = 0.0,
) -> SweepResult:
    """Run every seed, ``jobs`` at a time, each in a process of its own; ``done`` hears of
    each as it ends. With a ``time_box`` (seconds), go on with the seeds after the last
    one given, as many as start before the box is up. The result lists them in order."""
    limiter = trio.CapacityLimiter(jobs)
    outcomes: dict[int, SeedOutcome] = {}
    ran: list[int] = []

    async def one(seed: int, worker: object) -> None:
        try:
            outcomes[seed] = await run_seed(file, seed)
        finally:
            limiter.release_on_behalf_of(worker)
        done(outcomes[seed])

    order = _boxed(list(seeds), trio.current_time() + time_box)
    async with trio.open_nursery() as nursery:
        while True:
            worker = object()
            await limiter.acquire_on_behalf_of(worker)  # a free worker first: the box is judged as one frees
            seed = next(order, None)
            if seed is None:
                limiter.release_on_behalf_of(worker)
                break
            ran.append(seed)
            nursery.start_soon(one, seed, worker)
    return SweepResult.of(file, [outcomes[s] for s in ran])


def _boxed(seeds: list[int], deadline: float) -> Iterator[int]:
    """The seeds given, then the ones after the last of them while the time box lasts
    (``958557,1000-1049``: a regression seed first, then from 1050 on)."""
    yield from seeds
    given = set(seeds)
    seed = seeds[-1] + 1 if seeds else 0
    while trio.current_time() < deadline:
        if seed not in given:
            yield seed
        seed += 1


async def run_seed(file: str, seed: int) -> SeedOutcome:
    return SeedOutcome.of(await report_of(file, seed))


async def report_of(file: str, seed: int, timeout: float = SEED_TIMEOUT) -> dict[str, Any]:
    """One seed's report, run by ``vtlfabric scenario run`` in a new process: the very
    command its replay line gives (PYTHONHASHSEED=0, as that command sets for itself).
    A run still going after ``timeout`` wall seconds is killed, with every process it
    started, and fails as hung."""
    with tempfile.TemporaryDirectory(prefix="vtlfabric-sweep-") as tmp:
        report = Path(tmp) / "report.json"
        with trio.move_on_after(timeout) as limit:
            ran = await trio.run_process(
                _command(file, seed, report),
                env=_env(),
                stdout=subprocess.DEVNULL,
                capture_stderr=True,
                check=False,
                start_new_session=True,
                deliver_cancel=_kill_group,
            )
        if limit.cancelled_caught:
            return _failed(file, seed, _hung(timeout))
        return _report(report, file, seed, ran.stderr, ran.returncode)


def run_seed_here(file: str, seed: int, timeout: float = SEED_TIMEOUT) -> dict[str, Any]:
    """As ``report_of``, without Trio: the task a Dask worker runs (the scenario file at
    the same path there), and ``scenario run --check-determinism``'s second run."""
    with tempfile.TemporaryDirectory(prefix="vtlfabric-sweep-") as tmp:
        report = Path(tmp) / "report.json"
        with subprocess.Popen(
            _command(file, seed, report), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        ) as process:
            try:
                _, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(process.pid)
                process.communicate()
                return _failed(file, seed, _hung(timeout))
        return _report(report, file, seed, stderr, process.returncode)


async def _kill_group(process: trio.Process) -> None:
    _kill(process.pid)


def _kill(session: int) -> None:
    """Kill a seed's run and whatever it started (its daemon, its lives): one session."""
    try:
        os.killpg(session, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _hung(timeout: float) -> str:
    return f"the run took more than {timeout:g} s of wall time (hung?): killed"


def _command(file: str, seed: int, report: Path) -> list[str]:
    return [sys.executable, "-m", "vtlfabric.cli", "scenario", "run", file, "--seed", str(seed), "--report", str(report)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONHASHSEED": "0"}


def _report(path: Path, file: str, seed: int, stderr: bytes, returncode: int) -> dict[str, Any]:
    """The run's report; for a run that wrote none, one that fails with why and its replay line."""
    if path.exists():
        return json.loads(path.read_text())
    why = (stderr.decode(errors="replace").strip().splitlines() or [f"exit {returncode}"])[-1]
    return _failed(file, seed, f"the run wrote no report: {why}")


def _failed(file: str, seed: int, why: str) -> dict[str, Any]:
    return {
        "seed": seed,
        "faults": [],
        "expect": {"passed": False, "failures": [why]},
        "replay": _replay(file, seed),
        "history_sha256": "",
    }


def sweep_on_cluster(
    address: str, file: str, seeds: Iterable[int], done: Callable[[SeedOutcome], None] = lambda o: None
) -> SweepResult:
    """As ``sweep``, each seed a task on the Dask cluster at ``address`` (its workers run
    ``scenario run`` as here). The scenario file's path must be the same on the workers."""
    from distributed import Client, as_completed

    seeds = list(seeds)
    path = str(Path(file).resolve())
    outcomes: dict[int, SeedOutcome] = {}
    with Client(address) as client:
        futures = [client.submit(run_seed_here, path, seed, key=f"vtlfabric-seed-{seed}", pure=False) for seed in seeds]
        for future in as_completed(futures):
            report = future.result()
            outcome = SeedOutcome.of({**report, "replay": _replay(file, report["seed"])})
            outcomes[outcome.seed] = outcome
            done(outcome)
    return SweepResult.of(file, [outcomes[s] for s in seeds])


def _replay(file: str, seed: int) -> str:
    return f"vtlfabric scenario run {file} --seed {seed}"
