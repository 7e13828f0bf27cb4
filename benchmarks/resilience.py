"""Resilience benchmark (issue 5): how fast a killed worker is back, and what restarts cost.

Usage:
    python benchmarks/resilience.py            # about a minute
    python benchmarks/resilience.py --quick

1. recovery: `Seq -> Thr (4000/s) -> W(core/Repeat:restart=always) -> Drop` runs under a
   Supervisor in this process; W is killed with SIGKILL again and again (every 1.5 s). The
   time from the kill until W's output ring counts a new packet: process start, imports,
   re-attaching its rings, the first replayed or new packet through. Median and p99.
2. throughput: the same graph unthrottled for a fixed time, once undisturbed and once with
   W killed every second; packets delivered per second, ratio with / without.
Both sides run here, one after the other, on the same machine (ratios, not absolutes).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import threading
import time

from fbp.graph import parse
from fbp.registry import Registry
from fbp.runtime.plan import make_plan
from fbp.runtime.supervisor import Supervisor

RECOVERY = """
Seq(core/Sequence) OUT -> IN Thr(core/Throttle)
Thr OUT -> IN W(core/Repeat:restart=always,max_restarts=1000)
'4000' -> RATE Thr
W OUT -> IN Drop(core/Drop)
"""
THROUGHPUT = """
Seq(core/Sequence) OUT -> IN W(core/Repeat:restart=always,max_restarts=1000)
W OUT -> IN Drop(core/Drop)
"""


def _supervisor(text: str) -> Supervisor:
    return Supervisor(make_plan(parse(text, file="bench.fbp"), Registry()), hang_timeout=0)


def _output_ring(supervisor: Supervisor):
    for ring, label in supervisor.rings.values():
        if label.startswith("W.OUT"):
            return ring
    raise LookupError("no W.OUT ring")


def _delivered(supervisor: Supervisor) -> int:
    return _output_ring(supervisor).raw_stats()["packets"]


def _alive(pid: int) -> bool:
    """False once the process is dead (a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def recovery(kills: int) -> list[float]:
    """Seconds from each SIGKILL of W until W sends again."""
    supervisor = _supervisor(RECOVERY)
    times: list[float] = []

    def chaos() -> None:
        try:
            supervisor.started.wait(30)
            time.sleep(1.0)
            for _ in range(kills):
                pid = supervisor.board.processes["W"].pid
                killed = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                while _alive(pid):  # a packet it was committing may still land
                    time.sleep(0.0005)
                before = _delivered(supervisor)
                while _delivered(supervisor) <= before:
                    time.sleep(0.0005)
                times.append(time.perf_counter() - killed)
                time.sleep(1.5)
        finally:
            supervisor.stop()

    thread = threading.Thread(target=chaos)
    thread.start()
    supervisor.run()
    thread.join()
    return times


def throughput(seconds: float, kill_every: float | None) -> float:
    """Packets per second through W, optionally killing W every `kill_every` seconds."""
    supervisor = _supervisor(THROUGHPUT)
    result: list[float] = []

    def drive() -> None:
        try:
            supervisor.started.wait(30)
            time.sleep(0.5)
            start_count, start = _delivered(supervisor), time.perf_counter()
            next_kill = start + (kill_every or seconds * 2)
            while time.perf_counter() - start < seconds:
                time.sleep(0.01)
                if kill_every and time.perf_counter() >= next_kill:
                    next_kill += kill_every
                    pid = supervisor.board.processes["W"].pid
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            result.append((_delivered(supervisor) - start_count) / (time.perf_counter() - start))
        finally:
            supervisor.stop()
            supervisor.stop()  # the source is endless: do not wait for a drain

    thread = threading.Thread(target=drive)
    thread.start()
    supervisor.run()
    thread.join()
    return result[0]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    kills, seconds, rounds = (4, 4.0, 1) if args.quick else (20, 10.0, 2)
    print(f"# load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    times = sorted(recovery(kills))
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"\n| kill -9 -> sending again ({len(times)} kills) | seconds |")
    print("|---|---|")
    print(f"| median | {statistics.median(times):.3f} |")
    print(f"| p99 (of {len(times)}) | {p99:.3f} |")
    print(f"| min / max | {times[0]:.3f} / {times[-1]:.3f} |")
    ratios = []
    for _ in range(rounds):
        calm = throughput(seconds, None)
        chaotic = throughput(seconds, 1.0)
        ratios.append(chaotic / calm)
        print(f"# undisturbed {calm:,.0f} packets/s, one kill a second {chaotic:,.0f} packets/s")
    print(
        f"\nthroughput with one restart a second / without: median "
        f"{statistics.median(ratios):.2f}x (runs: {', '.join(f'{r:.2f}x' for r in ratios)})"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
