"""Scenarios: a file that names a fabric, a scale, schedules, faults, drills and what
must hold; run by the real daemon on a virtual clock, replayed exactly from one seed.

The runs go through the CLI in a new process each, as a user runs them: the history
hash must then agree across processes, not only within one."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
import trio

from tests.daemon import CLI
from vtlfabric.config.reader import ConfigError
from vtlfabric.scenario import spec
from vtlfabric.scenario.world import build, client_seed

ROOT = Path(__file__).parent.parent
SHIPPED = sorted((ROOT / "config" / "scenarios").glob("*.toml"))
FABRIC = ROOT / "config" / "scenarios" / "fabric" / "fabric.toml"

TWO_DAYS = f"""
description = "two days, a flapping link and a drill"
seed = 11
scale = 65536
duration = "2d"
sample_every = "2h"

[fabric]
config = "{FABRIC}"

[fabric.site.production]
mediaagent = {{ name = "prodma", index_cache = "ic", disk_library = "dl" }}

[[schedule]]
name = "fulls"
backup = ["PRODIBM1", "PRODIBM2", "PRODIBM3", "PRODIBM4"]
type = "full"
start = "1h"
every = "1d"

[[schedule]]
name = "copies"
auxcopy = ["IBMI/dr"]
start = "90m"
every = "1h"

[[fault]]
every = "4h"
target = "link:prod-dr"
action = "partition-a-b"
heal = "30m"

[[drill]]
at = "40h"

[expect]
drills_passed = 1
min_jobs = {{ completed = 8 }}
max_jobs = {{ failed = 0 }}
caught_up = ["IBMI/dr"]
"""


def scenario_file(tmp_path: Path, text: str = TWO_DAYS, name: str = "two-days.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "scenario", "run", *map(str, args)], capture_output=True, text=True, timeout=300)


def report_of(tmp_path: Path, *args: str | Path, name: str = "report.json") -> dict:
    out = tmp_path / name
    done = run(*args, "--report", out)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text())


def test_trio_still_has_the_scheduling_hooks_the_simulator_seeds():
    """seed_trio_scheduler sets two private names of Trio's, as Hypothesis does; a Trio
    that renames them must fail here, not make scenarios quietly unrepeatable."""
    assert hasattr(trio._core._run, "_r") and hasattr(trio._core._run, "_ALLOW_DETERMINISTIC_SCHEDULING")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_scenario_loads_and_builds_its_fabric(path, tmp_path):
    scenario = spec.load(path)
    assert scenario.description and scenario.duration >= 86400 and scenario.expect != spec.Expect()
    config = build(scenario, scenario.seed, tmp_path)
    assert config.daemon.data_scale == scenario.scale and config.metrics is None
    assert config.daemon.state_dir == tmp_path / "state"


def test_the_world_follows_the_seed_and_the_scale(tmp_path):
    scenario = spec.load(scenario_file(tmp_path))
    one, two = build(scenario, 1, tmp_path / "a"), build(scenario, 2, tmp_path / "b")
    seeds = {c.name: c.seed for s in one.sites for c in s.clients}
    assert seeds["PRODIBM1"] == client_seed(1, "PRODIBM1") != {c.name: c.seed for s in two.sites for c in s.clients}["PRODIBM1"]
    library = one.library("production/PRODVTL")
    assert library.capacity == library.nominal_capacity // 65536, "real images are the nominal capacity, scaled"
    assert one.sites[0].mediaagent.index_cache == "ic", "site overrides are laid over the site file"
    assert [s.name for s in one.schedules] == ["fulls", "copies"], "the scenario's schedules replace the config's"


BAD = {
    "no duration": (TWO_DAYS.replace('duration = "2d"\n', ""), "duration: is required"),
    "unknown key": (TWO_DAYS + "colour = 1\n", "colour: unknown key"),
    "bad action": (TWO_DAYS.replace('"partition-a-b"', '"explode"'), "fault[0].action"),
    "bad target kind": (TWO_DAYS.replace('"link:prod-dr"', '"toaster:x"'), "fault[0].target"),
    "at and every": (TWO_DAYS.replace('every = "4h"', 'every = "4h"\nat = "1h"'), "fault[0].at"),
    "drill after the end": (TWO_DAYS.replace('at = "40h"', 'at = "3d"'), "drill[0].at"),
    "bad status": (TWO_DAYS.replace("failed = 0", "melted = 0"), "expect.max_jobs.melted"),
    "ctl without cmd": (TWO_DAYS + '[[ctl]]\nat = "1h"\nrequest = { copy = "IBMI/dr" }\n', "ctl[0].request"),
    "no such site": (TWO_DAYS.replace("[fabric.site.production]", "[fabric.site.moon]"), "fabric.site.moon"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_scenario_is_one_error_naming_the_file_and_key(case, tmp_path):
    text, key = BAD[case]
    path = scenario_file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        build(spec.load(path), 1, tmp_path / "world")
    assert str(path) in str(caught.value) and key in str(caught.value)


def test_a_bad_scenario_exits_2_with_one_line(tmp_path):
    done = run(scenario_file(tmp_path, BAD["bad action"][0]))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "fault[0].action" in done.stderr


def test_a_run_reports_what_happened_and_replays_exactly_in_another_process(tmp_path):
    path = scenario_file(tmp_path)
    first = report_of(tmp_path, path, "--check-determinism")
    assert first["determinism"] == {"second_run_sha256": first["history_sha256"], "same": True}
    assert first["scenario"] == "two-days" and first["seed"] == 11 and first["scale"] == 65536
    assert first["simulated_seconds"] == 2 * 86400 and first["wall_seconds"] > 0
    assert first["jobs"] == {"completed": 8} and first["expect"] == {"passed": True, "failures": []}
    assert first["copies"]["IBMI/dr"]["available"] == 8
    samples = first["lag"]["IBMI/dr"]["samples"]
    assert [s[0] for s in samples[:3]] == [0, 7200, 14400] and len(samples) == 25
    assert any(s[1] > 0 for s in samples), "the copy lagged behind at some point"
    fired = [f for f in first["faults"] if "done" in f]
    assert len(fired) >= 3 and all(f["target"] == "link:prod-dr" and "healed" in f for f in fired[:-1])
    drill = first["drills"][0]
    assert drill["status"] == "passed" and {c["client"] for c in drill["clients"]} == {
        "PRODIBM1",
        "PRODIBM2",
        "PRODIBM3",
        "PRODIBM4",
    }
    assert all(c["rto"] > 0 and c["rpo"] >= 0 for c in drill["clients"])
    assert len(first["history_sha256"]) == 64 and first["events"] > 100
    judged = first["invariants"]
    assert judged["violations"] == [] and judged["steps"] == first["events"], "every event judged, none broke one"
    assert all(judged["exercised"][name] > 0 for name in ("failed-jobs-never-copied", "copied-once", "drills-pass"))

    replay = shlex.split(first["replay"])
    assert replay[:3] == ["vtlfabric", "scenario", "run"] and replay[-2:] == ["--seed", "11"]
    again = report_of(tmp_path, *replay[3:], name="again.json")
    assert again["history_sha256"] == first["history_sha256"] and again["faults"] == first["faults"]

    other = report_of(tmp_path, path, "--seed", "12", name="other.json")
    assert other["history_sha256"] != first["history_sha256"]
    assert [f["at"] for f in other["faults"]] != [f["at"] for f in first["faults"]], "fault times follow the seed"


def test_a_missed_expectation_exits_1_and_says_which(tmp_path):
    path = scenario_file(tmp_path, TWO_DAYS.replace("drills_passed = 1", "drills_passed = 2"))
    done = run(path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "EXPECTATIONS MISSED: drills passed: 1, expected at least 2" in done.stdout


QUIET_TAIL = f"""
description = "faults that wait to bite, injected before a quiet tail"
seed = 3
scale = 65536
duration = "1d"
settle = "12h"

[fabric]
config = "{FABRIC}"

[[schedule]]
name = "fulls"
backup = ["PRODIBM1", "PRODIBM2", "PRODIBM3", "PRODIBM4"]
type = "full"
start = "14h"
every = "2d"

[[schedule]]
name = "copies"
auxcopy = ["IBMI/dr"]
start = "15h"
every = "2d"

[[fault]]
at = "2h"
target = "client:PRODIBM1"
action = "fail-backup"
{
    "".join(
        f'''
[[fault]]
at = "{60 + n}m"
target = "link:prod-dr"
action = "corrupt"
'''
        for n in range(5)
    )
}
[expect]
min_jobs = {{ completed = 4 }}
max_jobs = {{ failed = 0 }}
caught_up = ["IBMI/dr"]
"""


def test_a_fault_injected_before_the_quiet_tail_does_not_bite_in_it(tmp_path):
    """Five corruptions of an idle link, and a client's armed failure, wait for traffic
    that comes only in the quiet tail: there they would fail a backup and, three attempts
    each, the copy's handshakes. The tail begins by disarming them, logged."""
    history = tmp_path / "history.jsonl"
    report = report_of(tmp_path, scenario_file(tmp_path, QUIET_TAIL, "quiet.toml"), "--history", history)
    assert report["jobs"] == {"completed": 4} and report["copies"]["IBMI/dr"]["available"] == 4
    disarmed = [e for e in map(json.loads, history.read_text().splitlines()) if e["event"] == "fault.disarmed"]
    assert [(e["target"], e["action"], e["count"], e["t"]) for e in disarmed] == [
        ("link:prod-dr", "corrupt", 5, 12 * 3600.0),
        ("client:PRODIBM1", "fail-backup", 1, 12 * 3600.0),
    ]
