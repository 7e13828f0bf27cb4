"""Shared-memory rings: the same-node link between two component processes.

One single-producer single-consumer ring of variable-size records lives in one named
POSIX shared-memory segment. The owner (the supervisor) creates and unlinks it; the
producer and the consumer attach by name. Sending copies once (`send`) or not at all
(`reserve`); receiving never copies (`recv` returns a read-only view into the ring whose
space is freed when the last reference goes). docs/ring.md explains layout, memory
ordering, the at-least-once rule and waiting.

This module is the only importer of `fbp_core`; it maps the core's status codes to the
fbp error family through one table (`_ERRORS`).
"""

from __future__ import annotations

import enum
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from fbp.errors import (
    BrokenConnection,
    ClosedPort,
    EndOfStream,
    FBPError,
    RecordTooLarge,
    RingEmpty,
    RingFull,
)

try:
    from fbp_core import _ring as _core
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "fbp.ring needs the compiled extension fbp_core._ring. Build and install the "
        "package with `pip install .` (needs gcc and the Python headers)."
    ) from exc

__all__ = [
    "LATENCY_BOUNDS",
    "Record",
    "RecordKind",
    "Reservation",
    "Ring",
    "SegmentInfo",
    "list_segments",
    "new_segment_name",
    "remove_stale_segments",
    "remove_segments_of",
    "wait_any",
]

SHM_DIR = Path("/dev/shm")
HOT_REUSE_MIN = _core.HOT_REUSE_MIN
RECORD_HEADER_BYTES = _core.RECORD_HEADER_BYTES
# Upper bounds (seconds) of the ring's latency buckets; one more bucket holds the rest.
LATENCY_BOUNDS = tuple(ns / 1e9 for ns in _core.LATENCY_BOUNDS_NS)


class RecordKind(enum.IntEnum):
    """What a record means to the runtime; payload bytes are opaque to the ring."""

    DATA = 0
    OPEN = 1  # bracket open: a substream (e.g. one detector run) begins
    CLOSE = 2  # bracket close
    EOF = 3  # the producer's last record on this connection
    CONTROL = 4


# status code -> (exception class, message template). Templates may use: name, capacity,
# max_payload, role, nbytes, timeout, sent, side, pid, action.
_ERRORS = {
    _core.STATUS_TIMEOUT_EMPTY: (
        RingEmpty,
        (
            "ring {name}: no record arrived within timeout={timeout} s; wait longer, or use "
            "timeout=None to wait until one arrives or the producer closes"
        ),
    ),
    _core.STATUS_TIMEOUT_FULL: (
        RingFull,
        (
            "ring {name}: no space for a {nbytes}-byte record within timeout={timeout} s "
            "(capacity {capacity} bytes; the consumer is slow or holds received records)"
        ),
    ),
    _core.STATUS_END_OF_STREAM: (
        EndOfStream,
        "ring {name}: the producer closed and every record has been received",
    ),
    _core.STATUS_BROKEN: (
        BrokenConnection,
        "ring {name}: the consumer closed, so a record sent now could never be delivered",
    ),
    _core.STATUS_TOO_LARGE: (
        RecordTooLarge,
        (
            "ring {name}: a record of {nbytes} bytes can never fit; this ring holds at most "
            "{max_payload} payload bytes (capacity {capacity}); create a larger ring"
        ),
    ),
    _core.STATUS_CLOSED_HERE: (
        ClosedPort,
        "ring {name}: this {role} handle was closed; attach again to use the ring",
    ),
    _core.STATUS_REPLACED: (
        ClosedPort,
        (
            "ring {name}: a newer consumer attached, so this consumer handle is stale; its "
            "unreleased records are being delivered to the new one"
        ),
    ),
    _core.STATUS_CORRUPT: (
        FBPError,
        (
            "ring {name}: the record header at byte position {position} is impossible: the "
            "segment was overwritten by something other than its producer; recreate the ring"
        ),
    ),
    _core.STATUS_BAD_SEGMENT: (
        FBPError,
        (
            "shared-memory segment {name} is not an fbp ring of this version "
            f"(ABI {_core.CORE_ABI_VERSION}); check the name, or remove it with `fbp doctor`"
        ),
    ),
    _core.STATUS_BUSY: (
        FBPError,
        (
            "ring {name}: the {side} side is held by live process {pid}; a ring has exactly "
            "one producer and one consumer (close the other handle first)"
        ),
    ),
    _core.STATUS_WRONG_ROLE: (
        FBPError,
        "ring {name}: a {role} handle cannot {action}; attach with the matching role",
    ),
    _core.STATUS_CONCURRENT_USE: (
        FBPError,
        (
            "ring {name}: another thread is blocked in this {side} handle; a ring side is "
            "single-threaded (close() from another thread is the one allowed call)"
        ),
    ),
    _core.STATUS_RESERVATION_OPEN: (
        FBPError,
        "ring {name}: a reservation is still open; commit or abandon it before sending again",
    ),
}
_core.set_error_table(_ERRORS)
_core.set_record_kinds(tuple(RecordKind))

Record = _core.Record
Reservation = _core.Reservation

_NAME_RE = re.compile(r"^fbp([A-Za-z0-9]*)-(\d+)-([0-9a-f]+)(?:-(.+))?$")


def _tag() -> str:
    tag = os.environ.get("FBP_SHM_TAG", "")
    if not tag.isalnum() and tag != "":
        raise FBPError(f"FBP_SHM_TAG={tag!r} must be alphanumeric (it is part of segment names)")
    return tag


def new_segment_name(suffix: str | None = None) -> str:
    """A fresh segment name `fbp{TAG}-{pid}-{random hex}[-{suffix}]` owned by this process.

    Raises:
        FBPError: FBP_SHM_TAG is not alphanumeric, or suffix contains '/'.
    """
    name = f"fbp{_tag()}-{os.getpid()}-{secrets.token_hex(6)}"
    if suffix:
        if "/" in suffix or len(suffix) > 200:
            raise FBPError(f"segment suffix {suffix!r} must not contain '/' (max 200 chars)")
        name += f"-{suffix}"
    return name


class Ring(_core.RingCore):
    """A handle on one shared-memory ring (see the module docstring).

    Create with `Ring.create` (owner) or `Ring.attach` (producer/consumer/observer).
    Hot-path methods (`send`, `send_many`, `reserve`, `recv`, `recv_many`, `close`) are
    implemented in `fbp_core` and documented there; their errors are the fbp family.
    """

    @classmethod
    def create(
        cls, capacity: int, name: str | None = None, *, hot_reuse_min: int = HOT_REUSE_MIN
    ) -> Ring:
        """Create a new ring segment; this process owns it and must `unlink()` it.

        Args:
            capacity: data bytes, rounded up to whole 4 KiB pages. One record takes
                16 header bytes plus its payload rounded up to 16.
            name: segment name; default `new_segment_name()`. Must follow the same
                pattern (`fbp{TAG}-{pid}-{hex}[-{suffix}]`) so `fbp doctor` can find it.
            hot_reuse_min: records of at least this many bytes (header included) go to
                the start of the data area whenever it is free, so large frames reuse
                cache-hot memory (docs/ring.md); 0 disables it.

        Raises:
            ValueError: capacity < 1, or a name that is not an fbp segment name.
            FileExistsError: a segment with that name exists.
            OSError: /dev/shm is full or not writable.
        """
        if capacity < 1:
            raise ValueError(f"Ring.create({capacity}): capacity must be >= 1 byte")
        if hot_reuse_min < 0:
            raise ValueError(f"hot_reuse_min={hot_reuse_min} must be >= 0 (0 disables it)")
        if name is not None and not _NAME_RE.match(name):
            raise ValueError(
                f"segment name {name!r} is not an fbp name fbp{{TAG}}-{{owner pid}}-{{hex}}"
                "[-{suffix}]; use fbp.ring.new_segment_name(suffix) to make one"
            )
        return cls(name or new_segment_name(), True, capacity, "owner", hot_reuse_min)

    @classmethod
    def attach(cls, name: str, role: str = "producer") -> Ring:
        """Attach to an existing ring as its producer, consumer or as an observer.

        A consumer starts at the oldest record not released by any earlier consumer,
        so records a crashed consumer held are delivered again (at-least-once).

        Raises:
            ValueError: role is not 'producer', 'consumer' or 'observer'.
            FileNotFoundError: no segment has that name.
            FBPError: the segment is not an fbp ring, or the role is held by a live process.
        """
        if role not in ("producer", "consumer", "observer"):
            raise ValueError(f"role must be 'producer', 'consumer' or 'observer', not {role!r}")
        return cls(name, False, 0, role)

    @property
    def max_record_bytes(self) -> int:
        """Largest payload this ring can ever hold."""
        return self.capacity - RECORD_HEADER_BYTES

    def unlink(self) -> None:
        """Remove the segment's name (owner's job). Mapped handles keep working. Idempotent.

        Raises:
            OSError: the name exists but cannot be removed.
        """
        _core.unlink_segment(self.name)

    def stats(self) -> dict:
        """Counters from the segment header, the same from any process.

        Keys: packets, bytes (sent), packets_received, bytes_received, packets_released,
        full_waits, empty_waits, fill_bytes, fill_records, capacity, producer_closed,
        consumer_closed, producer_pid, consumer_pid, consumer_attaches, owner_pid.
        """
        return self.raw_stats()

    def latency(self) -> dict:
        """How long the records taken so far waited in the ring, from the segment header.

        The wait of a record runs from the producer's commit to the consumer's take (the
        queueing delay; both ends read CLOCK_MONOTONIC, one clock for the whole host). It
        is counted when the record is taken, so records still waiting are not in it.

        Returns:
            {"count": records taken, "sum": their total wait in seconds, "counts": records
            per bucket, `counts[i]` those that waited at most `LATENCY_BOUNDS[i]` seconds
            and more than the bound before, the last one those above every bound}.
        """
        total_ns, counts = self.raw_latency()
        return {"count": sum(counts), "sum": total_ns / 1e9, "counts": counts}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self.role == "owner":
            self.unlink()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<Ring {self.name} {self.role} capacity={self.capacity}{state}>"


def wait_any(rings: list[Ring], timeout: float | None = None, nbytes: int = 0) -> list[Ring]:
    """Block until any of several rings is ready, without busy-waiting.

    For a fan-in consumer (several consumer handles) a ring is ready when `recv` would
    not block: it has a record or reached end of stream. For a producer feeding workers
    (several producer handles) a ring is ready when a record of `nbytes` fits now, or its
    consumer closed (then `send` raises BrokenConnection). Handles may be mixed. Sleeps in
    one `futex_waitv` call on all rings (Linux >= 5.16; older kernels, or more than 128
    rings, poll with sleeps of 50 us growing to 2 ms).

    Args:
        rings: producer or consumer handles (an owner handle counts as the side it used).
        timeout: seconds; None waits forever, 0 checks once.
        nbytes: producer readiness: payload size that must fit.

    Returns:
        The ready rings in the given order; an empty list on timeout.

    Raises:
        ValueError: no rings, or a handle whose side is ambiguous.
        ClosedPort: a handle was closed.
    """
    return _core.wait_any(list(rings), timeout, nbytes)


@dataclass(frozen=True)
class SegmentInfo:
    """One fbp segment found in /dev/shm."""

    name: str
    tag: str
    owner_pid: int
    size: int
    owner_alive: bool


def _pid_alive(pid: int) -> bool:
    # fbp_core counts a zombie (killed, not reaped yet) as dead
    return _core.pid_alive(pid)


def list_segments(all_tags: bool = False) -> list[SegmentInfo]:
    """fbp segments in /dev/shm: this FBP_SHM_TAG's only, or every tag's.

    Raises:
        FBPError: FBP_SHM_TAG is not alphanumeric.
    """
    tag = _tag()
    found = []
    try:
        entries = sorted(SHM_DIR.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        match = _NAME_RE.match(path.name)
        if not match or (not all_tags and match.group(1) != tag):
            continue
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        pid = int(match.group(2))
        found.append(SegmentInfo(path.name, match.group(1), pid, size, _pid_alive(pid)))
    return found


def remove_stale_segments(all_tags: bool = False) -> list[str]:
    """Unlink the fbp segments whose owner process is dead; return their names.

    The runtime calls this at start; `fbp doctor` calls it on demand. Segments of live
    owners are never touched.

    Raises:
        OSError: a stale segment exists but cannot be removed (permissions).
    """
    removed = []
    for info in list_segments(all_tags):
        if not info.owner_alive and _core.unlink_segment(info.name):
            removed.append(info.name)
    return removed


def remove_segments_of(pid: int) -> list[str]:
    """Unlink every fbp segment (any tag) created by process `pid`; return their names.

    For the janitor of a killed process (fbp.runtime.janitor): the caller knows the owner
    is gone, so its segments go whether or not a reused pid looks alive.
    """
    removed = []
    for info in list_segments(all_tags=True):
        if info.owner_pid == pid and _core.unlink_segment(info.name):
            removed.append(info.name)
    return removed
