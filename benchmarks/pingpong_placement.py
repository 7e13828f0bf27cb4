"""Ring ping-pong with and without pinning the two ends to different CPUs.

Usage: python benchmarks/pingpong_placement.py [ROUNDS]

Shows why the ring's 64 B ping-pong is sometimes ~0.6 us and sometimes ~9 us on a busy
2-core machine (benchmarks/README.md, "Ping-pong"): each run prints the round-trip p50/p99
and in how many samples both processes had last run on the same CPU (from /proc/PID/stat).
Unpinned runs, runs pinned to different CPUs and runs pinned to one CPU alternate, ROUNDS
times (default 3); then the busy-polling reference (the same ring, polled with recv(0),
never sleeping) pinned both ways, so each placement has its own reference.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

from fbp.errors import RingEmpty
from fbp.ring import Ring

TRIPS = 60_000
WARM_UP = 10_000
# Two busy-pollers on one CPU take turns by the scheduler's time slice (milliseconds per
# round trip): fewer trips, or that one run takes many minutes.
SAME_CPU_BUSY_TRIPS = 1_500
SAME_CPU_BUSY_WARM_UP = 100


def last_cpu(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as file:
        return int(file.read().rsplit(")", 1)[1].split()[36])  # field 39, "processor"


def receive(ring: Ring, busy: bool):
    """Blocking receive, or the busy-polling reference: try again and again, never sleep."""
    if not busy:
        return ring.recv()
    while True:
        try:
            return ring.recv(0)
        except RingEmpty:
            pass


def pong(forward: str, backward: str, cpu: int | None, busy: bool) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    incoming = Ring.attach(forward, "consumer")
    outgoing = Ring.attach(backward, "producer")
    while True:
        with receive(incoming, busy) as record:
            size = len(record)
        if size == 0:
            break
        outgoing.send(b"y" * 64)


def run(placement: str, busy: bool = False) -> str:
    """Placement: "unpinned", "different" CPUs or the "same" CPU for both ends."""
    cpus = sorted(os.sched_getaffinity(0))
    original = set(cpus)
    pinned = placement != "unpinned"
    if pinned:
        os.sched_setaffinity(0, {cpus[0]})
    forward, backward = Ring.create(1 << 20), Ring.create(1 << 20)
    try:
        ponger = multiprocessing.get_context("spawn").Process(
            target=pong,
            args=(
                forward.name,
                backward.name,
                {"unpinned": None, "different": cpus[-1], "same": cpus[0]}[placement],
                busy,
            ),
        )
        ponger.start()
        outgoing = Ring.attach(forward.name, "producer")
        incoming = Ring.attach(backward.name, "consumer")
        message = b"x" * 64
        trips, same, samples = [], 0, 0
        slow = busy and placement == "same"
        total, warm_up = (SAME_CPU_BUSY_TRIPS, SAME_CPU_BUSY_WARM_UP) if slow else (TRIPS, WARM_UP)
        for number in range(total):
            start = time.perf_counter_ns()
            outgoing.send(message)
            receive(incoming, busy).release()
            trips.append(time.perf_counter_ns() - start)
            if number >= warm_up and number % (total // 25) == 0:
                samples += 1
                same += last_cpu(os.getpid()) == last_cpu(ponger.pid)
        outgoing.send(b"")
        ponger.join()
    finally:
        for ring in (forward, backward):
            ring.close()
            ring.unlink()
        os.sched_setaffinity(0, original)
    measured = sorted(trips[warm_up:])
    p50 = measured[len(measured) // 2] / 1e3
    p99 = measured[int(len(measured) * 0.99)] / 1e3
    label = {
        "unpinned": "unpinned",
        "different": "pinned to different CPUs",
        "same": "pinned to one CPU",
    }[placement]
    label += ", busy-poll" if busy else ""
    return f"{label:36s} p50 {p50:6.2f} us  p99 {p99:7.2f} us  same CPU in {same}/{samples} samples"


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else 3
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs at least two CPUs")
    print(f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}", flush=True)
    for _ in range(rounds):
        for placement in ("unpinned", "different", "same"):
            print(run(placement), flush=True)
        for placement in ("different", "same"):
            print(run(placement, busy=True), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
