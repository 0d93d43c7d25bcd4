"""A bystander for the bench's lag probe: another process that only sleeps 2 ms at a
time and prints when it woke late (over 1 ms), as ``deadline woke`` on the monotonic
clock. Given a CPU number it runs on that CPU alone; the bench runs one on each CPU.
When the one on the loop's CPU (or every one) wakes late too, the host or the kernel
stopped that CPU, not our event loop.

Time it spent ready on the run queue is not counted: that was the CPU busy with other
tasks (ours among them), not stopped. So a late window is the part before it, and
where /proc/thread-self/schedstat is missing the whole of it. It runs until
terminated; "ready" is its first line.

A plain script, so it starts in milliseconds and shares nothing with the fabric.
"""

import os
import sys
import time

INTERVAL = 0.002
REPORTED = 0.001
SCHEDSTAT = "/proc/thread-self/schedstat"


def queued() -> float:
    """Seconds this thread has waited on a run queue, ready to run (0.0 where unknown)."""
    try:
        with open(SCHEDSTAT) as f:
            return int(f.read().split()[1]) / 1e9
    except OSError:
        return 0.0


def main(argv: list[str]) -> None:
    if argv:
        os.sched_setaffinity(0, {int(argv[0])})
    print("ready", flush=True)
    while True:
        deadline, waited = time.perf_counter() + INTERVAL, queued()  # clock-ok: it measures the machine
        time.sleep(INTERVAL)
        woke = time.perf_counter() - (queued() - waited)  # clock-ok
        if woke - deadline > REPORTED:
            print(f"{deadline:.6f} {woke:.6f}", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit(0)
