"""`make bench` keeps working: its figures add up (no timing is asserted here)."""

from __future__ import annotations

import pytest

from tests.bench import bench, main, table


async def test_the_bench_moves_every_byte_it_reports(tmp_path):
    figures = {f.name: f for f in await bench(tmp_path, 2 * 2**20)}
    backed_up = figures["backup (2 fulls)"].nbytes
    assert backed_up > 2**20
    for name in ("auxcopy, 1 stream", "auxcopy, 2 streams", "restore at DR"):
        assert figures[name].nbytes == backed_up, name
    assert figures["verify, both copies"].nbytes == 2 * backed_up
    assert all(f.seconds > 0 for f in figures.values())
    assert len(table(list(figures.values())).splitlines()) == 1 + len(figures)


def test_a_bad_size_is_one_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--size", "lots"])
    assert exit_.value.code == 2
    assert "--size" in capsys.readouterr().err
