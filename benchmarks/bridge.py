"""Bridge benchmark (issue 7): 1 MiB packets between two network namespaces.

Usage (root, iproute2):  python benchmarks/bridge.py [--packets N] [--rounds R]

Two namespaces joined by a veth pair (10.200.0.1 <-> 10.200.0.2) play two hosts. Peer:
raw pyzmq PUSH (in A) -> PULL (in B), 1 MiB messages, zero-copy sends, the receiver
touching nothing. Ours: a ring in A -> `python -m fbp.bridge send` (in A) -> ZeroMQ ->
`python -m fbp.bridge receive` (in B) -> a ring read by a consumer; the producer writes
each packet into its ring, the consumer reads it out of its ring. MiB/s from the first to
the last packet at the receiving side; ratio ours / peer (target >= 0.9x). Both run here,
alternating, so load hits both.

The peer sends a payload that is ready in its buffer, as it is. Ours is measured two ways:
"in place", the payload ready in the ring slot (the producer reserves the slot and commits
it, as a component does that writes its output in place), which is the like-for-like
comparison; and "copied in", the producer copying a ready 1 MiB buffer into the ring
(`send`), a copy the peer does not make. Each round also prints the load average and the CPU time
both sides spent per MiB (all their processes and threads, start-up included; ours also
counts this process, whose producer and consumer threads do the ring ends): the CPU
ratio is why a loaded machine costs the bridge more than the peer.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid

from fbp.errors import EndOfStream, RingEmpty
from fbp.ring import Ring

MIB = 1 << 20
PEER = r"""
import sys, time, zmq
role, endpoint, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = zmq.Context()
if role == "push":
    s = ctx.socket(zmq.PUSH); s.setsockopt(zmq.SNDHWM, 64); s.connect(endpoint)
    payload = bytes(1 << 20)
    for _ in range(count):
        s.send(payload, copy=False)
    s.send(b"")
    s.close(linger=-1)
    ctx.term()  # every zero-copy frame is out before the interpreter frees its memory
else:
    s = ctx.socket(zmq.PULL); s.setsockopt(zmq.RCVHWM, 64); s.bind(endpoint)
    first = None; n = 0
    while True:
        m = s.recv(copy=False)
        if len(m) == 0:
            break
        if first is None:
            first = time.perf_counter()
        n += 1
    print(n / (time.perf_counter() - first))
"""


def namespaces():
    tag = uuid.uuid4().hex[:6]
    a, b, va, vb = f"fbpa{tag}", f"fbpb{tag}", f"va{tag}", f"vb{tag}"
    for command in (
        f"ip netns add {a}",
        f"ip netns add {b}",
        f"ip link add {va} type veth peer name {vb}",
        f"ip link set {va} netns {a}",
        f"ip link set {vb} netns {b}",
        f"ip -n {a} addr add 10.200.0.1/24 dev {va}",
        f"ip -n {b} addr add 10.200.0.2/24 dev {vb}",
        f"ip -n {a} link set {va} up",
        f"ip -n {b} link set {vb} up",
        f"ip -n {a} link set lo up",
        f"ip -n {b} link set lo up",
    ):
        subprocess.run(command.split(), check=True)
    return a, b


def peer(a: str, b: str, count: int) -> float:
    pull = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            b,
            sys.executable,
            "-c",
            PEER,
            "pull",
            "tcp://10.200.0.2:7200",
            str(count),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            a,
            sys.executable,
            "-c",
            PEER,
            "push",
            "tcp://10.200.0.2:7200",
            str(count),
        ],
        check=True,
    )
    out, _ = pull.communicate(timeout=120)
    return float(out) * 1.0  # MiB/s: 1 MiB packets


def ours(a: str, b: str, count: int, in_place: bool) -> float:
    source, target = Ring.create(64 * MIB), Ring.create(64 * MIB)
    command = [sys.executable, "-P", "-m", "fbp.bridge"]
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", b, *command, "receive", target.name, "tcp://10.200.0.2:7201"],
        stdout=subprocess.PIPE,
    )
    sender = subprocess.Popen(
        ["ip", "netns", "exec", a, *command, "send", source.name, "tcp://10.200.0.2:7201"],
        stdout=subprocess.PIPE,
    )
    rate: list[float] = []

    def consume() -> None:
        consumer = Ring.attach(target.name, "consumer")
        first, n = None, 0
        while True:
            try:
                consumer.recv(5.0).release()
            except RingEmpty:
                continue
            except EndOfStream:
                break
            if first is None:
                first = time.perf_counter()
            n += 1
        rate.append(n / (time.perf_counter() - first))
        consumer.close()

    reader = threading.Thread(target=consume)
    reader.start()
    producer = Ring.attach(source.name, "producer")
    if in_place:
        # the peer's payload is ready in its buffer and sent as it is; here it is ready in
        # the ring slot (what a component that writes its output in place does)
        for _ in range(count):
            producer.reserve(MIB, 60).commit()
    else:
        payload = bytes(MIB)
        for _ in range(count):
            producer.send(payload, 60)
    producer.close()
    reader.join(120)
    sender.communicate(timeout=60)
    receiver.communicate(timeout=60)
    for ring in (source, target):
        ring.close()
        ring.unlink()
    return rate[0]


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("ip"):
        sys.exit("needs root and iproute2 (network namespaces play the two hosts)")
    a, b = namespaces()
    try:
        print(f"# load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        modes = {"in place": True, "copied in": False}
        ratios: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.rounds):
            # peer, ours, peer, ours: each of ours is compared with the peer run next to it
            for mode, in_place in modes.items():
                children = _cpu_seconds(resource.RUSAGE_CHILDREN)
                raw = peer(a, b, args.packets)
                peer_cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - children
                children, itself = (
                    _cpu_seconds(resource.RUSAGE_CHILDREN),
                    _cpu_seconds(resource.RUSAGE_SELF),
                )
                bridged = ours(a, b, args.packets, in_place)
                ours_cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - children
                ours_cpu += _cpu_seconds(resource.RUSAGE_SELF) - itself
                ratios[mode].append(bridged / raw)
                print(
                    f"# load {os.getloadavg()[0]:.2f}: pyzmq PUSH/PULL {raw:,.0f} MiB/s, fbp "
                    f"bridge ({mode}) {bridged:,.0f} MiB/s, {bridged / raw:.2f}x; CPU per MiB "
                    f"{peer_cpu / args.packets * 1e3:.2f} ms vs "
                    f"{ours_cpu / args.packets * 1e3:.2f} ms ({ours_cpu / peer_cpu:.2f}x)"
                )
        print("\nfbp bridge / raw pyzmq, 1 MiB packets between namespaces:")
        for mode, runs in ratios.items():
            print(
                f"  producer's payload {mode}: median {statistics.median(runs):.2f}x "
                f"(runs: {', '.join(f'{r:.2f}x' for r in runs)})"
            )
    finally:
        subprocess.run(["ip", "netns", "del", a])
        subprocess.run(["ip", "netns", "del", b])


if __name__ == "__main__":
    main(sys.argv[1:])
