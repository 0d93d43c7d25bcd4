"""A scenario that kills the daemon: each life of the world in a process of its own.

``daemon:self kill-9`` is a real ``kill -9``: the process that runs the daemon (on the
scenario's virtual clock, with the director that drives it) sends itself SIGKILL, so
nothing is flushed or cleaned up and the next start finds only what the catalog and
the cartridge images committed. Before it dies, the life writes what the next one
needs (``life.json`` in the run's directory: the time the daemon comes back, and the
faults, lag samples and operator commands recorded so far) and flushes its history.

The parent (``run``) starts one life after another, as systemd restarts a killed
unit, until a life reaches the scenario's end. It then judges the whole history, all
lives in order, with the invariants, and builds the report as an in-process run does.

Each life is ``python -m vtlfabric.scenario.lives FILE SEED ROOT``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from vtlfabric import config as config_mod
from vtlfabric import errors
from vtlfabric.scenario import report as report_mod
from vtlfabric.scenario import spec
from vtlfabric.scenario.history import History
from vtlfabric.scenario.run import LIFE_FILE, live
from vtlfabric.scenario.world import build

HISTORY_FILE = "history.jsonl"
OUTCOME_FILE = "outcome.json"
MAX_LIVES = 1000  # a bound, so a scenario that kills its daemon by chance too often says so


def run(scenario: spec.Scenario, seed: int, *, history_file: Path | None = None, wall: Any = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"vtlfabric-{scenario.name}-") as tmp:
        root = Path(tmp)
        build(scenario, seed, root)
        (root / LIFE_FILE).write_text(json.dumps({"life": 0}))
        began = wall() if wall else 0.0
        lives = _live_until_the_end(scenario, seed, root)
        ended = wall() if wall else 0.0
        outcome = json.loads((root / OUTCOME_FILE).read_text())
        outcome["lives"] = lives
        history = History.of_run(root, None, scenario.liveness)
        with (root / HISTORY_FILE).open() as f:
            for line in f:
                history(None, "", json.loads(line))
        if history_file is not None:
            shutil.copyfile(root / HISTORY_FILE, history_file)
    return report_mod.build(scenario, seed, outcome, history, wall_seconds=ended - began)


def _live_until_the_end(scenario: spec.Scenario, seed: int, root: Path) -> int:
    """Run lives until one ends the scenario; return how many there were."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # set iteration alike in every life
    for life in range(MAX_LIVES):
        done = subprocess.run(
            [sys.executable, "-m", "vtlfabric.scenario.lives", str(scenario.file), str(seed), str(root)],
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode == 0:
            return life + 1
        killed = done.returncode == -signal.SIGKILL and json.loads((root / LIFE_FILE).read_text())["life"] == life + 1
        if not killed:
            raise errors.Failed(f"{scenario.file}: life {life} of seed {seed} ended with exit status {done.returncode}")
    raise errors.Failed(f"{scenario.file}: seed {seed} killed its daemon more than {MAX_LIVES} times")


def main(argv: list[str]) -> int:
    """One life: go on from where the last one stopped (or begin), to the end or a kill -9."""
    file, seed, root = argv[0], int(argv[1]), Path(argv[2])
    scenario = spec.load(file)
    config = config_mod.load(root / "fabric.toml")
    carried = json.loads((root / LIFE_FILE).read_text())
    with (root / HISTORY_FILE).open("a") as sink:
        outcome, _ = live(scenario, seed, root, config, sink, carried if carried["life"] else None)
    (root / OUTCOME_FILE).write_text(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
