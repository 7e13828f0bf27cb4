"""Tables for ring_peers.py: the ratio table first, raw numbers second (markdown)."""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np
from ipc_peers import size_label


def fmt_rate(value) -> str:
    if value is None:
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k"
    return f"{value:.0f}"


def fmt_ratio(ours, theirs) -> str:
    if not ours or not theirs:
        return "-"
    return f"{ours / theirs:.2f}x"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: dict, peers: list[str]) -> str:
    others = [peer for peer in peers if peer != "ring"]
    through = results["throughput"]
    out = []

    header = (
        ["payload"] + [f"ours / {peer}" for peer in others] + ["ours / best peer", "ours / memcpy"]
    )
    rows = []
    for payload in results["sizes"] if through else []:
        key = str(payload)
        best = {peer: max(through.get(peer, {}).get(key, []), default=None) for peer in peers}
        ours = best.get("ring")
        best_peer = max((best.get(peer) or 0 for peer in others), default=0)
        memcpy_rate = max(results["memcpy"].get(key, []), default=None)
        rows.append(
            [size_label(payload)]
            + [fmt_ratio(ours, best.get(peer)) for peer in others]
            + [fmt_ratio(ours, best_peer), fmt_ratio(ours, memcpy_rate)]
        )
    batch = results.get("batch", {})
    if batch:
        ours = max(batch.get("ring", []), default=None)
        ff = max(batch.get("faster-fifo", []), default=None)
        row = ["64 B batch"] + [
            fmt_ratio(ours, ff) if peer == "faster-fifo" else "" for peer in others
        ]
        rows.append(row + [fmt_ratio(ours, ff), ""])
    out.append("Throughput, msg/s ratio (best of repeats; > 1 means the ring is faster):\n")
    out.append(markdown_table(header, rows))

    latency = results.get("pingpong", {})
    if latency:
        out.append(
            "\nPing-pong 64 B round trip (median of repeats; < 1 means the ring is faster):\n"
        )
        ours = latency.get("ring")
        header = ["percentile"] + [f"ours / {v}" for v in latency if v != "ring"]
        rows = []
        for key in ("p50_us", "p99_us"):
            mine = ours and ours[key]
            rows.append(
                [key[:3]]
                + [
                    fmt_ratio(mine, theirs and theirs[key])
                    for v, theirs in latency.items()
                    if v != "ring"
                ]
            )
        out.append(markdown_table(header, rows))

    if not through:
        out.append("\n(throughput skipped)")
    out.append("\nRaw throughput (msg/s and GB/s of payload; best and median of repeats):\n")
    header = ["peer"] + [size_label(p) for p in results["sizes"]]
    rows = []
    for peer in peers + ["memcpy"]:
        table = results["memcpy"] if peer == "memcpy" else through.get(peer, {})
        row = [peer]
        for payload in results["sizes"]:
            values = table.get(str(payload), [])
            if not values:
                row.append("-")
                continue
            best, median = max(values), statistics.median(values)
            row.append(
                f"{fmt_rate(best)}/s {best * payload / 1e9:.2f} GB/s (med {fmt_rate(median)})"
            )
        rows.append(row)
    for peer, values in batch.items():
        row = [f"{peer} batch"]
        if values:
            row.append(f"{fmt_rate(max(values))}/s (med {fmt_rate(statistics.median(values))})")
        rows.append(row + ["" for _ in results["sizes"][len(row) - 1 :]])
    out.append(markdown_table(header, rows))

    if latency:
        out.append("\nRaw ping-pong 64 B round trip, microseconds (median of repeats):\n")
        rows = [
            [
                variant,
                f"{value['p50_us']:.2f}",
                f"{value['p99_us']:.2f}",
                str(value["trips"]),
                value.get("same_cpu", "-"),
            ]
            for variant, value in latency.items()
            if value
        ]
        header = ["variant", "p50 us", "p99 us", "trips", "both ends on one CPU (samples)"]
        out.append(markdown_table(header, rows))

    idle = results.get("idle", {})
    if idle:
        out.append("\nIdle ring waiter (blocked for the whole interval; median of repeats):\n")
        rows = [
            [
                role,
                f"{value['wall']:.2f}",
                f"{value['cpu'] * 1e3:.2f}",
                f"{value['percent']:.3f} %",
                f"{value['process_cpu'] * 1e3:.1f} ({value['threads']} threads)",
            ]
            for role, value in idle.items()
            if value
        ]
        header = ["side", "wall s", "waiting thread CPU ms", "CPU", "whole process CPU ms"]
        out.append(markdown_table(header, rows))
    return "\n".join(out)


def load_average() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


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
        f"Linux {platform.release()}, Python {platform.python_version()}, numpy {np.__version__}"
    )


def peer_versions(peers: list[str]) -> str:
    from importlib import metadata

    names = {
        "zmq": "pyzmq",
        "faster-fifo": "faster-fifo",
        "iceoryx2": "iceoryx2",
        "ring": "fbp-runtime",
    }
    parts = []
    for peer in peers:
        if peer in names:
            try:
                parts.append(f"{names[peer]} {metadata.version(names[peer])}")
            except metadata.PackageNotFoundError:
                parts.append(f"{names[peer]} (not installed)")
    return ", ".join(parts)
