"""What the CLI prints: the progress bar."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from vtlfabric.cliformat import progress_bar


@given(
    total=st.integers(0, 2**40),
    done_part=st.floats(0, 1.5),
    jobs=st.integers(0, 50),
    done_jobs=st.integers(0, 50),
    elapsed=st.floats(0, 1e5),
)
def test_the_progress_bar_keeps_its_shape_whatever_the_numbers(total, done_part, jobs, done_jobs, elapsed):
    done = int(total * done_part)
    line = progress_bar(
        "auxcopy:1", {"bytes_done": done, "bytes_total": total, "jobs_total": jobs, "jobs_done": min(done_jobs, jobs)}, elapsed
    )
    bar = re.match(r"auxcopy:1 \[([#-]{24})\]\s+(\d+)%", line)
    assert bar, line
    percent = int(bar.group(2))
    assert 0 <= percent <= 100
    assert bar.group(1).count("#") == round(min(1.0, done / total) * 24 if total else 0)
    assert "\n" not in line and "\r" not in line
