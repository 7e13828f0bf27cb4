"""Ring ping-pong with and without pinning the two ends to different CPUs.

Usage: python benchmarks/pingpong_placement.py [ROUNDS]

Shows why the ring's 64 B ping-pong is sometimes ~0.6 us and sometimes ~9 us on a busy
2-core machine (benchmarks/README.md, "Ping-pong"): each run prints the round-trip p50/p99
and in how many samples both processes had last run on the same CPU (from /proc/PID/stat).
Unpinned and pinned runs alternate, ROUNDS times (default 3).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

from fbp.ring import Ring

TRIPS = 60_000
WARM_UP = 10_000


def last_cpu(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as file:
        return int(file.read().rsplit(")", 1)[1].split()[36])  # field 39, "processor"


def pong(forward: str, backward: str, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    incoming = Ring.attach(forward, "consumer")
    outgoing = Ring.attach(backward, "producer")
    while True:
        with incoming.recv() as record:
            size = len(record)
        if size == 0:
            break
        outgoing.send(b"y" * 64)


def run(pinned: bool) -> str:
    cpus = sorted(os.sched_getaffinity(0))
    original = set(cpus)
    if pinned:
        os.sched_setaffinity(0, {cpus[0]})
    forward, backward = Ring.create(1 << 20), Ring.create(1 << 20)
    try:
        ponger = multiprocessing.get_context("spawn").Process(
            target=pong, args=(forward.name, backward.name, cpus[-1] if pinned else None)
        )
        ponger.start()
        outgoing = Ring.attach(forward.name, "producer")
        incoming = Ring.attach(backward.name, "consumer")
        message = b"x" * 64
        trips, same, samples = [], 0, 0
        for number in range(TRIPS):
            start = time.perf_counter_ns()
            outgoing.send(message)
            incoming.recv().release()
            trips.append(time.perf_counter_ns() - start)
            if number >= WARM_UP and number % 2000 == 0:
                samples += 1
                same += last_cpu(os.getpid()) == last_cpu(ponger.pid)
        outgoing.send(b"")
        ponger.join()
    finally:
        for ring in (forward, backward):
            ring.close()
            ring.unlink()
        os.sched_setaffinity(0, original)
    measured = sorted(trips[WARM_UP:])
    p50 = measured[len(measured) // 2] / 1e3
    p99 = measured[int(len(measured) * 0.99)] / 1e3
    label = "pinned to different CPUs" if pinned else "unpinned"
    return f"{label:25s} p50 {p50:6.2f} us  p99 {p99:7.2f} us  same CPU in {same}/{samples} samples"


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else 3
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs at least two CPUs")
    print(f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}", flush=True)
    for _ in range(rounds):
        for pinned in (False, True):
            print(run(pinned), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
