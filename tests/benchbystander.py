"""A bystander for the bench's lag probe: another process that only sleeps 10 ms at a
time and prints when it woke late (over 2 ms), as ``deadline woke`` on the monotonic
clock. When it wakes late too, the machine stalled us both (the host, the kernel), not
our event loop. It runs until terminated; "ready" is its first line.

A plain script, so it starts in milliseconds and shares nothing with the fabric.
"""

import sys
import time

INTERVAL = 0.01
REPORTED = 0.002


def main() -> None:
    print("ready", flush=True)
    while True:
        deadline = time.perf_counter() + INTERVAL  # clock-ok: it measures the machine
        time.sleep(INTERVAL)
        woke = time.perf_counter()  # clock-ok
        if woke - deadline > REPORTED:
            print(f"{deadline:.6f} {woke:.6f}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
