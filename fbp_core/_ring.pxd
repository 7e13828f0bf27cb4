# cython: language_level=3
"""C declarations of ring.h and the Cython classes that wrap them."""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "ring.h" nogil:
    enum:
        FBP_OK
        FBP_TIMEOUT_EMPTY
        FBP_TIMEOUT_FULL
        FBP_END_OF_STREAM
        FBP_BROKEN
        FBP_TOO_LARGE
        FBP_INTERRUPTED
        FBP_CLOSED_HERE
        FBP_BAD_SEGMENT
        FBP_ERRNO
        FBP_BUSY
        FBP_REPLACED
        FBP_CORRUPT
    enum:
        FBP_HEADER_BYTES
        FBP_RECORD_HEADER
        FBP_RECORD_ALIGN
        FBP_HOT_REUSE_MIN
        FBP_RING_ABI
        FBP_WAITV_MAX
        FBP_LATENCY_BOUNDS
        FBP_LATENCY_BUCKETS
    uint32_t FBP_KIND_PAD
    const uint64_t fbp_latency_bounds_ns[FBP_LATENCY_BOUNDS]

    ctypedef struct fbp_ring_header:
        uint64_t magic
        uint32_t abi
        uint64_t capacity
        int64_t owner_pid
        uint64_t created_ns
        uint64_t hot_reuse_min
        uint64_t head
        uint64_t packets_sent
        uint64_t bytes_sent
        uint64_t full_waits
        uint64_t tail
        uint64_t packets_received
        uint64_t bytes_received
        uint64_t packets_released
        uint64_t empty_waits
        uint32_t producer_closed
        uint32_t consumer_closed
        int32_t producer_pid
        int32_t consumer_pid
        uint32_t consumer_attaches
        uint64_t latency_sum_ns
        uint64_t latency_counts[FBP_LATENCY_BUCKETS]

    ctypedef struct fbp_producer:
        fbp_ring_header *hdr
        uint64_t cap
        uint64_t head
        int closed

    ctypedef struct fbp_consumer:
        fbp_ring_header *hdr
        uint64_t cap
        uint64_t read
        uint64_t tail
        uint32_t generation
        int closed

    ctypedef struct fbp_wait_item:
        fbp_producer *producer
        fbp_consumer *consumer
        uint64_t need

    int64_t fbp_now_ns()
    uint64_t fbp_align_record(uint64_t payload)
    uint64_t fbp_max_payload(uint64_t cap)
    uint64_t fbp_round_capacity(uint64_t cap)
    void *fbp_segment_create(const char *name, uint64_t cap, uint64_t hot_reuse_min,
                             uint64_t *map_size)
    void *fbp_segment_attach(const char *name, uint64_t *map_size)
    int fbp_pid_alive(int32_t pid)

    void fbp_producer_init(fbp_producer *p, void *base)
    int fbp_producer_wait_space(fbp_producer *p, uint64_t need, int64_t deadline)
    int fbp_producer_reserve(fbp_producer *p, uint64_t payload, int64_t deadline, uint8_t **out)
    void fbp_producer_commit(fbp_producer *p, uint64_t payload, uint32_t kind, int publish)
    void fbp_producer_publish(fbp_producer *p)
    void fbp_producer_close(fbp_producer *p)
    void fbp_wake_both(fbp_ring_header *h)

    int fbp_consumer_init(fbp_consumer *c, void *base)
    void fbp_consumer_free(fbp_consumer *c)
    int fbp_consumer_wait_data(fbp_consumer *c, int64_t deadline)
    int fbp_consumer_take(fbp_consumer *c, const uint8_t **payload, uint64_t *length,
                          uint32_t *kind, uint64_t *index)
    void fbp_consumer_publish_counts(fbp_consumer *c)
    void fbp_consumer_release(fbp_consumer *c, uint64_t index)
    void fbp_consumer_close(fbp_consumer *c)

    int fbp_wait_any(fbp_wait_item *items, int n, int64_t deadline, int *ready)


cdef class Segment:
    cdef void *base
    cdef uint64_t map_size
    cdef fbp_ring_header *hdr
    cdef readonly str name


cdef class RingCore:
    cdef Segment segment
    cdef fbp_producer producer
    cdef fbp_consumer consumer
    cdef bint may_produce, may_consume
    cdef bint producing, consuming
    cdef bint closed_here
    cdef bint producer_busy, consumer_busy  # a thread is inside a GIL-free section
    cdef object reservation
    cdef readonly str name
    cdef readonly str role
    cdef readonly uint64_t capacity
    cdef int _start_producing(self) except -1
    cdef int _start_consuming(self) except -1
    cdef int _check_producer(self) except -1
    cdef int _reserve(self, uint64_t nbytes, object timeout, uint8_t **out, dict extra) except -1
    cdef int _check_consumer(self) except -1
    cdef Record _take(self)
    cdef int _wait_data(self, object timeout) except -1


cdef class Record:
    cdef RingCore ring
    cdef const uint8_t *data
    cdef Py_ssize_t length
    cdef uint32_t kind_code
    cdef uint64_t index
    cdef int exports
    cdef bint released
    cdef void _release(self) noexcept


cdef class Reservation:
    cdef RingCore ring
    cdef uint8_t *data
    cdef Py_ssize_t length
    cdef uint32_t kind_code
    cdef int exports
    cdef int state
    cdef object view
