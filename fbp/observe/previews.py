"""Previews: small, JSON-able pictures of packet values for the dashboard.

`render(value)` turns a value into one of:
- {"kind": "image", "width", "height", "pixels": base64 uint8 rows, "min", "max", "log",
  "shape"}: a 2-D array, downsampled by block maxima (a Bragg spot survives), scaled to
  0-255 between robust limits (invalid pixels at the dtype's maximum are ignored);
- {"kind": "plot", "x", "y", "xlabel"}: a 1-D array, or a radial profile record;
- {"kind": "scalars", "values": {name: number}}: a number, or the numeric fields of a
  record (a peak table gives `n_peaks` and `is_hit`, from which the page draws a hit rate);
- {"kind": "text", "text"}: anything else, shortened.

`PreviewTaps` gives every connection a sampled tap (`Supervisor.add_output(sampled=...)`)
and reads only the taps someone is watching: an unwatched tap stays full, so its producer
skips the copy at the cost of a clock read per packet.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fbp.codec import decode
from fbp.errors import EndOfStream, RingEmpty
from fbp.ring import RecordKind, Ring, new_segment_name

__all__ = ["PreviewTaps", "render"]

IMAGE_EDGE = 256  # pixels of the longest side of a preview image
PLOT_POINTS = 2000
TEXT_CHARACTERS = 400
WATCH_SECONDS = 10.0  # a connection stays watched this long after its last request
SAMPLES_PER_SECOND = 4.0


def render(value: Any, *, log: bool = True) -> dict:
    """A preview of a packet value (see the module docstring)."""
    if isinstance(value, np.ndarray):
        if value.ndim == 2 and min(value.shape) > 1:
            return _image(value, log)
        if value.ndim == 1 and value.dtype.kind in "iufb":
            return _plot(np.arange(len(value)), value, "index")
    if isinstance(value, dict):
        if "radial" in value and "intensity" in value:
            return _plot(value["radial"], value["intensity"], str(value.get("unit", "")))
        numbers = {
            key: float(item)
            for key, item in value.items()
            if isinstance(item, (bool, int, float, np.integer, np.floating))
        }
        if numbers:
            return {"kind": "scalars", "values": numbers}
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return {"kind": "scalars", "values": {"value": float(value)}}
    text = repr(value)
    if len(text) > TEXT_CHARACTERS:
        text = text[:TEXT_CHARACTERS] + "..."
    return {"kind": "text", "text": text}


def _image(frame: np.ndarray, log: bool) -> dict:
    data = frame
    if data.dtype.kind in "ui":
        invalid = data == np.iinfo(data.dtype).max
        data = np.where(invalid, 0, data).astype(np.float32)
    else:
        data = np.nan_to_num(data.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    rows, cols = data.shape
    step = max(1, -(-max(rows, cols) // IMAGE_EDGE))
    if step > 1:
        # block maxima: a one-pixel Bragg spot must still show at 1/8 scale
        height, width = rows // step, cols // step
        data = data[: height * step, : width * step]
        data = data.reshape(height, step, width, step).max(axis=(1, 3))
    low = float(np.percentile(data, 1))
    high = float(np.percentile(data, 99.9))
    if high <= low:
        high = low + 1.0
    scaled = np.clip(data, low, high) - low
    if log:
        scaled = np.log1p(scaled) / np.log1p(high - low)
    else:
        scaled = scaled / (high - low)
    pixels = (scaled * 255).astype(np.uint8)
    return {
        "kind": "image",
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "pixels": base64.b64encode(pixels.tobytes()).decode("ascii"),
        "min": low,
        "max": high,
        "log": log,
        "shape": list(frame.shape),
    }


def _plot(x, y, xlabel: str) -> dict:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(y) > PLOT_POINTS:
        step = -(-len(y) // PLOT_POINTS)
        x, y = x[::step], y[::step]
    finite = np.isfinite(x) & np.isfinite(y)
    return {
        "kind": "plot",
        "x": [round(float(v), 6) for v in x[finite]],
        "y": [round(float(v), 6) for v in y[finite]],
        "xlabel": xlabel,
    }


@dataclass
class _Tap:
    """One connection from one producer instance, as the dashboard sees it."""

    key: str  # "CONNECTION/PRODUCER": e.g. "3/0"
    connection: int
    ring_name: str
    owner: Ring
    reader: Ring | None = None
    watched_until: float = 0.0
    preview: dict | None = None
    updated: float = 0.0
    samples: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class PreviewTaps:
    """Sampled taps on every connection of a supervisor, read only while watched.

    Create it before `supervisor.run()`; it adds its taps when the supervisor announces
    "built", reads in a thread, and unlinks its rings when the run ends.

    Args:
        supervisor: a `fbp.runtime.supervisor.Supervisor`.
        rate: samples per connection per second at most.
    """

    def __init__(self, supervisor, rate: float = SAMPLES_PER_SECOND) -> None:
        self.supervisor = supervisor
        self.rate = rate
        self.taps: dict[str, _Tap] = {}
        self.published: dict[str, dict] = {}  # "PROCESS/NAME" -> preview a component sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="fbp-previews", daemon=True)
        supervisor.subscribe(self._on_event)

    def _on_event(self, event: str, **fields) -> None:
        if event == "built":
            self._add_taps()
            self._thread.start()
        elif event == "message":
            message = fields["message"]
            if message.get("t") == "preview":
                key = f"{fields['instance'].name}/{message.get('name', 'preview')}"
                self.published[key] = {**message["preview"], "time": time.time()}
        elif event == "finished":
            self.close()

    def _add_taps(self) -> None:
        supervisor = self.supervisor
        plan = supervisor.plan
        for connection in plan.connections:
            source = plan.processes[connection.src.process]
            capacity = plan.processes[connection.tgt.process].capacity
            for number, instance in enumerate(source.instances):
                if instance not in supervisor.instances:
                    continue  # runs on another host (fbp.cluster)
                name = new_segment_name(f"view{connection.number}-{number}")
                ring = Ring.create(capacity, name)
                key = f"{connection.number}/{number}"
                self.taps[key] = _Tap(key, connection.number, name, ring)
                supervisor.add_output(
                    instance,
                    connection.src.port,
                    connection.src.index,
                    name,
                    sampled=self.rate,
                )

    def watch(self, connection: int) -> dict | None:
        """Mark a connection as watched; the newest preview of any of its producers.

        A connection whose producers run on other hosts is watched there, through the
        supervisor's `remote` (fbp.cluster): its preview arrives a moment later.
        """
        remote = getattr(self.supervisor, "remote", None)
        if remote is not None and not any(t.connection == connection for t in self.taps.values()):
            return remote.watch(connection)
        now = time.monotonic()
        best = None
        for tap in self.taps.values():
            if tap.connection == connection:
                tap.watched_until = now + WATCH_SECONDS
                if tap.preview is not None and (best is None or tap.updated > best.updated):
                    best = tap
        if best is None:
            return None
        with best.lock:
            return {**best.preview, "samples": best.samples, "age": now - best.updated}

    def _read(self) -> None:
        for tap in self.taps.values():
            tap.reader = Ring.attach(tap.ring_name, "consumer")
        while not self._stop.wait(0.5 / self.rate):
            now = time.monotonic()
            for tap in list(self.taps.values()):
                if tap.watched_until < now or tap.reader is None:
                    continue
                self._take(tap)

    def _take(self, tap: _Tap) -> None:
        try:
            record = tap.reader.recv(0)
        except RingEmpty:
            return
        except EndOfStream:
            tap.reader.close()
            tap.reader = None
            return
        try:
            if record.kind != RecordKind.DATA:
                return
            preview = render(decode(record, record.kind).value)
        except Exception as exc:  # noqa: BLE001 - a value we cannot picture is shown as text
            preview = {"kind": "text", "text": f"no preview: {exc}"}
        finally:
            record.release()
        with tap.lock:
            tap.preview = preview
            tap.updated = time.monotonic()
            tap.samples += 1

    def close(self) -> None:
        """Stop reading and unlink the tap rings (safe to call twice)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        for tap in self.taps.values():
            if tap.reader is not None:
                tap.reader.close()
                tap.reader = None
            tap.owner.close()
            tap.owner.unlink()
        self.taps = {}
