"""Three-process pipelines: `fbp run` against the same pipeline hand-written on pyzmq and
on multiprocessing.Queue (issue 4's benchmark).

Usage:
    python benchmarks/pipeline.py            # full run, about two minutes
    python benchmarks/pipeline.py --quick    # smoke run
    python benchmarks/pipeline.py --transports zmq,mp.Queue   # peers only, no fbp

Two measurements, each repeated (best and median reported; the machine is shared):

1. frames: source -> pass-through -> sink of 4 MiB uint8 frames for a fixed time. The source
   sets byte 0 of a ready frame and sends it (one copy into the transport); the pass-through
   receives and forwards; the sink reads one byte per 4 KiB page. Frames/s at the sink, from
   the first frame to the last. fbp: `benchmarks/pipeline_frames.fbp` with
   `bench/FrameSource -> core/Repeat -> bench/FrameSink` (benchmarks/lib/bench.py).
2. packets: the same chain with 64 B packets stamped with their send time, paced at a steady
   rate after everything is up; the sink reports the latency percentiles. The per-hop
   overhead is the p50 latency divided by the two hops. Also the unpaced packets/s.

The fbp side is run as `python -m fbp run GRAPH --quiet --path benchmarks/lib --set ...`, so it
includes everything the runtime does per packet (codec, ports, status counters); the peers are
the bare minimum a programmer would write by hand with each library.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARY = os.path.join(HERE, "lib")
sys.path.insert(0, LIBRARY)  # bench.py: the same sink arithmetic for every transport

from bench import PAGE, latency_summary  # noqa: E402

FRAME_BYTES = 4 << 20
FRAME_DEPTH = 4  # frames in flight per link (fbp's default 16 MiB ring holds 3 + headers)
PACKET_DEPTH = 1000
END = b""


# ---------------------------------------------------------------------------------------
# links: one hop of a hand-written pipeline
# ---------------------------------------------------------------------------------------


def open_link(transport: str, ctx, depth: int) -> dict:
    if transport == "zmq":
        path = os.path.join(
            tempfile.gettempdir(), f"fbp-bench-{os.getpid()}-{secrets.token_hex(4)}"
        )
        # "done": see ring_peers.py; libzmq may lose the tail when the PUSH side closes early.
        return {
            "transport": "zmq",
            "address": f"ipc://{path}",
            "path": path,
            "depth": depth,
            "done": ctx.Event(),
        }
    return {"transport": "mp.Queue", "queue": ctx.Queue(depth)}


def close_link(link: dict) -> None:
    if link["transport"] == "zmq" and os.path.exists(link["path"]):
        os.unlink(link["path"])


class Sending:
    """`send` hands the message over as it is (zero-copy where the library can);
    `send_copy` copies it first, for a source that reuses its buffer: zmq (copy=False)
    and mp.Queue (pickled later by a feeder thread) would otherwise read it after the
    source has changed it. That one copy is the fbp source's copy into the ring."""

    def __init__(self, link: dict):
        self.link = link
        if link["transport"] == "zmq":
            import zmq

            self.context = zmq.Context()
            self.socket = self.context.socket(zmq.PUSH)
            self.socket.sndhwm = link["depth"]
            self.socket.bind(link["address"])
            socket = self.socket

            def send(message):
                socket.send(message, copy=False)

            def send_copy(message):
                socket.send(message, copy=True)

            self.send = send
            self.send_copy = send_copy
        else:
            put = link["queue"].put
            self.send = put

            def send_copy(message):
                put(message.copy())

            self.send_copy = send_copy

    def end(self) -> None:
        if self.link["transport"] == "zmq":
            self.socket.send(END)
            self.link["done"].wait(60)
            self.socket.close()
            self.context.term()
        else:
            queue = self.link["queue"]
            queue.put(END)
            queue.close()
            queue.join_thread()


class Receiving:
    def __init__(self, link: dict, large: bool):
        self.link = link
        if link["transport"] == "zmq":
            import zmq

            self.context = zmq.Context()
            self.socket = self.context.socket(zmq.PULL)
            self.socket.rcvhwm = link["depth"]
            self.socket.connect(link["address"])
            recv = self.socket.recv
            done = link["done"]

            # Large frames zero-copy (a Frame), small ones as bytes (faster for pyzmq).
            def receive():
                message = recv(copy=not large)
                if len(message) == 0:
                    done.set()
                    return None
                return message

            self.receive = receive
        else:
            get = link["queue"].get

            def receive():
                message = get()
                return message if len(message) else None

            self.receive = receive


def frame_source(link: dict, seconds: float) -> dict:
    out = Sending(link)
    template = np.full(FRAME_BYTES, 7, np.uint8)
    deadline = time.perf_counter() + seconds
    number = 0
    while time.perf_counter() < deadline:
        template[0] = number & 0xFF
        out.send_copy(template)
        number += 1
    out.end()
    return {"sent": number}


def pass_through(inbound: dict, outbound: dict, large: bool) -> dict:
    incoming = Receiving(inbound, large)
    out = Sending(outbound)
    count = 0
    while (message := incoming.receive()) is not None:
        out.send(message)  # a zmq Frame is forwarded without a copy in user space
        count += 1
    out.end()
    return {"passed": count}


def frame_sink(link: dict) -> dict:
    incoming = Receiving(link, large=True)
    count = 0
    first = last = 0.0
    while (message := incoming.receive()) is not None:
        view = message.buffer if hasattr(message, "buffer") else message
        int(np.frombuffer(view, np.uint8)[::PAGE].sum())
        now = time.perf_counter()
        if count == 0:
            first = now
        count += 1
        last = now
    return {"frames": count, "seconds": last - first}


def packet_source(link: dict, size: int, count: int, interval: float, delay: float) -> dict:
    out = Sending(link)
    body = bytearray(size)
    time.sleep(delay)
    next_time = time.perf_counter()
    for _ in range(count):
        if interval:
            next_time += interval
            while time.perf_counter() < next_time:
                time.sleep(max(0.0, next_time - time.perf_counter() - 50e-6))
        body[:8] = time.perf_counter_ns().to_bytes(8, "little")
        out.send(bytes(body))
    out.end()
    return {"sent": count}


def latency_sink(link: dict) -> dict:
    incoming = Receiving(link, large=False)
    latencies = []
    first = last = 0
    while (message := incoming.receive()) is not None:
        now = time.perf_counter_ns()
        latencies.append(now - int.from_bytes(message[:8], "little"))
        if len(latencies) == 1:
            first = now
        last = now
    return latency_summary(latencies, first, last)


# ---------------------------------------------------------------------------------------
# running one pipeline
# ---------------------------------------------------------------------------------------


def child(function, conn, *args) -> None:
    try:
        result = function(*args)
    except BaseException as error:
        result = {"error": f"{type(error).__name__}: {error}"}
    conn.send_bytes(json.dumps(result).encode())
    conn.close()


def run_children(jobs: list[tuple], timeout: float) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    started = []
    for function, *args in jobs:
        reader, writer = ctx.Pipe(duplex=False)
        process = ctx.Process(target=child, args=(function, writer, *args), daemon=True)
        process.start()
        writer.close()
        started.append((process, reader))
    results: list[dict | None] = [None] * len(started)
    waiting = {reader: index for index, (_, reader) in enumerate(started)}
    deadline = time.monotonic() + timeout
    while waiting:
        ready = multiprocessing.connection.wait(
            list(waiting), max(0.0, deadline - time.monotonic())
        )
        if not ready:
            for index in waiting.values():
                results[index] = {"error": f"timed out after {timeout:.0f} s"}
            break
        for reader in ready:
            index = waiting.pop(reader)
            try:
                results[index] = json.loads(reader.recv_bytes())
            except EOFError:
                results[index] = {"error": f"exited with status {started[index][0].exitcode}"}
            if "error" in results[index]:
                deadline = min(deadline, time.monotonic() + 2)
    for process, reader in started:
        reader.close()
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    return results


def peer_pipeline(transport: str, kind: str, settings: dict) -> dict | None:
    ctx = multiprocessing.get_context("spawn")
    depth = FRAME_DEPTH if kind == "frames" else PACKET_DEPTH
    first, second = open_link(transport, ctx, depth), open_link(transport, ctx, depth)
    try:
        if kind == "frames":
            jobs = [
                (frame_sink, second),
                (pass_through, first, second, True),
                (frame_source, first, settings["seconds"]),
            ]
        else:
            jobs = [
                (latency_sink, second),
                (pass_through, first, second, False),
                (
                    packet_source,
                    first,
                    64,
                    settings["count"],
                    settings["interval"],
                    settings["delay"],
                ),
            ]
        results = run_children(jobs, timeout=settings["timeout"])
    finally:
        close_link(first)
        close_link(second)
    for result in results:
        if "error" in result:
            print(f"  ! {transport} {kind}: {result['error']}", file=sys.stderr, flush=True)
            return None
    return results[0]


def fbp_pipeline(kind: str, settings: dict) -> dict | None:
    graph = os.path.join(HERE, f"pipeline_{kind}.fbp")
    if kind == "frames":
        overrides = [f"Src.SIZE={FRAME_BYTES}", f"Src.SECONDS={settings['seconds']}"]
    else:
        overrides = [
            f"Src.COUNT={settings['count']}",
            f"Src.INTERVAL={settings['interval']}",
            f"Src.DELAY={settings['delay']}",
        ]
    command = [
        sys.executable,
        "-m",
        "fbp",
        "run",
        graph,
        "--quiet",
        "--no-status",
        "--path",
        LIBRARY,
    ]
    for override in overrides:
        command += ["--set", override]
    # Own session, so a hung run can be stopped with all its component processes.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tempfile.gettempdir(),
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=settings["timeout"])
    except subprocess.TimeoutExpired:
        print(f"  ! fbp {kind}: no end after {settings['timeout']} s; state:", file=sys.stderr)
        print(describe_hung_run(process.pid), file=sys.stderr, flush=True)
        stop_run(process)
        return None
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(
            f"  ! fbp {kind}: exit {done.returncode}\n{done.stderr[-2000:]}",
            file=sys.stderr,
            flush=True,
        )
        return None
    return json.loads(lines[-1])


def describe_hung_run(pid: int) -> str:
    """The run's processes and the counters of its rings, for a report on a hang."""
    lines = []
    listing = subprocess.run(
        ["ps", "-o", "pid,stat,pcpu,wchan:20,args", "--ppid", str(pid)],
        capture_output=True,
        text=True,
    )
    lines.append(listing.stdout.rstrip())
    from fbp.ring import Ring

    for name in sorted(os.listdir("/dev/shm")):
        if name.startswith(f"fbp-{pid}-"):
            try:
                stats = Ring.attach(name, "observer").stats()
            except Exception as error:  # a report must not fail on one odd segment
                lines.append(f"{name}: {error}")
                continue
            keys = (
                "packets",
                "packets_received",
                "packets_released",
                "fill_bytes",
                "fill_records",
                "full_waits",
                "empty_waits",
                "producer_closed",
                "consumer_closed",
                "producer_pid",
                "consumer_pid",
            )
            lines.append(f"{name}: " + ", ".join(f"{key}={stats.get(key)}" for key in keys))
    return "\n".join(lines)


def stop_run(process: subprocess.Popen) -> None:
    """Ctrl-C (the runtime's graceful stop), then kill the session; remove its segments."""
    import signal

    for sig, wait in ((signal.SIGINT, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    for name in os.listdir("/dev/shm"):
        if name.startswith(f"fbp-{process.pid}-"):
            os.unlink(os.path.join("/dev/shm", name))


def measure(transport: str, kind: str, settings: dict) -> dict | None:
    if transport == "fbp":
        return fbp_pipeline(kind, settings)
    return peer_pipeline(transport, kind, settings)


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_facts() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, nproc {os.cpu_count()}, {model}, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def load_average() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: short, 1 repeat")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 3)")
    parser.add_argument("--transports", default="fbp,zmq,mp.Queue", help="comma-separated")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: frames,packets,rate"
    )
    parser.add_argument("--json", help="also write the raw results to this file")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    transports = [t for t in args.transports.split(",") if t]
    for transport in transports:
        if transport not in ("fbp", "zmq", "mp.Queue"):
            parser.error(f"unknown transport {transport!r}; known: fbp, zmq, mp.Queue")
    skip = set(args.skip.split(","))
    frames = {"seconds": 0.5 if args.quick else 2.0, "timeout": 40}
    paced = {"count": 300 if args.quick else 2000, "interval": 0.0005, "delay": 1.0, "timeout": 60}
    unpaced = {
        "count": 20_000 if args.quick else 200_000,
        "interval": 0.0,
        "delay": 1.0,
        "timeout": 90,
    }

    print(f"# pipeline: {machine_facts()}; {repeats} repeats", flush=True)
    print(f"# {load_average()} at start\n", flush=True)
    started = time.perf_counter()
    results: dict = {"facts": machine_facts(), "frames": {}, "latency": {}, "rate": {}}
    for transport in transports:
        if "frames" not in skip:
            runs = [measure(transport, "frames", frames) for _ in range(repeats)]
            rates = [run["frames"] / run["seconds"] for run in runs if run and run["seconds"] > 0]
            results["frames"][transport] = rates
            results.setdefault("failed", {})[transport] = len(runs) - len(rates)
            print(
                f"  {transport:9s} 4 MiB frames/s: {', '.join(f'{r:.0f}' for r in rates)}",
                flush=True,
            )
        if "packets" not in skip:
            runs = [
                run for run in (measure(transport, "packets", paced) for _ in range(repeats)) if run
            ]
            results["latency"][transport] = runs
            print(
                f"  {transport:9s} 64 B latency p50/p99 us (2 hops, 1 per 0.5 ms): "
                + ", ".join(f"{run['p50_us']:.1f}/{run['p99_us']:.1f}" for run in runs),
                flush=True,
            )
        if "rate" not in skip:
            runs = [
                run
                for run in (measure(transport, "packets", unpaced) for _ in range(repeats))
                if run
            ]
            results["rate"][transport] = [run["rate"] for run in runs]
            print(
                f"  {transport:9s} 64 B packets/s unpaced: "
                + ", ".join(f"{run['rate']:.0f}" for run in runs),
                flush=True,
            )

    print()
    others = [t for t in transports if t != "fbp"]
    if "fbp" in transports and results["frames"]:
        ours = max(results["frames"].get("fbp", []), default=None)
        rows = []
        for other in others:
            theirs = max(results["frames"].get(other, []), default=None)
            rows.append([f"fbp / {other}", f"{ours / theirs:.2f}x" if ours and theirs else "-"])
        print("4 MiB frames/s ratio (best of repeats):\n")
        print(markdown_table(["ratio", "frames/s"], rows))
    rows = []
    for transport in transports:
        rates = results["frames"].get(transport, [])
        latency = sorted(results["latency"].get(transport, []), key=lambda run: run["p50_us"])
        middle = latency[len(latency) // 2] if latency else None
        packet_rates = results["rate"].get(transport, [])
        failed = results.get("failed", {}).get(transport, 0)
        rows.append(
            [
                transport,
                (
                    f"{max(rates):.0f} ({max(rates) * FRAME_BYTES / 1e9:.2f} GB/s), "
                    f"med {statistics.median(rates):.0f}"
                    if rates
                    else "-"
                )
                + (f"; {failed} of {repeats} runs failed or hung" if failed else ""),
                f"{middle['p50_us'] / 2:.1f}" if middle else "-",
                f"{middle['p50_us']:.1f} / {middle['p99_us']:.1f}" if middle else "-",
                f"{max(packet_rates):.0f}" if packet_rates else "-",
            ]
        )
    print("\nRaw numbers (frames: best and median; latency: the median run):\n")
    print(
        markdown_table(
            [
                "pipeline",
                "4 MiB frames/s",
                "per-hop overhead 64 B, us (p50 / 2)",
                "64 B end-to-end p50 / p99 us",
                "64 B packets/s unpaced",
            ],
            rows,
        )
    )
    results["seconds"] = time.perf_counter() - started
    print(f"\n(total {results['seconds']:.0f} s, {load_average()} at the end)")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
