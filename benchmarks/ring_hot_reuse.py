"""Large frames between two processes, hot reuse on vs off (docs/ring.md, "Large frames").

Usage: python benchmarks/ring_hot_reuse.py [FRAME_BYTES] [RING_BYTES] [FRAMES]

The producer sends one numpy array per frame; the consumer reads one byte per 4 KiB page
of every frame. Prints GB/s for hot_reuse_min=32768 (the default: large frames go back to
the start of the ring when it is free) and 0 (a plain FIFO byte ring), twice each.
"""

from __future__ import annotations

import multiprocessing
import sys
import time

import numpy as np

from fbp.errors import EndOfStream
from fbp.ring import Ring


def produce(name: str, frames: int, frame_bytes: int) -> None:
    ring = Ring.attach(name, "producer")
    source = np.ones(frame_bytes, np.uint8)
    for _ in range(frames):
        ring.send(source)
    ring.close()


def measure(frame_bytes: int, ring_bytes: int, frames: int, hot_reuse_min: int) -> float:
    """GB/s from the second frame to the last, as seen by the consumer."""
    with Ring.create(ring_bytes, hot_reuse_min=hot_reuse_min) as ring:
        consumer = Ring.attach(ring.name, "consumer")
        child = multiprocessing.get_context("spawn").Process(
            target=produce, args=(ring.name, frames, frame_bytes)
        )
        child.start()
        consumer.recv().release()  # the clock starts once the producer is running
        start = time.perf_counter()
        received = 0
        try:
            while True:
                with consumer.recv() as record:
                    view = np.frombuffer(record, np.uint8)
                    view[::4096].sum()
                    del view
                received += 1
        except EndOfStream:
            pass
        elapsed = time.perf_counter() - start
        child.join()
        return received * frame_bytes / elapsed / 1e9


def main(argv: list[str]) -> None:
    frame_bytes = int(argv[0]) if argv else 8 << 20
    ring_bytes = int(argv[1]) if len(argv) > 1 else 32 << 20
    frames = int(argv[2]) if len(argv) > 2 else 400
    for _ in range(2):
        for hot_reuse_min in (32 * 1024, 0):
            rate = measure(frame_bytes, ring_bytes, frames, hot_reuse_min)
            print(
                f"{frame_bytes / 2**20:g} MiB frames, ring {ring_bytes / 2**20:g} MiB, "
                f"hot_reuse_min={hot_reuse_min}: {rate:.1f} GB/s",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
