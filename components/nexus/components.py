"""The components of the `nexus` library: file writers at the end of a pipeline.

Writers take their output path from an IIP. Relative paths are relative to where `fbp run`
was started. Each writer sends the path of every file it closes on FILES, so a graph can
print them.
"""

from __future__ import annotations

import os

import numpy as np

from fbp.component import Component, InPort, OutPort
from fbp.packet import Packet, PacketKind
from fbp.types import Array, Bool, Int, Record, Str

from .nxdata import NXdataWriter
from .nxmx import DetectorDescription, NXmxWriter

__all__ = ["WriteNXdata", "WriteNXmx"]

FRAMES = Array(ndim=2)


def series_path(template: str, series: int) -> str:
    """The file name of series number `series` (0-based) from a PATH template.

    `{series}` in the template is replaced (format spec allowed, e.g. `{series:04d}`);
    without it the first series gets the template itself and later ones `_1`, `_2`, ...
    before the extension.

    Raises:
        ValueError: the template has other `{...}` fields.
    """
    if "{" in template:
        try:
            return template.format(series=series)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"PATH {template!r}: only the field {{series}} may appear ({exc})"
            ) from None
    if series == 0:
        return template
    root, ext = os.path.splitext(template)
    return f"{root}_{series}{ext}"


class WriteNXmx(Component):
    """Write frames into NXmx files: one file per series, readable while written (SWMR).

    Frames go into /entry/data/data, chunked one frame per chunk and compressed with
    bitshuffle-LZ4 (hdf5plugin); the detector description (pixel size, beam centre,
    distance, wavelength, sensor) comes from the series bracket's data (Stream V2 start
    names, as detector/Simulate sends them), modules are EIGER2 512 x 1028 when the frame
    is made of them. A series bracket opens a new file and its close closes it; frames
    outside brackets go into one file. Files are closed cleanly however the run ends.
    """

    inports = [
        InPort("IN", FRAMES, "frames to store (a series is a bracket)"),
        InPort(
            "PATH",
            Str,
            "file name; {series} or {series:04d} numbers the series",
            default="fbp-output/images_{series:04d}.nxs",
        ),
        InPort(
            "MASK", Array(ndim=2), "NXmx pixel mask to store; connect a MASK outport", default=None
        ),
        InPort("COMPRESSION", Str, "bslz4, lz4, gzip or none", default="bslz4"),
        InPort("OVERWRITE", Bool, "replace existing files instead of refusing", default=False),
    ]
    outports = [OutPort("FILES", Str, "the path of each file, when it is closed")]

    def setup(self, *, path, mask, compression, overwrite) -> None:
        self.overwrite = overwrite
        series_path(path, 0)  # refuse a bad template before the first frame
        self.template = path
        self.mask = mask
        self.compression = compression
        self.series = 0
        self.info: dict = {}
        self.writer: NXmxWriter | None = None

    def bracket(self, packet: Packet) -> None:
        if packet.kind == PacketKind.OPEN:
            self._close()
            self.info = dict(packet.value) if isinstance(packet.value, dict) else {}
        elif packet.kind == PacketKind.CLOSE:
            self._close()

    def process(self, packet: Packet) -> None:
        frame = packet.value
        if self.writer is None:
            self.writer = NXmxWriter(
                series_path(self.template, self.series),
                self._description(frame),
                compression=self.compression,
                overwrite=self.overwrite,
            )
            self.series += 1
        self.writer.append(frame, seq=packet.seq)

    def _description(self, frame: np.ndarray) -> DetectorDescription:
        info = self.info
        rows, cols = frame.shape
        eiger = (rows + 38) % 550 == 0 and (cols + 12) % 1040 == 0
        mask = self.mask if self.mask is not None and np.shape(self.mask) == frame.shape else None
        options = {
            "shape": frame.shape,
            "dtype": str(frame.dtype),
            "module_shape": (512, 1028) if eiger else None,
            "pixel_mask": mask,
        }
        for ours, theirs in (
            ("pixel_size", "pixel_size_x"),
            ("distance", "detector_distance"),
            ("wavelength", "incident_wavelength"),
            ("sensor_material", "sensor_material"),
            ("sensor_thickness", "sensor_thickness"),
            ("description", "detector_description"),
            ("count_time", "count_time"),
        ):
            if theirs in info:
                options[ours] = info[theirs]
        if "beam_center_x" in info and "beam_center_y" in info:
            options["beam_center"] = (info["beam_center_x"], info["beam_center_y"])
        return DetectorDescription(**options)

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.out.FILES.send(self.writer.path)
            self.writer = None

    def finish(self) -> None:
        self._close()

    def teardown(self) -> None:
        # After a failure or a stop: close the file so it is valid, without announcing it.
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class WriteNXdata(Component):
    """Write processed results into one NeXus file: peak tables, hit flags, radial
    profiles, per-frame metadata, and the loss ledger.

    PEAKS takes PeakFinder's tables (hit flags come with them), PROFILES RadialProfile's
    records; IN takes any of the four kinds and tells them apart by their keys (a peak
    table has `n_peaks`, a profile `radial`, an ERROR record `traceback`, a ledger entry
    `where` and `kind`), for graphs that send everything to one port. The loss ledger
    counts what the file is missing and why: ERRORS takes the ERROR records of other
    processes (each a failed packet), LOSSES takes ledger entries
    {where, kind: dropped|failed, reason, count}. At the end SUMMARY gets {frames, hits,
    hit_rate, peaks, profiles, lost, file} (frames: peak tables written).
    """

    inports = [
        InPort("IN", Record(), "any of the records below, recognised by their keys"),
        InPort("PEAKS", Record(), "peak tables from xray/PeakFinder"),
        InPort("PROFILES", Record(), "radial profiles from xray/RadialProfile"),
        InPort("ERRORS", Record(), "ERROR records of other processes: failed packets"),
        InPort("LOSSES", Record(), "loss-ledger entries {where, kind, reason, count}"),
        InPort("PATH", Str, "file name", default="fbp-output/results.nxs"),
        InPort("MAX_PEAKS", Int, "peak-table width per frame", default=1024),
        InPort("OVERWRITE", Bool, "replace an existing file instead of refusing", default=False),
    ]
    outports = [
        OutPort("FILES", Str, "the path of the file, when it is closed"),
        OutPort(
            "SUMMARY", Record(), "{frames, hits, hit_rate, peaks, profiles, lost, file} at the end"
        ),
    ]

    def setup(self, *, path, max_peaks, overwrite) -> None:
        self.writer = NXdataWriter(path, max_peaks=max_peaks, overwrite=overwrite)
        self.frames = self.hits = self.peaks = self.profiles = self.lost = 0
        self.errors_received = 0

    def process(self, packet: Packet) -> None:
        value, seq = packet.value, packet.seq if packet.seq is not None else -1
        port = packet.port if packet.port != "IN" else _kind_of(value)
        if port == "PEAKS":
            self.writer.add_peaks(seq, value)
            self.writer.add_hit(seq, bool(value.get("is_hit", False)))
            self.writer.add_metadata(seq, packet.meta or {})
            self.frames += 1
            self.hits += bool(value.get("is_hit", False))
            self.peaks += int(value.get("n_peaks", len(value["x"])))
        elif port == "PROFILES":
            self.writer.add_profile(seq, value["radial"], value["intensity"], value["unit"])
            self.profiles += 1
        elif port == "ERRORS":
            self.errors_received += 1
            where = f"{value.get('process')}.{value.get('port')}"
            self.writer.record_loss(where, "failed", str(value.get("error")), 1, value.get("seq"))
            self.lost += 1
        elif port == "LOSSES":
            count = int(value.get("count", 1))
            self.writer.record_loss(
                str(value["where"]),
                str(value["kind"]),
                str(value.get("reason", "")),
                count,
                value.get("seq"),
            )
            self.lost += count

    def finish(self) -> None:
        # The run's own ledger too: drops, replays and losses elsewhere in the network
        # (failed packets of processes whose ERROR port comes here are recorded already).
        from fbp.runtime.ledger import current_ledger

        for entry in current_ledger()["entries"]:
            if entry["kind"] == "failed" and self.errors_received:
                continue
            self.writer.record_loss(entry["where"], entry["kind"], entry["reason"], entry["count"])
            if entry["kind"] != "replayed":
                self.lost += entry["count"]
        self.writer.close()
        self.out.SUMMARY.send(
            {
                "frames": self.frames,
                "hits": self.hits,
                "hit_rate": self.hits / self.frames if self.frames else 0.0,
                "peaks": self.peaks,
                "profiles": self.profiles,
                "lost": self.lost,
                "file": self.writer.path,
            }
        )
        self.out.FILES.send(self.writer.path)

    def teardown(self) -> None:
        # setup may have failed before the writer existed (e.g. the file was there already)
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.close()


def _kind_of(record) -> str:
    """Which typed port a record sent to IN belongs to.

    Raises:
        ValueError: the record is none of the four kinds.
    """
    if isinstance(record, dict):
        if "n_peaks" in record and "x" in record:
            return "PEAKS"
        if "radial" in record and "intensity" in record:
            return "PROFILES"
        if "traceback" in record and "error" in record:
            return "ERRORS"
        if "where" in record and "kind" in record:
            return "LOSSES"
    keys = sorted(record) if isinstance(record, dict) else type(record).__name__
    raise ValueError(
        f"WriteNXdata IN got a record with keys {keys}; expected a peak table (n_peaks, x, "
        "...), a radial profile (radial, intensity), an ERROR record (error, traceback) or a "
        "ledger entry (where, kind)"
    )
