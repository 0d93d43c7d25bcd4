"""The daemon's allocator settings keep a copy's big buffers mapped: freeing and
allocating 4 MiB chunks again does not fault in (and zero) fresh pages each time."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from vtlfabric.service import allocator

CHURN = textwrap.dedent("""
    import resource, sys
    from vtlfabric.service import allocator
    if sys.argv[1] == "tuned":
        allocator.tune()

    def churn():  # a copy stream's pattern: a few 4 MiB buffers at once, freed, again
        for _ in range(50):
            buffers = [b"\\1" * (4 << 20) for _ in range(4)]
            del buffers

    churn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    churn()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


@glibc_only
def test_tuned_allocator_reuses_freed_chunks() -> None:
    plain, tuned = page_faults("plain"), page_faults("tuned")
    assert tuned * 100 < plain, f"{tuned} page faults tuned, {plain} without"


@glibc_only
def test_tune_reports_what_it_set() -> None:
    assert allocator.tune() == {"mmap_threshold": 32 * 2**20, "trim_threshold": 128 * 2**20}
