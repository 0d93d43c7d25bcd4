"""`make bench` keeps working: its figures add up (no timing is asserted here)."""

from __future__ import annotations

import pytest

from tests.bench import bench, main, table


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
    assert all(f.seconds > 0 for r in rows.values() for f in r.runs)
    text = table(list(rows.values()))
    assert len(text.splitlines()) == 1 + len(rows) and "x" in text.splitlines()[2], "aux copy against dd"


def test_a_bad_size_is_one_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--size", "lots"])
    assert exit_.value.code == 2
    assert "--size" in capsys.readouterr().err
