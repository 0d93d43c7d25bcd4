"""The daemon's allocator settings: keep the copy path's big buffers mapped.

A copy stream allocates and frees several 4 MiB buffers per chunk (a span read from
a cartridge, a sealed record, an opened one). glibc's malloc serves blocks that big
with fresh ``mmap`` pages, or trims its heap once that much is free, so the kernel
zeroes every page again for the next chunk: ``perf`` put a third of a copy's CPU in
the kernel, most of it faulting in and clearing pages. With a fixed mmap threshold
above a chunk and a trim threshold above a few chunks' worth, freed buffers are
reused from the heap: one aux copy stream went from about 215 to 300 MiB/s on tmpfs.

The cost is up to ``TRIM_THRESHOLD`` of freed heap kept mapped between copies. Only
glibc has ``mallopt``; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's upper bound for it on 64-bit; above any chunk size we allow
TRIM_THRESHOLD = 128 * 2**20


def tune() -> dict[str, int]:
    """Set glibc's mmap and trim thresholds for this process (once, before work starts);
    what it set, for the start-up log (nothing, without glibc)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or None).mallopt
    except (OSError, AttributeError):  # not glibc: its own allocator, its own defaults
        return {}
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        return {"mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD}
    return {}
