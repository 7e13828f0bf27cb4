"""The components of the `detector` library: frame sources and stream plumbing.

Every source writes its frames straight into the ring slot of its `OUT` port
(`reserve_array`): the simulator renders into it, the stream receiver decompresses into it,
the HDF5 reader reads into it. A series (a detector run, a file) is one bracket on `OUT`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

from fbp.component import Component, InPort, OutPort
from fbp.types import Any, Array, Bool, Float, Int, Record, Str

from .hdf5 import HDF5FrameReader, Pacer
from .messages import Image, MalformedMessage, SeriesEnd, SeriesStart
from .receiver import PROTOCOLS
from .receiver import StreamReceiver as _Receiver
from .server import StreamServer
from .simulate import DetectorSimulator
from .tee import StreamTee as _Tee

__all__ = ["ReadHDF5", "Simulate", "StreamReceiver", "StreamSimulator", "StreamTee"]

_FRAMES = Array(ndim=2)
_MASK = Array("uint32", ndim=2)
_POLL = 0.2  # seconds a blocking wait lasts before the runtime may stop the source


def _rings(value) -> list[tuple[float, float, float]]:
    """RINGS as given: a list, or its JSON text (an IIP in a .fbp file is text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"RINGS must be JSON like [[120, 40, 2.5]], got {value!r}: {exc}"
            ) from exc
    rings = list(value or [])
    for ring in rings:
        if not isinstance(ring, (list, tuple)) or len(ring) != 3:
            raise ValueError(f"each of RINGS must be [radius_px, photons, width_px], got {ring!r}")
    return [tuple(float(v) for v in ring) for ring in rings]


def _simulator(config: dict) -> DetectorSimulator:
    rings = _rings(config.get("rings"))
    return DetectorSimulator(
        config["model"],
        seed=config["seed"],
        hit_rate=config["hit_rate"],
        spots_per_hit=config["spots"],
        background=config["background"],
        rings=rings,
        dtype=config["dtype"],
    )


_SIMULATION_PORTS = [
    InPort("FRAMES", Int, "frames in the series; 0 runs until stopped", default=100),
    InPort("HIT_RATE", Float, "fraction of frames that are crystal hits (0..1)", default=0.2),
    InPort("SEED", Int, "fixes dead/hot pixels and every frame", default=0),
    InPort(
        "MODEL",
        Str,
        "eiger2-500k, eiger2-1m, eiger2-4m, eiger2-9m or eiger2-16m",
        default="eiger2-4m",
    ),
    InPort("RATE", Float, "frames per second at most; 0 is as fast as possible", default=0.0),
    InPort("SPOTS", Float, "mean number of Bragg spots on a hit", default=40.0),
    InPort("BACKGROUND", Float, "mean background photons per pixel near the beam", default=1.0),
    InPort("DTYPE", Str, "pixel type: uint16 or uint32", default="uint16"),
    InPort("RINGS", Any, "powder rings: JSON list of [radius_px, photons, width_px]", default=[]),
]


class Simulate(Component):
    """EIGER2-like frames with Bragg spots at a known hit rate (the built-in demo detector).

    Poisson background (smooth radial profile, optional powder rings), Gaussian spots with
    Poisson photon counts on hits, module gaps and dead pixels at 2**bits-1 (as an EIGER
    reports masked pixels), hot pixels. Deterministic: SEED and the frame number fix a frame.
    Each packet's `seq` is the frame number and its metadata is the ground truth:
    `is_hit`, `n_spots` and `spots` = {x, y, photons, peak, background, snr} (lists; pixel
    (r, c) is centred at x=c, y=r). The series is one bracket whose data describe the
    detector (Stream V2 start-message field names). The pixel mask (NXmx bits: 1 gap,
    2 dead, 8 hot) goes out once on MASK.
    """

    inports = _SIMULATION_PORTS
    outports = [
        OutPort("OUT", _FRAMES, "frames; metadata carries the ground truth"),
        OutPort("MASK", _MASK, "the pixel mask, sent once before the first frame"),
    ]

    def setup(self, **config) -> None:
        if config["frames"] < 0:
            raise ValueError(f"FRAMES must be >= 0 (0: until stopped), got {config['frames']}")
        self.frames = config["frames"]
        self.pacer = Pacer(config["rate"])
        self.simulator = _simulator(config)

    def generate(self) -> Iterator[None]:
        sim = self.simulator
        self.out.MASK.send(sim.pixel_mask)
        self.out.OUT.open_bracket({**sim.series_info(), "number_of_images": self.frames})
        seq = 0
        try:
            while self.frames == 0 or seq < self.frames:
                self.pacer.wait()
                truth = sim.truth(seq)
                with self.out.OUT.reserve_array(
                    sim.shape, sim.dtype, seq=seq, meta=truth.to_meta()
                ) as frame:
                    sim.render_into(seq, frame, truth)
                seq += 1
                yield None
        finally:
            self.out.OUT.close_bracket({"frames": seq})


class ReadHDF5(Component):
    """Replay frames from an HDF5/NeXus file: an NXmx master file with its data files
    (external links, bitshuffle-LZ4 via hdf5plugin) or any file with a 3-D frame dataset.

    The file is one bracket whose data are the NXmx detector fields found in it (beam
    centre, pixel size, ...). Each packet's `seq` is the frame's index in the file and its
    metadata names the file. The pixel mask, if the file has one, goes out once on MASK.
    """

    inports = [
        InPort(
            "PATH", Str, "the HDF5/NeXus file (an NXmx master file or a data file)", config=True
        ),
        InPort(
            "DATASET", Str, "frame dataset inside the file; empty finds /entry/data/*", default=""
        ),
        InPort("RATE", Float, "frames per second at most; 0 is as fast as possible", default=0.0),
        InPort("START", Int, "first frame to send", default=0),
        InPort("COUNT", Int, "frames to send; 0 sends all from START", default=0),
    ]
    outports = [
        OutPort("OUT", _FRAMES, "frames in file order"),
        OutPort("MASK", _MASK, "the file's pixel mask, if it has one"),
    ]

    def setup(self, *, path, dataset, rate, start, count) -> None:
        if start < 0 or count < 0:
            raise ValueError(f"START and COUNT must be >= 0, got {start} and {count}")
        self.reader = HDF5FrameReader(path, dataset or None)
        self.pacer = Pacer(rate)
        self.start = start
        self.stop = len(self.reader) if count == 0 else min(len(self.reader), start + count)

    def generate(self) -> Iterator[None]:
        reader = self.reader
        mask = reader.pixel_mask()
        if mask is not None:
            self.out.MASK.send(mask.astype("uint32", copy=False))
        self.out.OUT.open_bracket(reader.info())
        sent = 0
        try:
            for index in range(self.start, self.stop):
                self.pacer.wait()
                with self.out.OUT.reserve_array(
                    reader.frame_shape,
                    reader.dtype,
                    seq=index,
                    meta={"source_file": str(reader.path), "index": index},
                ) as frame:
                    reader.read_into(index, frame)
                sent += 1
                yield None
        finally:
            self.out.OUT.close_bracket({"frames": sent})

    def teardown(self) -> None:
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.close()


class StreamReceiver(Component):
    """Receive a DECTRIS detector stream (Stream V1 JSON multipart or Stream V2 CBOR) from
    a ZeroMQ PUSH socket, as a DECTRIS client does (PULL, connect).

    Images are decompressed (bitshuffle-LZ4 or LZ4 via hdf5plugin) straight into the ring
    slot. Each series is one bracket: the start message's fields are its data (with
    `seen: false` if the receiver joined mid-series and made the start up). A packet's
    `seq` is the image number; its metadata holds `series_id` and the image's times. A
    malformed message is counted, logged and skipped. The source ends after SERIES series,
    or after IDLE seconds without a message, or when the network stops; it then sends its
    counts (messages, images, malformed, missing starts/ends) on STATS.
    """

    inports = [
        InPort("ENDPOINT", Str, "the detector's stream, e.g. tcp://dcu:31001", config=True),
        InPort("PROTOCOL", Str, "v1, v2, or auto (per message)", default="auto"),
        InPort("CHANNEL", Str, "V2 image channel to forward", default="threshold_1"),
        InPort("BIND", Bool, "bind instead of connect", default=False),
        InPort("SERIES", Int, "stop after this many series; 0 never", default=0),
        InPort(
            "IDLE", Float, "stop after this many seconds without a message; 0 never", default=0.0
        ),
    ]
    outports = [
        OutPort("OUT", _FRAMES, "decoded images, one bracket per series"),
        OutPort("MASK", _MASK, "the pixel mask when a start message carries one"),
        OutPort("STATS", Record(), "message counts, sent once at the end"),
    ]

    def setup(self, *, endpoint, protocol, channel, bind, series, idle) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"PROTOCOL must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self.channel = channel
        self.series_limit = series
        self.idle = idle
        self.receiver = _Receiver(endpoint, protocol=protocol, bind=bind)
        self.open = False
        self.ended = 0
        self.failed = 0

    def generate(self) -> Iterator[None]:
        idle_for = 0.0
        try:
            while not (self.series_limit and self.ended >= self.series_limit):
                events = self.receiver.receive(_POLL)
                if not events:
                    idle_for += _POLL
                    if self.idle and idle_for >= self.idle:
                        break
                    yield None
                    continue
                idle_for = 0.0
                for event in events:
                    self._forward(event)
                yield None
        finally:
            for event in self.receiver.close():
                self._forward(event)
            stats = {**self.receiver.stats(), "undecodable": self.failed}
            if stats.get("malformed") or self.failed:
                self.log.warning(
                    "skipped %d malformed messages and %d undecodable images: %s",
                    stats.get("malformed", 0),
                    self.failed,
                    stats["last_errors"],
                )
            self.out.STATS.send(stats)

    def _forward(self, event) -> None:
        if isinstance(event, SeriesStart):
            self.out.OUT.open_bracket(
                {
                    **event.info,
                    "series_id": event.series_id,
                    "series_unique_id": event.unique_id,
                    "seen": event.seen,
                }
            )
            self.open = True
            for name, array in event.arrays.items():
                if name.startswith("pixel_mask") and array.ndim == 2:
                    self.out.MASK.send(array.astype("uint32", copy=False))
                    break
        elif isinstance(event, Image):
            encoded = event.channels.get(self.channel) or next(iter(event.channels.values()))
            meta = {**event.info, "series_id": event.series_id}
            try:
                with self.out.OUT.reserve_array(
                    encoded.shape if encoded.order == "C" else tuple(reversed(encoded.shape)),
                    encoded.dtype,
                    seq=event.image_id,
                    meta=meta,
                ) as frame:
                    encoded.decode(out=frame)
            except MalformedMessage as exc:
                # The slot is abandoned (never sent) and the image counted, not fatal.
                self.failed += 1
                self.log.warning(
                    "image %d of series %d skipped: %s", event.image_id, event.series_id, exc
                )
        elif isinstance(event, SeriesEnd):
            self.out.OUT.close_bracket({**event.info, "series_id": event.series_id})
            self.open = False
            self.ended += 1


class StreamSimulator(Component):
    """Serve simulated frames as a DECTRIS detector stream (Stream V1 or V2) on a ZeroMQ
    PUSH socket, as a detector's DCU does: a stand-in detector for tests and demos.

    Takes the simulator's settings (FRAMES must be > 0 here) plus where and how to serve.
    Sends once the series is out: {frames_sent, endpoint} on OUT.
    """

    inports = [
        InPort("ENDPOINT", Str, "where to bind the PUSH socket", default="tcp://127.0.0.1:31001"),
        InPort("PROTOCOL", Str, "v1 or v2", default="v2"),
        InPort("COMPRESSION", Str, "bslz4, lz4 or none", default="bslz4"),
        InPort("SERIES_ID", Int, "the series number", default=1),
        *_SIMULATION_PORTS,
    ]
    outports = [OutPort("OUT", Record(), "a summary once the series is served")]

    def setup(self, **config) -> None:
        if config["frames"] <= 0:
            raise ValueError(f"FRAMES must be > 0 for a served series, got {config['frames']}")
        compression = None if config["compression"].lower() == "none" else config["compression"]
        self.settings = config
        self.simulator = _simulator(config)
        self.server = StreamServer(
            config["endpoint"], protocol=config["protocol"], compression=compression
        )
        self.pacer = Pacer(config["rate"])

    def _send(self, message) -> Iterator[None]:
        while not self.server.send(message, timeout=_POLL):
            yield None  # no consumer yet: let the runtime stop us if it wants

    def generate(self) -> Iterator[None]:
        sim, config = self.simulator, self.settings
        series, unique = config["series_id"], f"fbp-{config['seed']}-{config['series_id']}"
        info = {**sim.series_info(), "number_of_images": config["frames"]}
        yield from self._send(self.server.start_message(series, unique, info, sim.pixel_mask))
        sent = 0
        for image_id in range(config["frames"]):
            self.pacer.wait()
            image, _ = sim.frame(image_id)
            yield from self._send(self.server.image_message(series, unique, image_id, image))
            sent += 1
        yield from self._send(self.server.end_message(series, unique))
        self.out.OUT.send({"frames_sent": sent, "endpoint": self.server.endpoint})

    def teardown(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.close()


class StreamTee(Component):
    """Share one DECTRIS stream among several clients: pull every message from SOURCE and
    push a copy to each endpoint of OUTPUTS (a detector gives each message to one client
    only). Outputs listed in LOSSY drop messages when their client lags (live viewers);
    the others wait for their client, so nothing is lost. Runs until IDLE seconds pass
    without a message (0: until the network stops), then sends its counts on OUT.
    """

    inports = [
        InPort("SOURCE", Str, "the detector's stream to pull from", config=True),
        InPort("OUTPUTS", Str, "comma-separated endpoints to bind, one per client", config=True),
        InPort("LOSSY", Str, "comma-separated outputs that may drop messages", default=""),
        InPort(
            "IDLE", Float, "stop after this many seconds without a message; 0 never", default=0.0
        ),
    ]
    outports = [OutPort("OUT", Record(), "counts per output, sent once at the end")]

    def setup(self, *, source, outputs, lossy, idle) -> None:
        split = [e.strip() for e in outputs.split(",") if e.strip()]
        self.tee = _Tee(source, split, lossy=[e.strip() for e in lossy.split(",") if e.strip()])
        self.idle = idle
        self.stop = threading.Event()

    def generate(self) -> Iterator[None]:
        idle_for = 0.0
        while True:
            if self.tee.pump(_POLL, self.stop):
                idle_for = 0.0
            else:
                idle_for += _POLL
                if self.idle and idle_for >= self.idle:
                    break
            yield None
        self.out.OUT.send(dict(self.tee.counts))

    def teardown(self) -> None:
        tee = getattr(self, "tee", None)
        if tee is not None:
            tee.close()
