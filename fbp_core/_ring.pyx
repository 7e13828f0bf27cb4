# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Shared-memory SPSC ring: thin Cython wrapper over ring.h.

Only `fbp.ring` imports this module. Errors leave here as status codes: `fbp.ring`
registers a table (status -> exception class, message template) with `set_error_table`,
so the mapping to the fbp error family lives in one place and costs nothing on success.
"""

cimport cython
from cpython.buffer cimport (
    PyBUF_ANY_CONTIGUOUS,
    PyBUF_WRITABLE,
    PyBuffer_FillInfo,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport errno
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from posix.mman cimport munmap, shm_unlink
from posix.unistd cimport getpid

import os

CORE_ABI_VERSION = FBP_RING_ABI
HEADER_BYTES = FBP_HEADER_BYTES
RECORD_HEADER_BYTES = FBP_RECORD_HEADER
RECORD_ALIGN = FBP_RECORD_ALIGN
HOT_REUSE_MIN = FBP_HOT_REUSE_MIN
MAX_WAIT_ANY_WITHOUT_POLLING = FBP_WAITV_MAX
LATENCY_BOUNDS_NS = tuple(fbp_latency_bounds_ns[i] for i in range(FBP_LATENCY_BOUNDS))

STATUS_TIMEOUT_EMPTY = FBP_TIMEOUT_EMPTY
STATUS_TIMEOUT_FULL = FBP_TIMEOUT_FULL
STATUS_END_OF_STREAM = FBP_END_OF_STREAM
STATUS_BROKEN = FBP_BROKEN
STATUS_TOO_LARGE = FBP_TOO_LARGE
STATUS_CLOSED_HERE = FBP_CLOSED_HERE
STATUS_BAD_SEGMENT = FBP_BAD_SEGMENT
STATUS_BUSY = FBP_BUSY
STATUS_REPLACED = FBP_REPLACED
STATUS_CORRUPT = FBP_CORRUPT
STATUS_WRONG_ROLE = 100
STATUS_RESERVATION_OPEN = 101
STATUS_CONCURRENT_USE = 103


class RingStatusError(RuntimeError):
    """Raised for a status code when no error table is registered (fbp_core used alone)."""

    def __init__(self, status, context):
        super().__init__(f"ring status {status}: {context}")
        self.status = status
        self.context = context


cdef dict _error_table = {}
cdef tuple _kinds = ()
# Copying below this size with the GIL held is cheaper than releasing and retaking it.
cdef Py_ssize_t NOGIL_COPY_MIN = 64 * 1024


def set_error_table(dict table):
    """Register {status: (exception class, message template)} used for every failure."""
    _error_table.clear()
    _error_table.update(table)


def set_record_kinds(tuple kinds):
    """Register the objects `Record.kind` returns for codes 0..len(kinds)-1 (an IntEnum)."""
    global _kinds
    _kinds = kinds


cdef int raise_status(int status, RingCore ring, dict extra=None) except -1:
    context = {"name": ring.name if ring is not None else "?",
               "capacity": ring.capacity if ring is not None else 0,
               "max_payload": (ring.capacity - FBP_RECORD_HEADER) if ring is not None else 0,
               "role": ring.role if ring is not None else "?"}
    if extra:
        context.update(extra)
    entry = _error_table.get(status)
    if entry is None:
        raise RingStatusError(status, context)
    cls, template = entry
    exc = cls(template.format(**context))
    exc.status = status
    for key in ("sent", "received"):
        if key in context:
            setattr(exc, key, context[key])
    raise exc


cdef inline int64_t deadline_from(object timeout) except -2:
    """None: wait forever (-1); <= 0: try once (0); else an absolute monotonic time."""
    cdef double seconds
    if timeout is None:
        return -1
    seconds = timeout
    if seconds <= 0:
        return 0
    if seconds > 1e9:  # ~31 years: forever, and no int64 overflow
        return -1
    return fbp_now_ns() + <int64_t>(seconds * 1e9) + 1


cdef class Segment:
    """A mapped ring segment; unmapped only when nothing (ring or record) uses it."""

    def __cinit__(self, str name, bint create, uint64_t capacity=0,
                  uint64_t hot_reuse_min=FBP_HOT_REUSE_MIN):
        cdef bytes bname = os.fsencode(name)
        cdef const char *cname = bname
        cdef uint64_t size = 0
        self.name = name
        self.base = NULL
        if create:
            self.base = fbp_segment_create(cname, fbp_round_capacity(capacity), hot_reuse_min, &size)
        else:
            self.base = fbp_segment_attach(cname, &size)
        if self.base == NULL:
            code = errno
            if code == 22 and not create:  # EINVAL: exists, but is no fbp ring of our ABI
                raise_status(FBP_BAD_SEGMENT, None, {"name": name})
            raise OSError(code, os.strerror(code), "/dev/shm/" + name.lstrip("/"))
        self.map_size = size
        self.hdr = <fbp_ring_header *>self.base

    def __dealloc__(self):
        if self.base != NULL:
            munmap(self.base, self.map_size)
            self.base = NULL


def unlink_segment(str name):
    """Remove a segment's name; mappings stay valid until unmapped. False if already gone."""
    cdef bytes bname = os.fsencode(name)
    if shm_unlink(bname) == 0:
        return True
    if errno == 2:  # ENOENT
        return False
    code = errno
    raise OSError(code, os.strerror(code), name)


def pid_alive(int pid):
    """True if a process with this pid exists (also when it belongs to another user)."""
    return bool(fbp_pid_alive(pid))


@cython.freelist(64)
@cython.no_gc
@cython.final
cdef class Record:
    """One received record: a read-only, zero-copy buffer into the ring.

    Its ring space is freed when the last reference goes (or on `release()`), never
    earlier; `numpy.frombuffer(record)` keeps the record alive as long as the array.
    """

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        if self.released:
            raise ValueError("this record was released; its bytes now belong to the ring")
        if flags & PyBUF_WRITABLE:
            raise BufferError("received records are read-only; copy them to modify")
        PyBuffer_FillInfo(buffer, self, <void *>self.data, self.length, 1, flags)
        self.exports += 1

    def __releasebuffer__(self, Py_buffer *buffer):
        self.exports -= 1

    def __len__(self):
        return self.length

    @property
    def kind(self):
        """The record kind (`fbp.ring.RecordKind`)."""
        if self.kind_code < <uint32_t>len(_kinds):
            return _kinds[self.kind_code]
        return self.kind_code

    @property
    def released(self):
        """True once `release()` ran; the buffer is no longer readable."""
        return self.released

    @property
    def address(self):
        """Where the record's bytes start in this process's memory, as an int.

        For handing them to a C library without a copy (the bridge gives them to libzmq
        this way); the address is valid until the record is released and the ring closed.
        """
        if self.released:
            raise ValueError("this record was released; its bytes now belong to the ring")
        return <size_t>self.data

    def release(self):
        """Free the record's ring space now instead of when the last reference goes.

        Raises:
            BufferError: a memoryview or array still exports the record's bytes.
        """
        if self.exports:
            raise BufferError(
                f"record still exported by {self.exports} view(s) (memoryview/numpy array); "
                "drop them before release()"
            )
        self._release()

    cdef void _release(self) noexcept:
        if not self.released:
            self.released = True
            fbp_consumer_release(&self.ring.consumer, self.index)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.exports:
            self._release()
        return False

    def __repr__(self):
        return f"<Record kind={self.kind!r} {self.length} bytes{' released' if self.released else ''}>"

    def __dealloc__(self):
        if not self.released and self.ring is not None:
            self.released = True
            fbp_consumer_release(&self.ring.consumer, self.index)


@cython.final
cdef class Reservation:
    """Writable space for one record inside the ring; invisible until `commit()`.

    Used as a context manager it yields a writable memoryview, commits on normal exit and
    abandons on an exception. Do not write through views of it after the block.
    """

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        if self.state != 0:
            raise ValueError("this reservation was already committed or abandoned")
        PyBuffer_FillInfo(buffer, self, <void *>self.data, self.length, 0, flags)
        self.exports += 1

    def __releasebuffer__(self, Py_buffer *buffer):
        self.exports -= 1

    def __len__(self):
        return self.length

    def commit(self, nbytes=None):
        """Publish the record; `nbytes` (<= reserved) publishes only that many bytes.

        Raises:
            ValueError: already committed/abandoned, or nbytes out of range.
        """
        cdef Py_ssize_t n = self.length if nbytes is None else nbytes
        if self.state != 0:
            raise ValueError("this reservation was already committed or abandoned")
        if n < 0 or n > self.length:
            raise ValueError(f"commit({n}): a reservation of {self.length} bytes can commit "
                             f"0..{self.length} bytes")
        self.state = 1
        self.ring.reservation = None
        if self.ring.producer.closed:
            raise_status(FBP_CLOSED_HERE, self.ring)
        fbp_producer_commit(&self.ring.producer, <uint64_t>n, self.kind_code, 1)

    def abandon(self):
        """Drop the reservation: the consumer never sees it. Idempotent after commit."""
        if self.state == 0:
            self.state = 2
            self.ring.reservation = None

    def __enter__(self):
        self.view = memoryview(self)
        return self.view

    def __exit__(self, exc_type, exc, tb):
        # Invalidate the view we handed out, so a write through it after the block fails
        # instead of changing a published record. (Arrays made from it keep it exported;
        # then it stays valid and writing through them is the caller's bug.)
        try:
            self.view.release()
        except BufferError:
            pass
        self.view = None
        if exc_type is None:
            self.commit()
        else:
            self.abandon()
        return False

    def __dealloc__(self):
        if self.state == 0 and self.ring is not None:
            self.ring.reservation = None


cdef class RingCore:
    """One process's handle on a ring segment, as owner, producer, consumer or observer.

    An owner (`create=True`) may act as producer and consumer (single-process tests, the
    supervisor); attached handles are limited to their role; observers only read stats.
    """

    def __cinit__(self, str name, bint create=False, uint64_t capacity=0, str role="owner",
                  uint64_t hot_reuse_min=FBP_HOT_REUSE_MIN):
        if role not in ("owner", "producer", "consumer", "observer"):
            raise ValueError(f"role must be 'producer', 'consumer' or 'observer', not {role!r}")
        self.segment = Segment(name, create, capacity, hot_reuse_min)
        self.name = name
        self.role = role
        self.capacity = self.segment.hdr.capacity
        self.may_produce = role in ("owner", "producer")
        self.may_consume = role in ("owner", "consumer")
        self.consumer.hdr = NULL
        if role == "producer":
            self._start_producing()
        elif role == "consumer":
            self._start_consuming()

    def __dealloc__(self):
        if self.consumer.hdr != NULL:
            fbp_consumer_free(&self.consumer)

    cdef int _start_producing(self) except -1:
        cdef fbp_ring_header *h = self.segment.hdr
        cdef int32_t me = getpid()
        if not self.may_produce:
            raise_status(STATUS_WRONG_ROLE, self, {"action": "send"})
        other = h.producer_pid
        if other != 0 and other != me and fbp_pid_alive(other) and not h.producer_closed:
            raise_status(FBP_BUSY, self, {"side": "producer", "pid": other})
        h.producer_pid = me
        fbp_producer_init(&self.producer, self.segment.base)
        self.producing = True
        return 0

    cdef int _start_consuming(self) except -1:
        cdef fbp_ring_header *h = self.segment.hdr
        cdef int32_t me = getpid()
        if not self.may_consume:
            raise_status(STATUS_WRONG_ROLE, self, {"action": "receive"})
        other = h.consumer_pid
        if other != 0 and other != me and fbp_pid_alive(other) and not h.consumer_closed:
            raise_status(FBP_BUSY, self, {"side": "consumer", "pid": other})
        h.consumer_pid = me
        h.consumer_attaches += 1
        if fbp_consumer_init(&self.consumer, self.segment.base) != 0:
            raise MemoryError()
        self.consuming = True
        return 0

    # -- producer ----------------------------------------------------------------------

    cdef int _check_producer(self) except -1:
        if not self.producing:
            if self.closed_here:
                raise_status(FBP_CLOSED_HERE, self)
            self._start_producing()
        if self.reservation is not None:
            raise_status(STATUS_RESERVATION_OPEN, self)
        if self.producer_busy:
            raise_status(STATUS_CONCURRENT_USE, self, {"side": "producer"})
        return 0

    cdef int _reserve(self, uint64_t nbytes, object timeout, uint8_t **out, dict extra) except -1:
        """Reserve with the GIL for the fast path; wait without it."""
        cdef int status = fbp_producer_reserve(&self.producer, nbytes, 0, out)
        cdef int64_t deadline
        if status == FBP_TIMEOUT_FULL and (timeout is None or timeout > 0):
            deadline = deadline_from(timeout)
            self.producer_busy = True
            try:
                while True:
                    with nogil:
                        status = fbp_producer_reserve(&self.producer, nbytes, deadline, out)
                    if status != FBP_INTERRUPTED:
                        break
                    PyErr_CheckSignals()
            finally:
                self.producer_busy = False
        if status != FBP_OK:
            context = {"nbytes": nbytes, "timeout": timeout}
            if extra:
                context.update(extra)
            raise_status(status, self, context)
        return 0

    def send(self, object buf, timeout=None, uint32_t kind=0):
        """Copy one record from any contiguous buffer into the ring (the only copy).

        Args:
            buf: bytes, bytearray, memoryview, numpy array... (C- or F-contiguous).
            timeout: seconds to wait for space; None waits forever, 0 tries once.
            kind: record kind (RecordKind).

        Raises:
            RingFull: no space before the timeout.
            RecordTooLarge: the record can never fit in this ring.
            BrokenConnection: the consumer closed.
            ClosedPort: this side closed the ring.
        """
        cdef Py_buffer view
        cdef uint8_t *dest
        self._check_producer()
        PyObject_GetBuffer(buf, &view, PyBUF_ANY_CONTIGUOUS)
        try:
            self._reserve(<uint64_t>view.len, timeout, &dest, None)
            if view.len >= NOGIL_COPY_MIN:
                self.producer_busy = True
                with nogil:
                    memcpy(dest, view.buf, view.len)
                self.producer_busy = False
            else:
                memcpy(dest, view.buf, view.len)
            fbp_producer_commit(&self.producer, <uint64_t>view.len, kind, 1)
        finally:
            PyBuffer_Release(&view)

    def send_many(self, bufs, timeout=None, uint32_t kind=0):
        """Send several records, publishing them together (one wake-up per batch).

        Records already copied when a wait begins are published first, so a slow
        consumer never waits on records that sit unpublished. Returns how many were sent.

        Raises:
            RingFull: timeout while waiting for space; `.sent` says how many went.
            RecordTooLarge, BrokenConnection, ClosedPort: as for `send` (`.sent` set).
        """
        cdef Py_buffer view
        cdef uint8_t *dest
        cdef int status
        cdef Py_ssize_t sent = 0
        self._check_producer()
        try:
            for buf in bufs:
                PyObject_GetBuffer(buf, &view, PyBUF_ANY_CONTIGUOUS)
                try:
                    status = fbp_producer_reserve(&self.producer, <uint64_t>view.len, 0, &dest)
                    if status != FBP_OK:
                        fbp_producer_publish(&self.producer)
                        self._reserve(<uint64_t>view.len, timeout, &dest, {"sent": sent})
                    if view.len >= NOGIL_COPY_MIN:
                        self.producer_busy = True
                        with nogil:
                            memcpy(dest, view.buf, view.len)
                        self.producer_busy = False
                    else:
                        memcpy(dest, view.buf, view.len)
                    fbp_producer_commit(&self.producer, <uint64_t>view.len, kind, 0)
                    sent += 1
                finally:
                    PyBuffer_Release(&view)
        finally:
            if sent:
                fbp_producer_publish(&self.producer)
        return sent

    def reserve(self, Py_ssize_t nbytes, timeout=None, uint32_t kind=0):
        """Reserve `nbytes` of writable ring memory for one record (zero-copy send).

        Returns a `Reservation`: a context manager yielding a writable memoryview that
        commits on normal exit and abandons on exception. Until committed, nothing is
        visible to the consumer, so a producer dying here leaves no partial record.

        Raises:
            RingFull: no space before the timeout.
            RecordTooLarge: the record can never fit in this ring.
            BrokenConnection: the consumer closed.
            ClosedPort: this side closed the ring.
            ValueError: nbytes < 0, or another reservation is still open.
        """
        cdef uint8_t *dest
        cdef Reservation res
        if nbytes < 0:
            raise ValueError(f"reserve({nbytes}): the size must be >= 0 bytes")
        self._check_producer()
        self._reserve(<uint64_t>nbytes, timeout, &dest, None)
        res = Reservation.__new__(Reservation)
        res.ring = self
        res.data = dest
        res.length = nbytes
        res.kind_code = kind
        self.reservation = res
        return res

    # -- consumer ----------------------------------------------------------------------

    cdef int _check_consumer(self) except -1:
        if not self.consuming:
            if self.closed_here:
                raise_status(FBP_CLOSED_HERE, self)
            self._start_consuming()
        elif self.consumer.closed:
            raise_status(FBP_CLOSED_HERE, self)
        elif self.segment.hdr.consumer_attaches != self.consumer.generation:
            raise_status(FBP_REPLACED, self)
        if self.consumer_busy:
            raise_status(STATUS_CONCURRENT_USE, self, {"side": "consumer"})
        return 0

    cdef Record _take(self):
        cdef const uint8_t *data
        cdef uint64_t length, index
        cdef uint32_t kind
        cdef int got = fbp_consumer_take(&self.consumer, &data, &length, &kind, &index)
        cdef Record rec
        if got == 0:
            return None
        if got == -2:
            raise_status(FBP_CORRUPT, self, {"position": self.consumer.read})
        if got < 0:
            raise MemoryError()
        rec = Record.__new__(Record)
        rec.ring = self
        rec.data = data
        rec.length = <Py_ssize_t>length
        rec.kind_code = kind
        rec.index = index
        return rec

    cdef int _wait_data(self, object timeout) except -1:
        cdef int64_t deadline = deadline_from(timeout)
        cdef int status = fbp_consumer_wait_data(&self.consumer, 0)
        if status == FBP_TIMEOUT_EMPTY and deadline != 0:
            self.consumer_busy = True
            try:
                while True:
                    with nogil:
                        status = fbp_consumer_wait_data(&self.consumer, deadline)
                    if status != FBP_INTERRUPTED:
                        break
                    PyErr_CheckSignals()
            finally:
                self.consumer_busy = False
        if status != FBP_OK:
            raise_status(status, self, {"timeout": timeout})
        return 0

    def recv(self, timeout=None):
        """Receive the next record as a read-only zero-copy `Record`.

        Args:
            timeout: seconds to wait; None waits forever, 0 tries once.

        Raises:
            RingEmpty: no record before the timeout.
            EndOfStream: the producer closed and every record was received.
            ClosedPort: this side closed the ring.
        """
        cdef Record rec
        self._check_consumer()
        while True:
            rec = self._take()
            if rec is not None:
                fbp_consumer_publish_counts(&self.consumer)
                return rec
            self._wait_data(timeout)

    def recv_many(self, Py_ssize_t max_count, timeout=None):
        """Receive up to `max_count` records: waits for the first, takes what is there.

        Raises:
            RingEmpty: no record before the timeout.
            EndOfStream: the producer closed and every record was received.
            ClosedPort: this side closed the ring.
            ValueError: max_count < 1.
        """
        cdef list out = []
        cdef Record rec
        cdef Py_ssize_t i
        if max_count < 1:
            raise ValueError(f"recv_many({max_count}): max_count must be >= 1")
        self._check_consumer()
        rec = self._take()
        while rec is None:
            self._wait_data(timeout)
            rec = self._take()
        out.append(rec)
        for i in range(1, max_count):
            rec = self._take()
            if rec is None:
                break
            out.append(rec)
        fbp_consumer_publish_counts(&self.consumer)
        return out

    # -- both sides --------------------------------------------------------------------

    def close(self):
        """Close this side: the consumer then gets EndOfStream after draining, or the
        producer BrokenConnection; a sleeping peer wakes at once. Idempotent. Received
        records stay readable until released."""
        if self.producing:
            fbp_producer_close(&self.producer)
            self.producing = False
        if self.consuming:
            # consuming stays set: records released after close still advance the tail
            fbp_consumer_close(&self.consumer)
        if self.reservation is not None:
            self.reservation.abandon()
        self.closed_here = True

    def shutdown(self):
        """Close both sides from any handle (the owner's abort): wakes every waiter.

        The consumer still receives what was sent, then gets EndOfStream; the producer
        gets BrokenConnection. For stopping a network without the components' help.
        """
        cdef fbp_ring_header *h = self.segment.hdr
        h.producer_closed = 1
        h.consumer_closed = 1
        fbp_wake_both(h)

    @property
    def closed(self):
        """True once this handle was closed."""
        return self.closed_here

    def raw_stats(self):
        """Counters and flags read from the segment header (any process may call this)."""
        cdef fbp_ring_header *h = self.segment.hdr
        cdef uint64_t head = h.head, tail = h.tail
        cdef uint64_t sent = h.packets_sent, released = h.packets_released
        return {
            "capacity": h.capacity,
            "packets": sent,
            "bytes": h.bytes_sent,
            "packets_received": h.packets_received,
            "bytes_received": h.bytes_received,
            "packets_released": released,
            "full_waits": h.full_waits,
            "empty_waits": h.empty_waits,
            "fill_bytes": head - tail,
            "fill_records": sent - released if sent >= released else 0,
            "head": head,
            "tail": tail,
            "producer_closed": bool(h.producer_closed),
            "consumer_closed": bool(h.consumer_closed),
            "producer_pid": h.producer_pid,
            "consumer_pid": h.consumer_pid,
            "consumer_attaches": h.consumer_attaches,
            "owner_pid": h.owner_pid,
            "hot_reuse_min": h.hot_reuse_min,
        }

    def raw_latency(self):
        """(total wait in ns, per-bucket counts) of the records taken so far, read from
        the segment header; bucket i counts waits <= LATENCY_BOUNDS_NS[i], the last one
        the rest. Apart from the stats, so the hot paths that poll `raw_stats` (fill
        levels) do not pay for a histogram they never read."""
        cdef fbp_ring_header *h = self.segment.hdr
        return h.latency_sum_ns, tuple(h.latency_counts[i] for i in range(FBP_LATENCY_BUCKETS))


def wait_any(list rings, timeout=None, Py_ssize_t nbytes=0):
    """Block until any ring is ready; return the ready ones (empty list on timeout).

    A consumer ring is ready when recv would not block (a record, or end of stream); a
    producer ring when a record of `nbytes` payload fits (or its consumer closed).
    """
    cdef Py_ssize_t n = len(rings), i
    cdef fbp_wait_item *items
    cdef int *ready
    cdef int count
    cdef int64_t deadline = deadline_from(timeout)
    cdef RingCore ring
    if n == 0:
        raise ValueError("wait_any needs at least one ring")
    if nbytes < 0:
        raise ValueError(f"wait_any(nbytes={nbytes}): nbytes must be >= 0")
    items = <fbp_wait_item *>malloc(n * sizeof(fbp_wait_item))
    ready = <int *>malloc(n * sizeof(int))
    if items == NULL or ready == NULL:
        free(items)
        free(ready)
        raise MemoryError()
    try:
        for i in range(n):
            ring = rings[i]
            items[i].producer = NULL
            items[i].consumer = NULL
            items[i].need = fbp_align_record(<uint64_t>nbytes)
            if ring.closed_here:
                raise_status(FBP_CLOSED_HERE, ring)
            if ring.role == "consumer" or (ring.consuming and not ring.producing):
                ring._check_consumer()
                items[i].consumer = &ring.consumer
            elif ring.role == "producer" or (ring.producing and not ring.consuming):
                ring._check_producer()
                items[i].producer = &ring.producer
            else:
                raise ValueError(
                    f"wait_any: ring {ring.name!r} is an {ring.role} handle used for "
                    "both or neither side; attach it as 'producer' or 'consumer'"
                )
        for i in range(n):
            ring = rings[i]
            if items[i].consumer != NULL:
                ring.consumer_busy = True
            else:
                ring.producer_busy = True
        try:
            while True:
                with nogil:
                    count = fbp_wait_any(items, <int>n, deadline, ready)
                if count != -FBP_INTERRUPTED:
                    break
                PyErr_CheckSignals()
        finally:
            for i in range(n):
                ring = rings[i]
                ring.consumer_busy = False
                ring.producer_busy = False
        return [rings[i] for i in range(n) if ready[i]]
    finally:
        free(items)
        free(ready)
