"""A bystander for the bench's lag probe: another process that only sleeps 2 ms at a
time and prints when it woke late (over 1 ms), as ``deadline woke`` on the monotonic
clock. Given a CPU number it runs on that CPU alone. The bench runs one on each CPU: when
every one of them wakes late at once, nothing in the machine could run, so the host
(or the kernel) stopped us all, not our event loop. It runs until terminated; "ready"
is its first line.

A plain script, so it starts in milliseconds and shares nothing with the fabric.
"""

import os
import sys
import time

INTERVAL = 0.002
REPORTED = 0.001


def main(argv: list[str]) -> None:
    if argv:
        os.sched_setaffinity(0, {int(argv[0])})
    print("ready", flush=True)
    while True:
        deadline = time.perf_counter() + INTERVAL  # clock-ok: it measures the machine
        time.sleep(INTERVAL)
        woke = time.perf_counter()  # clock-ok
        if woke - deadline > REPORTED:
            print(f"{deadline:.6f} {woke:.6f}", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit(0)
