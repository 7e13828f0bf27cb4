"""Serving simulated frames as a DECTRIS stream (V1 or V2) on a ZeroMQ PUSH socket.

Stands in for a detector in tests and demos: it binds where a DCU would, sends a series
start, one image message per frame and a series end, and obeys PUSH back-pressure (a
send waits for a consumer with room). Every wait is bounded so a stop request is prompt.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import numpy as np
import zmq

from . import stream_v1, stream_v2

__all__ = ["StreamServer"]

_POLL_MS = 100


class StreamServer:
    """A PUSH socket that sends series of frames in Stream V1 or V2 format.

    Args:
        endpoint: where to bind, e.g. "tcp://127.0.0.1:31001" or "ipc:///tmp/eiger".
        protocol: "v1" or "v2".
        compression: "bslz4", "lz4" or None (raw).
        bind: bind (as a detector does) or connect.
        context: ZeroMQ context (default: the process's shared instance).
        send_hwm: messages queued at most before a send waits.
        linger: seconds `close()` waits for queued messages to leave.

    Raises:
        ValueError: unknown protocol or compression.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        protocol: str = "v2",
        compression: str | None = "bslz4",
        bind: bool = True,
        context: zmq.Context | None = None,
        send_hwm: int = 100,
        linger: float = 5.0,
    ) -> None:
        if protocol not in ("v1", "v2"):
            raise ValueError(f"protocol must be 'v1' or 'v2', got {protocol!r}")
        if compression not in (None, "bslz4", "lz4"):
            raise ValueError(f"compression must be 'bslz4', 'lz4' or None, got {compression!r}")
        self.protocol = protocol
        self.compression = compression
        self.linger = linger
        self.socket = (context or zmq.Context.instance()).socket(zmq.PUSH)
        self.socket.setsockopt(zmq.SNDHWM, send_hwm)
        (self.socket.bind if bind else self.socket.connect)(endpoint)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT) if bind else endpoint
        self.sent = 0

    def send(
        self,
        parts: list[bytes] | bytes,
        stop: threading.Event | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Send one message, waiting for room; False if stopped or timed out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.socket.poll(_POLL_MS, zmq.POLLOUT):
            if (stop is not None and stop.is_set()) or (
                deadline is not None and time.monotonic() > deadline
            ):
                return False
        if isinstance(parts, (bytes, bytearray, memoryview)):
            self.socket.send(parts, copy=len(parts) < 65536)
        else:
            self.socket.send_multipart(parts, copy=False)
        self.sent += 1
        return True

    def start_message(
        self, series_id: int, unique_id: str, info: dict, pixel_mask: np.ndarray | None = None
    ) -> list[bytes] | bytes:
        """The series-start message in this server's protocol."""
        if self.protocol == "v1":
            return stream_v1.encode_header(series_id, info, pixel_mask=pixel_mask)
        return stream_v2.encode_start(series_id, unique_id, info, pixel_mask=pixel_mask)

    def image_message(
        self,
        series_id: int,
        unique_id: str,
        image_id: int,
        image: np.ndarray,
        frame_time: float = 0.0,
    ) -> list[bytes] | bytes:
        """One image message in this server's protocol."""
        if self.protocol == "v1":
            start_ns = int(image_id * frame_time * 1e9)
            return stream_v1.encode_image(
                series_id,
                image_id,
                image,
                compression=self.compression,
                start_time=start_ns,
                stop_time=start_ns + int(frame_time * 1e9),
                real_time=int(frame_time * 1e9),
            )
        base = 10_000_000  # a 10 MHz time base, as the rationals of Stream V2 expect
        start = int(image_id * frame_time * base)
        return stream_v2.encode_image(
            series_id,
            unique_id,
            image_id,
            {"threshold_1": image},
            compression=self.compression,
            start_time=(start, base),
            stop_time=(start + int(frame_time * base), base),
            real_time=(int(frame_time * base), base),
        )

    def end_message(self, series_id: int, unique_id: str) -> list[bytes] | bytes:
        """The series-end message in this server's protocol."""
        if self.protocol == "v1":
            return stream_v1.encode_end(series_id)
        return stream_v2.encode_end(series_id, unique_id)

    def send_series(
        self,
        frames: int,
        render: Callable[[int], np.ndarray],
        *,
        series_id: int = 1,
        info: dict | None = None,
        pixel_mask: np.ndarray | None = None,
        rate: float = 0.0,
        stop: threading.Event | None = None,
        timeout: float | None = None,
    ) -> int:
        """Send a start, `frames` images from `render(image_id)`, and an end.

        Args:
            frames: images in the series.
            render: makes image `image_id` (e.g. `lambda i: simulator.frame(i)[0]`).
            series_id: the series number.
            info: start-message fields (e.g. `DetectorSimulator.series_info()`).
            pixel_mask: sent with the start when given.
            rate: images per second at most (0: as fast as the consumer takes them).
            stop: set it to stop early (the end message is still sent).
            timeout: give up on one send after this many seconds without a consumer.

        Returns:
            How many images were sent.
        """
        unique_id = uuid.uuid4().hex
        info = {**(info or {}), "number_of_images": frames}
        if rate > 0:
            info.setdefault("frame_time", 1.0 / rate)
        if not self.send(self.start_message(series_id, unique_id, info, pixel_mask), stop, timeout):
            return 0
        sent = 0
        started = time.monotonic()
        frame_time = 1.0 / rate if rate > 0 else 0.0
        for image_id in range(frames):
            if stop is not None and stop.is_set():
                break
            if rate > 0:
                delay = started + image_id * frame_time - time.monotonic()
                if delay > 0 and (stop.wait(delay) if stop is not None else time.sleep(delay)):
                    break
            message = self.image_message(
                series_id, unique_id, image_id, render(image_id), frame_time
            )
            if not self.send(message, stop, timeout):
                break
            sent += 1
        self.send(self.end_message(series_id, unique_id), None, timeout if timeout else self.linger)
        return sent

    def close(self) -> None:
        """Close the socket, giving queued messages `linger` seconds to leave."""
        self.socket.close(linger=int(self.linger * 1000))

    def __enter__(self) -> StreamServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
