"""`make bench` keeps working: its figures add up (no timing is asserted here)."""

from __future__ import annotations

import itertools
import json

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from tests.bench import bench, main, table
from tests.benchbacula import BACKUP, COPY, RESTORE, RUNNING, BaculaMissing, bacula_figures, find_bacula
from tests.benchfigures import Figure, Lag, Row, Wake, machine_stops
from tests.benchresults import main as results_main
from tests.benchsim import row as simulator_row


@pytest.fixture(autouse=True)
def _structlog_as_it_was():
    """main() quiets structlog for its table: later tests capture logs, so put it back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def bacula_installed() -> bool:
    try:
        find_bacula()
    except BaculaMissing:
        return False
    return True


async def test_the_bench_moves_every_byte_it_reports(tmp_path):
    rows = {r.name: r for r in await bench(tmp_path, 2 * 2**20, runs=2)}
    assert all(len(r.runs) == 2 for r in rows.values())
    backed_up = rows["backup (2 fulls)"].runs[0].nbytes
    assert backed_up > 2**20
    for n in range(2):
        for name in ("backup (2 fulls)", "auxcopy, 1 stream", "auxcopy, 2 streams", "restore at DR"):
            assert rows[name].runs[n].nbytes == backed_up, (name, n)
        assert rows["verify, both copies"].runs[n].nbytes == 2 * backed_up * (n + 1), "every job of both copies, so far"
    assert rows["dd bs=4M (reference)"].runs[0].nbytes > backed_up // 2
    for name in ("safe copy floor, 1 stream", "safe copy floor, 2 streams", "safe copy floor, 1 stream, serial"):
        assert 0 < rows[name].runs[0].nbytes <= backed_up, "the floor moves aux copy's bytes (or its images' all)"
    assert rows["safe copy floor, 2 streams, serial"].runs[1].nbytes == rows["safe copy floor, 2 streams"].runs[1].nbytes
    assert all(f.seconds > 0 for r in rows.values() for f in r.runs)
    lines = table(list(rows.values())).splitlines()
    assert len(lines) == 1 + len(rows) + 1, "a line per row, and how two streams scale"
    assert len([cell for cell in lines[2].split() if cell.endswith("x")]) == 2, "aux copy against dd and against the floor"
    assert lines[-1].startswith("two streams against one: aux copy ") and ", the serial floor " in lines[-1]


def test_a_bad_size_is_one_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--size", "lots"])
    assert exit_.value.code == 2
    assert "--size" in capsys.readouterr().err


def test_without_bacula_the_bench_says_it_skipped_its_rows(tmp_path, capsys):
    with pytest.raises(BaculaMissing, match="bacula-dir, bacula-sd, bacula-fd, bconsole not found"):
        find_bacula(path=str(tmp_path))
    out = tmp_path / "bench.json"
    assert main(["--size", "1MiB", "--runs", "1", "--bacula-path", str(tmp_path), "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("Bacula: skipped (bacula-dir, "), lines
    assert not any(line.startswith("bacula") for line in lines), "no Bacula rows"
    assert json.loads(out.read_text())[-1] == {"name": "bacula", "note": lines[-1]}


def _row(name: str, nbytes: int, seconds: float) -> Row:
    return Row(name, tuple(Figure(name, nbytes, seconds) for _ in range(5)))


def test_our_backup_copy_and_restore_rows_give_their_ratio_to_bacula_s():
    ours = [_row("backup (2 fulls)", 2**20, 1.0), _row("auxcopy, 1 stream", 2**20, 0.5), _row("restore at DR", 2**20, 0.25)]
    peers = [_row(BACKUP, 2**20, 2.0), _row(COPY, 2**20, 2.0), _row(RESTORE, 2**20, 2.0)]
    peers += [_row(RUNNING[BACKUP], 2**20, 1.0), _row(RUNNING[COPY], 2**20, 1.0), _row(RUNNING[RESTORE], 2**20, 1.0)]
    lines = table(ours + peers).splitlines()
    assert "vs Bacula" in lines[0] and "vs running" in lines[0]
    ratios = [[cell for cell in line.split() if cell.endswith("x")] for line in lines[1:]]
    assert ratios[0] == ["2.00x", "1.00x"], "backup: our 1 MiB/s against Bacula's 0.5, and 1 running"
    assert ratios[1] == ["4.00x", "2.00x"], "aux copy against the copy job (no dd row: no ratio to it)"
    assert ratios[2] == ["8.00x", "4.00x"], "restore"
    assert ratios[3:] == [[]] * 6, "Bacula's own rows give no ratio"


def test_aux_copy_rows_give_their_ratio_to_the_safe_copy_floor_and_both_scale():
    rows = [_row("auxcopy, 1 stream", 2**20, 1.0), _row("auxcopy, 2 streams", 2**20, 0.8)]
    rows += [_row("safe copy floor, 1 stream", 2**20, 0.5), _row("safe copy floor, 2 streams", 2**20, 0.25)]
    lines = table(rows).splitlines()
    assert "vs floor" in lines[0]
    assert [cell for cell in lines[1].split() if cell.endswith("x")] == ["0.50x"], "1 MiB/s against the floor's 2"
    assert [cell for cell in lines[2].split() if cell.endswith("x")] == ["0.31x"], "1.25 against 4"
    assert lines[-1] == "two streams against one: aux copy 1.25x, the floor 2.00x"


@pytest.mark.skipif(not bacula_installed(), reason="Bacula is not installed (.ci/bacula-deps)")
def test_a_private_bacula_backs_up_copies_and_restores_the_bytes_it_reports(tmp_path):
    size = 2**20 + 12345
    figures = bacula_figures(tmp_path, size, runs=1)
    assert list(figures) == [BACKUP, COPY, RESTORE, *RUNNING.values()]
    assert all(len(found) == 1 and found[0].seconds > 0 for found in figures.values())
    assert figures[BACKUP][0].nbytes == figures[RESTORE][0].nbytes == size
    assert size <= figures[COPY][0].nbytes < size + 4096, "the copy job counts the file's attributes record too"
    for name in (BACKUP, COPY, RESTORE):
        assert figures[RUNNING[name]][0].nbytes == figures[name][0].nbytes
        assert figures[RUNNING[name]][0].seconds <= figures[name][0].seconds


def test_lag_the_bystanders_shared_is_the_machine_s_not_the_loop_s():
    ours = [Wake(0.0, 0.030), Wake(1.0, 1.005), Wake(2.0, 2.0)]
    bystanders = {0: [(0.005, 0.025), (1.5, 1.512)], 1: [(0.004, 0.010), (0.010, 0.026), (1.0, 1.004)]}
    lag = Lag.of(ours, bystanders, stolen=0.05)
    assert lag.max == pytest.approx(0.030)
    assert lag.machine == pytest.approx(0.020), "both CPUs stopped from 5 to 25 ms"
    assert lag.own == pytest.approx(0.010), "30 ms late, 20 of them while every bystander was late too"
    assert lag.stolen == 0.05
    assert Lag.of(ours, {}).own == pytest.approx(0.030), "no bystander stall: all of it is the loop's"


def test_lag_a_stop_of_the_loop_s_cpu_is_the_machine_s_and_of_another_is_not():
    bystanders = {0: [(0.0, 0.030)], 1: []}
    assert Lag.of([Wake(0.0, 0.030, cpus=(0,))], bystanders).own == pytest.approx(0.0)
    assert Lag.of([Wake(0.0, 0.030, cpus=(1, 0))], bystanders).own == pytest.approx(0.0), "it slept on 1, woke on 0"
    assert Lag.of([Wake(0.0, 0.030, cpus=(1,))], bystanders).own == pytest.approx(0.030), "it had the other CPU"
    assert Lag.of([Wake(0.0, 0.030)], bystanders).own == pytest.approx(0.030), "its CPU unknown: only a stop of all"


def test_lag_overlapping_stalls_are_not_counted_twice():
    ours = [Wake(0.0, 0.030, cpus=(0,))]
    stalls = [(0.0, 0.020), (0.010, 0.025)]
    assert Lag.of(ours, {0: stalls}).own == pytest.approx(0.005)
    assert Lag.of(ours, {0: stalls, 1: stalls}).machine == pytest.approx(0.025)


WINDOWS = st.lists(st.tuples(st.integers(0, 100), st.integers(1, 10)).map(lambda w: (w[0], w[0] + w[1])), max_size=6)


@given(st.lists(WINDOWS, min_size=1, max_size=3))
def test_machine_stops_are_the_moments_every_cpu_was_stalled(per_cpu):
    stops = machine_stops(per_cpu)
    assert all(a < b for a, b in stops) and all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(stops))
    for moment in (m + 0.5 for m in range(111)):  # between the windows' ends, which are whole numbers
        everywhere = all(any(a < moment < b for a, b in cpu) for cpu in per_cpu)
        assert everywhere == any(a < moment < b for a, b in stops), moment


def test_results_gathers_every_part_with_the_machine_and_names_a_missing_one(tmp_path, capsys):
    (tmp_path / "throughput.json").write_text(json.dumps([{"name": "backup (2 fulls)", "median_mib_per_s": 1.0}]))
    (tmp_path / "simulator.json").write_text(json.dumps({"month scenario": {"ratio": 2}}))
    assert results_main(["--dir", str(tmp_path)]) == 1, "a part is missing"
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["throughput"] == [{"name": "backup (2 fulls)", "median_mib_per_s": 1.0}]
    assert results["simulator"] == {"month scenario": {"ratio": 2}}
    assert results["missing"] == ["catalog (catalog.json)"]
    assert results["machine"]["cpus"] >= 1 and results["machine"]["python"]
    assert "missing: catalog" in capsys.readouterr().out
    (tmp_path / "catalog.json").write_text(json.dumps({"jobs": 10, "rows": {}}))
    assert results_main(["--dir", str(tmp_path)]) == 0
    assert "missing" not in json.loads((tmp_path / "results.json").read_text())


def test_a_simulator_row_is_the_median_of_its_runs_with_min_max_and_each_run():
    runs = [{"simulated_seconds": s, "wall_seconds": w} for s, w in ((800, 2), (1000, 1), (300, 3), (900, 3), (500, 1))]
    r = simulator_row("demo --virtual-clock", runs)
    assert (r["ratio"], r["min"], r["max"]) == (400, 100, 1000)  # ratios 400, 1000, 100, 300, 500
    assert r["wall_seconds"] == 2 and r["goal"] == 1000 and r["runs"] == runs
