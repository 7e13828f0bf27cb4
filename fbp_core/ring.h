/*
 * fbp_core/ring.h -- single-producer single-consumer ring of variable-size records in one
 * POSIX shared-memory segment. Plain C (C11 atomics, Linux futexes) so the memory-ordering
 * argument can be read in one place; _ring.pyx only wraps it.
 *
 * Segment layout (docs/ring.md has the picture):
 *
 *   [0, 4096)            header: one cache line per writer (see fbp_ring_header)
 *   [4096, 4096 + cap)   data: records at 16-byte aligned offsets
 *
 * A record is a 16-byte header {payload length, kind, commit stamp} followed by the payload,
 * padded to a multiple of 16 bytes. A record never splits across the end of the data area: when it does
 * not fit before the end, the producer first publishes a PAD record covering the rest of the
 * lap, and the consumer skips it.
 *
 * Positions (head, tail, read cursor) are byte counts since creation that only grow; the
 * offset in the data area is position % cap. Because they never wrap (2^64 bytes is
 * centuries at memory bandwidth), "used = head - tail" needs no full/empty ambiguity bit.
 *
 *   tail <= read cursor <= head
 *   [tail, read)  delivered to the consumer, not all released yet (still owned by views)
 *   [read, head)  published, not yet delivered
 *   [head, tail + cap)  free
 *
 * The shared tail only moves over records the consumer released, in order; releases may
 * come out of order and are remembered consumer-locally until the prefix is complete.
 * This is what makes delivery at-least-once: a consumer that dies leaves tail at its oldest
 * unreleased record, and a new consumer starts reading at tail.
 */
#ifndef FBP_RING_H
#define FBP_RING_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FBP_RING_MAGIC 0x676e695250424621ULL /* "!FBPRing" little-endian */
#define FBP_RING_ABI 2 /* 2: commit stamps in record headers, latency histogram */
#define FBP_LINE 64
#define FBP_HEADER_BYTES 4096
#define FBP_RECORD_ALIGN 16
#define FBP_RECORD_HEADER 16
/* Default for a ring's hot_reuse_min: records at least this large prefer the start of the
 * data area when it is free (see fbp_producer_reserve); below it the extra PAD record costs
 * more than cache reuse gains. Each ring stores its own value (set at creation). */
#define FBP_HOT_REUSE_MIN (32u * 1024u)
#define FBP_KIND_PAD 0xFFFFFFFFu

/* Queueing latency: the producer stamps each record when it commits it, the consumer
 * counts how long it waited when it takes it, into a histogram in the segment header.
 * The stamp is CLOCK_MONOTONIC in units of 2^10 ns (~1 us), truncated to 32 bits: it fits
 * the record header's spare word, so records stay 16 bytes, and differences are right
 * modulo 2^42 ns (~73 minutes), far beyond any wait worth measuring. CLOCK_MONOTONIC is
 * one clock for every process of a host, and a ring never spans hosts. */
#define FBP_STAMP_SHIFT 10
/* Upper bounds of the latency buckets in ns (1-2-5 steps, 10 us .. 10 s); one more bucket
 * counts everything above the last bound. */
#define FBP_LATENCY_BOUNDS 19
#define FBP_LATENCY_BUCKETS (FBP_LATENCY_BOUNDS + 1)
static const uint64_t fbp_latency_bounds_ns[FBP_LATENCY_BOUNDS] = {
    10000ULL,     20000ULL,     50000ULL,     100000ULL,     200000ULL,
    500000ULL,    1000000ULL,   2000000ULL,   5000000ULL,    10000000ULL,
    20000000ULL,  50000000ULL,  100000000ULL, 200000000ULL,  500000000ULL,
    1000000000ULL, 2000000000ULL, 5000000000ULL, 10000000000ULL,
};

/* Status codes; fbp/ring.py maps them to exceptions in one table. */
enum {
    FBP_OK = 0,
    FBP_TIMEOUT_EMPTY = 1,   /* no record before the deadline */
    FBP_TIMEOUT_FULL = 2,    /* no space before the deadline */
    FBP_END_OF_STREAM = 3,   /* producer closed and everything was delivered */
    FBP_BROKEN = 4,          /* consumer closed: nothing sent can be delivered */
    FBP_TOO_LARGE = 5,       /* record can never fit */
    FBP_INTERRUPTED = 6,     /* a signal arrived while waiting: check it, then retry */
    FBP_CLOSED_HERE = 7,     /* this side already closed */
    FBP_BAD_SEGMENT = 8,     /* not an fbp ring, or another ABI version */
    FBP_ERRNO = 9,           /* a system call failed; errno says why */
    FBP_BUSY = 10,           /* the role is held by another live process */
    FBP_REPLACED = 11,       /* a newer consumer attached; this handle is stale */
    FBP_CORRUPT = 12,        /* a record header points outside the published data */
};

typedef struct {
    uint64_t length; /* payload bytes */
    uint32_t kind;   /* DATA, OPEN, CLOSE, EOF, CONTROL or PAD */
    uint32_t stamp;  /* commit time, see FBP_STAMP_SHIFT (0 in PADs) */
} fbp_record_header;

/*
 * Each line has one writer, so no line ping-pongs between cores for writes. The producer
 * reads the consumer's lines only when its cached tail says the ring looks full, and the
 * consumer reads the producer's line only when its cached head says it looks empty.
 * Counters live next to the cursor their owner writes anyway, so stats cost no extra line.
 */
typedef struct {
    /* line 0: written once at creation */
    _Alignas(FBP_LINE) uint64_t magic;
    uint32_t abi;
    uint32_t header_bytes;
    uint64_t capacity;
    int64_t owner_pid;
    uint64_t created_ns;
    uint64_t hot_reuse_min; /* 0: never wrap early */

    /* line 1: producer-owned */
    _Alignas(FBP_LINE) _Atomic uint64_t head;
    _Atomic uint64_t packets_sent;
    _Atomic uint64_t bytes_sent;
    _Atomic uint64_t full_waits;

    /* line 2: consumer-owned */
    _Alignas(FBP_LINE) _Atomic uint64_t tail;
    _Atomic uint64_t packets_received;
    _Atomic uint64_t bytes_received;
    _Atomic uint64_t packets_released;
    _Atomic uint64_t empty_waits;

    /* line 3: the consumer sleeps on data_seq; the producer bumps it only if flagged */
    _Alignas(FBP_LINE) _Atomic uint32_t data_seq;
    _Atomic uint32_t consumer_waiting;

    /* line 4: the producer sleeps on space_seq; the consumer bumps it only if flagged */
    _Alignas(FBP_LINE) _Atomic uint32_t space_seq;
    _Atomic uint32_t producer_waiting;

    /* line 5: lifecycle, written rarely */
    _Alignas(FBP_LINE) _Atomic uint32_t producer_closed;
    _Atomic uint32_t consumer_closed;
    _Atomic int32_t producer_pid;
    _Atomic int32_t consumer_pid;
    _Atomic uint32_t consumer_attaches; /* how many consumers attached so far */

    /* lines 6-8: consumer-owned, how long taken records waited (published with the
     * delivery counters; readers sum the buckets for the count, so count and buckets
     * always agree) */
    _Alignas(FBP_LINE) _Atomic uint64_t latency_sum_ns;
    _Atomic uint64_t latency_counts[FBP_LATENCY_BUCKETS];
} fbp_ring_header;

_Static_assert(sizeof(fbp_ring_header) <= FBP_HEADER_BYTES, "header must fit its page");
_Static_assert(sizeof(fbp_record_header) == FBP_RECORD_HEADER, "record header is 16 bytes");

/* ------------------------------------------------------------------------------------ */
/* time, futex                                                                           */

static inline int64_t fbp_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Waits while *word == expected, until woken or the absolute CLOCK_MONOTONIC deadline
 * (deadline < 0: forever). Not FUTEX_PRIVATE: the word is shared between processes.
 * Returns 0 when woken or the value changed, ETIMEDOUT, or EINTR. */
static inline int fbp_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline) {
    struct timespec ts, *tsp = NULL;
    if (deadline >= 0) {
        ts.tv_sec = deadline / 1000000000LL;
        ts.tv_nsec = deadline % 1000000000LL;
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, so retries after EINTR
     * need no recomputation. */
    long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, expected, tsp, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    if (r == 0) return 0;
    if (errno == EAGAIN) return 0;
    return errno;
}

/* The commit stamp of a record taken now (vDSO clock read: no system call). */
static inline uint32_t fbp_stamp_now(void) {
    return (uint32_t)((uint64_t)fbp_now_ns() >> FBP_STAMP_SHIFT);
}

/* The bucket of a wait of `ns`: a short scan from the bottom, because most records of a
 * healthy connection wait microseconds and exit after one or two compares. */
static inline unsigned fbp_latency_bucket(uint64_t ns) {
    unsigned b = 0;
    while (b < FBP_LATENCY_BOUNDS && ns > fbp_latency_bounds_ns[b]) b++;
    return b;
}

static inline void fbp_futex_wake(_Atomic uint32_t *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static inline void fbp_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Always wakes both sides: close is rare, the peer must never sleep through it, and a
 * thread of the closing process blocked on the same side must stop waiting too. */
static inline void fbp_wake_both(fbp_ring_header *h) {
    atomic_fetch_add_explicit(&h->data_seq, 1, memory_order_seq_cst);
    fbp_futex_wake(&h->data_seq);
    atomic_fetch_add_explicit(&h->space_seq, 1, memory_order_seq_cst);
    fbp_futex_wake(&h->space_seq);
}

/* ------------------------------------------------------------------------------------ */
/* segments                                                                              */

static inline uint64_t fbp_align_record(uint64_t payload) {
    return (payload + FBP_RECORD_HEADER + FBP_RECORD_ALIGN - 1) & ~(uint64_t)(FBP_RECORD_ALIGN - 1);
}

/* Largest payload a ring of this capacity can ever hold. */
static inline uint64_t fbp_max_payload(uint64_t cap) { return cap - FBP_RECORD_HEADER; }

/* Rounds a requested capacity up to whole pages so the data area ends on a page. */
static inline uint64_t fbp_round_capacity(uint64_t cap) {
    if (cap < 4096) cap = 4096;
    return (cap + 4095) & ~(uint64_t)4095;
}

/* Creates the named segment exclusively, sizes and maps it, writes the header.
 * On failure returns NULL with errno set, and leaves no segment behind. */
static inline void *fbp_segment_create(const char *name, uint64_t cap, uint64_t hot_reuse_min,
                                       uint64_t *map_size) {
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return NULL;
    uint64_t size = FBP_HEADER_BYTES + cap;
    if (ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        close(fd);
        shm_unlink(name);
        errno = e;
        return NULL;
    }
    /* Allocate every page now: tmpfs allocates lazily, and a write to a page it cannot
     * back (full /dev/shm) kills the writer with SIGBUS mid-run. Failing here with ENOSPC
     * is the clear error. It also spares the first lap its page faults. */
    int fe = posix_fallocate(fd, 0, (off_t)size);
    if (fe != 0 && fe != EOPNOTSUPP && fe != EINVAL) {
        close(fd);
        shm_unlink(name);
        errno = fe;
        return NULL;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (base == MAP_FAILED) {
        shm_unlink(name);
        errno = e;
        return NULL;
    }
    /* new tmpfs pages are zeroed, so every counter and flag already reads 0. */
    fbp_ring_header *h = (fbp_ring_header *)base;
    h->abi = FBP_RING_ABI;
    h->header_bytes = FBP_HEADER_BYTES;
    h->capacity = cap;
    h->owner_pid = getpid();
    h->created_ns = (uint64_t)fbp_now_ns();
    h->hot_reuse_min = hot_reuse_min;
    /* magic last, with release: an attacher that sees it sees a complete header. */
    __atomic_store_n(&h->magic, FBP_RING_MAGIC, __ATOMIC_RELEASE);
    *map_size = size;
    return base;
}

/* Maps an existing segment. Returns NULL with errno set (EINVAL: not an fbp ring). */
static inline void *fbp_segment_attach(const char *name, uint64_t *map_size) {
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    if ((uint64_t)st.st_size < FBP_HEADER_BYTES + 4096) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (base == MAP_FAILED) {
        errno = e;
        return NULL;
    }
    fbp_ring_header *h = (fbp_ring_header *)base;
    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != FBP_RING_MAGIC || h->abi != FBP_RING_ABI ||
        h->header_bytes != FBP_HEADER_BYTES ||
        h->capacity + FBP_HEADER_BYTES != (uint64_t)st.st_size) {
        munmap(base, (size_t)st.st_size);
        errno = EINVAL;
        return NULL;
    }
    *map_size = (uint64_t)st.st_size;
    return base;
}

/* A zombie (killed, not yet reaped by its parent) counts as dead: the supervisor may
 * take over a dead child's ring end before it has collected the exit status. */
static inline int fbp_pid_alive(int32_t pid) {
    if (pid <= 0) return 0;
    if (kill(pid, 0) != 0 && errno != EPERM) return 0;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *close_paren = strrchr(buf, ')'); /* the command name may contain ')' */
    if (close_paren && close_paren[1] == ' ' && (close_paren[2] == 'Z' || close_paren[2] == 'X'))
        return 0;
    return 1;
}

/* ------------------------------------------------------------------------------------ */
/* adaptive spinning                                                                     */

/* Spin budget in nanoseconds, per waiting side: doubled when a spin ends with success
 * (a ping-pong peer answers within microseconds, and a futex round trip costs ~5-10 us),
 * halved when the spin gives up and sleeps (a slow stream should not pay a spin per
 * record). Bounded, so an idle ring costs one short spin and then sleeps. */
#define FBP_SPIN_MIN_NS 500
#define FBP_SPIN_MAX_NS 50000
#define FBP_SPIN_START_NS 10000

typedef struct {
    int64_t budget_ns;
} fbp_spin;

static inline void fbp_spin_init(fbp_spin *s) { s->budget_ns = FBP_SPIN_START_NS; }
static inline void fbp_spin_won(fbp_spin *s) {
    s->budget_ns = s->budget_ns * 2 > FBP_SPIN_MAX_NS ? FBP_SPIN_MAX_NS : s->budget_ns * 2;
}
static inline void fbp_spin_lost(fbp_spin *s) {
    s->budget_ns = s->budget_ns / 2 < FBP_SPIN_MIN_NS ? FBP_SPIN_MIN_NS : s->budget_ns / 2;
}

/* ------------------------------------------------------------------------------------ */
/* producer                                                                              */

typedef struct {
    fbp_ring_header *hdr;
    uint8_t *data;
    uint64_t cap;
    uint64_t head;       /* == hdr->head: the producer is its only writer */
    uint64_t tail_cache; /* last tail seen; refreshed only when the ring looks full */
    uint64_t hot_reuse_min;
    uint64_t packets, bytes, full_waits;
    int closed;
    fbp_spin spin;
} fbp_producer;

static inline void fbp_producer_init(fbp_producer *p, void *base) {
    p->hdr = (fbp_ring_header *)base;
    p->data = (uint8_t *)base + FBP_HEADER_BYTES;
    p->cap = p->hdr->capacity;
    p->hot_reuse_min = p->hdr->hot_reuse_min ? p->hdr->hot_reuse_min : UINT64_MAX;
    p->head = atomic_load_explicit(&p->hdr->head, memory_order_relaxed);
    p->tail_cache = atomic_load_explicit(&p->hdr->tail, memory_order_acquire);
    p->packets = atomic_load_explicit(&p->hdr->packets_sent, memory_order_relaxed);
    p->bytes = atomic_load_explicit(&p->hdr->bytes_sent, memory_order_relaxed);
    p->full_waits = atomic_load_explicit(&p->hdr->full_waits, memory_order_relaxed);
    p->closed = 0;
    fbp_spin_init(&p->spin);
}

static inline uint64_t fbp_producer_free(fbp_producer *p) {
    /* acquire pairs with the consumer's release store of tail: once we see the new tail,
     * the consumer's reads of the freed bytes are complete, so overwriting them is safe. */
    p->tail_cache = atomic_load_explicit(&p->hdr->tail, memory_order_acquire);
    return p->cap - (p->head - p->tail_cache);
}

/* Publishes everything written below p->head and wakes a sleeping consumer. */
static inline void fbp_producer_publish(fbp_producer *p) {
    fbp_ring_header *h = p->hdr;
    atomic_store_explicit(&h->packets_sent, p->packets, memory_order_relaxed);
    atomic_store_explicit(&h->bytes_sent, p->bytes, memory_order_relaxed);
    /* The record bytes and headers become visible before the new head (release), and
     * the store is ordered before the load of the waiting flag below (Dekker with the
     * consumer's "set waiting flag, then re-read head": one of us sees the other's store,
     * so a sleeping consumer is always woken and a busy one costs no syscall). A seq_cst
     * exchange does both in one locked instruction, cheaper than a store plus mfence. */
    atomic_exchange_explicit(&h->head, p->head, memory_order_seq_cst);
    /* The exchange makes one wake-up per sleep: records committed before the sleeper
     * runs again find the flag clear and make no system call. */
    if (atomic_load_explicit(&h->consumer_waiting, memory_order_seq_cst) &&
        atomic_exchange_explicit(&h->consumer_waiting, 0, memory_order_acq_rel)) {
        atomic_fetch_add_explicit(&h->data_seq, 1, memory_order_release);
        fbp_futex_wake(&h->data_seq);
    }
}

/* Waits until free space >= need, the consumer closed, or the deadline. */
static inline int fbp_producer_wait_space(fbp_producer *p, uint64_t need, int64_t deadline) {
    fbp_ring_header *h = p->hdr;
    if (p->cap - (p->head - p->tail_cache) >= need) return FBP_OK;
    if (fbp_producer_free(p) >= need) return FBP_OK;
    if (atomic_load_explicit(&h->consumer_closed, memory_order_acquire)) return FBP_BROKEN;
    if (deadline == 0) return FBP_TIMEOUT_FULL;
    p->full_waits++;
    atomic_store_explicit(&h->full_waits, p->full_waits, memory_order_relaxed);
    /* bounded spin */
    int64_t start = fbp_now_ns();
    int64_t spin_end = start + p->spin.budget_ns;
    if (deadline > 0 && spin_end > deadline) spin_end = deadline;
    for (unsigned i = 1;; i++) {
        fbp_cpu_relax();
        if (fbp_producer_free(p) >= need) {
            fbp_spin_won(&p->spin);
            return FBP_OK;
        }
        if ((i & 63) == 0 && fbp_now_ns() >= spin_end) break;
    }
    fbp_spin_lost(&p->spin);
    for (;;) {
        /* Read the word BEFORE raising the flag. The waker clears the flag and then bumps
         * the word, so any bump that follows our flag also follows this read, and the
         * futex wait below returns at once. Read after the flag, a waker could clear the
         * flag and bump in between: we would sleep on the bumped value with the flag
         * clear, and no later release would wake us (a lost wake-up, seen in the
         * consumer-restart stress test). */
        uint32_t seq = atomic_load_explicit(&h->space_seq, memory_order_acquire);
        atomic_store_explicit(&h->producer_waiting, 1, memory_order_seq_cst);
        atomic_thread_fence(memory_order_seq_cst);
        if (fbp_producer_free(p) >= need) break;
        if (atomic_load_explicit(&h->consumer_closed, memory_order_acquire)) {
            atomic_store_explicit(&h->producer_waiting, 0, memory_order_relaxed);
            return FBP_BROKEN;
        }
        /* another thread of ours closed this side: stop waiting */
        if (atomic_load_explicit(&h->producer_closed, memory_order_acquire)) {
            atomic_store_explicit(&h->producer_waiting, 0, memory_order_relaxed);
            return FBP_CLOSED_HERE;
        }
        if (deadline > 0 && fbp_now_ns() >= deadline) {
            atomic_store_explicit(&h->producer_waiting, 0, memory_order_relaxed);
            return FBP_TIMEOUT_FULL;
        }
        int r = fbp_futex_wait(&h->space_seq, seq, deadline);
        if (r == EINTR) {
            atomic_store_explicit(&h->producer_waiting, 0, memory_order_relaxed);
            return FBP_INTERRUPTED;
        }
    }
    atomic_store_explicit(&h->producer_waiting, 0, memory_order_relaxed);
    return FBP_OK;
}

/* Finds space for a record of `payload` bytes and returns where its payload goes. Nothing
 * becomes visible to the consumer except, possibly, a PAD record (invisible to users): a
 * producer that dies after reserving leaves no partial record behind.
 *
 * Cache-hot reuse of large records: when a large record fits entirely in the free space
 * at the start of the data area (everything there was released), it goes there instead of
 * after the previous record, with a PAD over the rest of the lap. FIFO order is kept,
 * since the consumer reads the PAD and then the record; but the producer keeps writing the
 * same low addresses the consumer just released, which are still in L3, instead of
 * marching through the whole segment at DRAM speed. */
static inline int fbp_producer_reserve(fbp_producer *p, uint64_t payload, int64_t deadline,
                                       uint8_t **out) {
    fbp_ring_header *h = p->hdr;
    if (p->closed) return FBP_CLOSED_HERE;
    if (atomic_load_explicit(&h->consumer_closed, memory_order_acquire)) return FBP_BROKEN;
    if (payload > fbp_max_payload(p->cap)) return FBP_TOO_LARGE;
    uint64_t need = fbp_align_record(payload);
    for (;;) {
        uint64_t off = p->head % p->cap;
        uint64_t room_to_end = p->cap - off;
        int wrap = 0;
        if (off != 0) {
            if (need > room_to_end) {
                wrap = 1;
            } else if (need >= p->hot_reuse_min) {
                uint64_t free_now = p->cap - (p->head - p->tail_cache);
                if (free_now < room_to_end + need) free_now = fbp_producer_free(p);
                wrap = free_now >= room_to_end + need;
            }
        }
        if (wrap) {
            int r = fbp_producer_wait_space(p, room_to_end, deadline);
            if (r != FBP_OK) return r;
            fbp_record_header *pad = (fbp_record_header *)(p->data + off);
            pad->length = room_to_end - FBP_RECORD_HEADER;
            pad->kind = FBP_KIND_PAD;
            pad->stamp = 0;
            p->head += room_to_end;
            fbp_producer_publish(p);
            continue;
        }
        int r = fbp_producer_wait_space(p, need, deadline);
        if (r != FBP_OK) return r;
        /* `off` is still right after waiting: only this producer moves head. */
        *out = p->data + off + FBP_RECORD_HEADER;
        return FBP_OK;
    }
}

/* Writes the header of the record reserved at p->head; publish=0 lets a batch publish once. */
static inline void fbp_producer_commit(fbp_producer *p, uint64_t payload, uint32_t kind,
                                       int publish) {
    uint64_t off = p->head % p->cap;
    fbp_record_header *rec = (fbp_record_header *)(p->data + off);
    rec->length = payload;
    rec->kind = kind;
    rec->stamp = fbp_stamp_now();
    p->head += fbp_align_record(payload);
    p->packets++;
    p->bytes += payload;
    if (publish) fbp_producer_publish(p);
}

static inline void fbp_producer_close(fbp_producer *p) {
    fbp_ring_header *h = p->hdr;
    if (p->closed) return;
    p->closed = 1;
    atomic_store_explicit(&h->producer_closed, 1, memory_order_seq_cst);
    fbp_wake_both(h);
}

/* ------------------------------------------------------------------------------------ */
/* consumer                                                                              */

#define FBP_PENDING_RELEASED 1u
#define FBP_PENDING_PAD 2u

typedef struct {
    fbp_ring_header *hdr;
    uint8_t *data;
    uint64_t cap;
    uint64_t read;       /* next record to deliver */
    uint64_t tail;       /* == hdr->tail: the consumer is its only writer */
    uint64_t head_cache; /* last head seen; refreshed only when the ring looks empty */
    uint64_t received, received_bytes, released, empty_waits;
    /* Local copies of the header's latency histogram; `latency_dirty` has a bit per
     * bucket changed since the last publish, so a publish stores only those. */
    uint64_t latency_sum_ns;
    uint64_t latency_counts[FBP_LATENCY_BUCKETS];
    uint32_t latency_dirty;
    /* Out-of-order release bookkeeping: entry i (delivery index) holds the end position of
     * the i-th delivered record, with FBP_PENDING_RELEASED set once released and
     * FBP_PENDING_PAD for skipped PADs (positions are 16-aligned, so the low bits are
     * free). first..next are the delivered entries the tail has not passed yet. */
    uint64_t *pending;
    uint64_t pending_mask; /* size - 1, size a power of two */
    uint64_t first, next;
    uint32_t generation; /* hdr->consumer_attaches when this consumer attached */
    int closed;
    fbp_spin spin;
} fbp_consumer;

/* Starts reading at the shared tail: every record not released by an earlier consumer is
 * delivered again (the at-least-once rule). Returns -1 (ENOMEM) on failure. */
static inline int fbp_consumer_init(fbp_consumer *c, void *base) {
    c->hdr = (fbp_ring_header *)base;
    c->data = (uint8_t *)base + FBP_HEADER_BYTES;
    c->cap = c->hdr->capacity;
    c->tail = atomic_load_explicit(&c->hdr->tail, memory_order_acquire);
    c->read = c->tail;
    c->head_cache = atomic_load_explicit(&c->hdr->head, memory_order_acquire);
    c->received = atomic_load_explicit(&c->hdr->packets_received, memory_order_relaxed);
    c->received_bytes = atomic_load_explicit(&c->hdr->bytes_received, memory_order_relaxed);
    c->released = atomic_load_explicit(&c->hdr->packets_released, memory_order_relaxed);
    c->empty_waits = atomic_load_explicit(&c->hdr->empty_waits, memory_order_relaxed);
    /* a new consumer goes on counting where the last one stopped, like the counters above */
    c->latency_sum_ns = atomic_load_explicit(&c->hdr->latency_sum_ns, memory_order_relaxed);
    for (unsigned b = 0; b < FBP_LATENCY_BUCKETS; b++)
        c->latency_counts[b] =
            atomic_load_explicit(&c->hdr->latency_counts[b], memory_order_relaxed);
    c->latency_dirty = 0;
    c->pending_mask = 1023;
    c->pending = (uint64_t *)malloc((c->pending_mask + 1) * sizeof(uint64_t));
    c->first = c->next = 0;
    c->generation = atomic_load_explicit(&c->hdr->consumer_attaches, memory_order_acquire);
    c->closed = 0;
    fbp_spin_init(&c->spin);
    if (!c->pending) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

static inline void fbp_consumer_free(fbp_consumer *c) {
    free(c->pending);
    c->pending = NULL;
}

static inline int fbp_consumer_has_data(fbp_consumer *c) {
    if (c->read != c->head_cache) return 1;
    /* acquire pairs with the producer's release of head: record bytes are visible. */
    c->head_cache = atomic_load_explicit(&c->hdr->head, memory_order_acquire);
    return c->read != c->head_cache;
}

/* Waits until a record (or PAD) is published, the producer closed and all was read, or
 * the deadline. */
static inline int fbp_consumer_wait_data(fbp_consumer *c, int64_t deadline) {
    fbp_ring_header *h = c->hdr;
    if (fbp_consumer_has_data(c)) return FBP_OK;
    if (atomic_load_explicit(&h->producer_closed, memory_order_acquire)) {
        /* closed is stored after the final head: re-read head once more */
        return fbp_consumer_has_data(c) ? FBP_OK : FBP_END_OF_STREAM;
    }
    if (deadline == 0) return FBP_TIMEOUT_EMPTY;
    c->empty_waits++;
    atomic_store_explicit(&h->empty_waits, c->empty_waits, memory_order_relaxed);
    int64_t start = fbp_now_ns();
    int64_t spin_end = start + c->spin.budget_ns;
    if (deadline > 0 && spin_end > deadline) spin_end = deadline;
    for (unsigned i = 1;; i++) {
        fbp_cpu_relax();
        if (fbp_consumer_has_data(c)) {
            fbp_spin_won(&c->spin);
            return FBP_OK;
        }
        if ((i & 63) == 0 && fbp_now_ns() >= spin_end) break;
    }
    fbp_spin_lost(&c->spin);
    for (;;) {
        /* word before flag: see fbp_producer_wait_space */
        uint32_t seq = atomic_load_explicit(&h->data_seq, memory_order_acquire);
        atomic_store_explicit(&h->consumer_waiting, 1, memory_order_seq_cst);
        atomic_thread_fence(memory_order_seq_cst);
        if (fbp_consumer_has_data(c)) break;
        if (atomic_load_explicit(&h->producer_closed, memory_order_acquire)) {
            atomic_store_explicit(&h->consumer_waiting, 0, memory_order_relaxed);
            return fbp_consumer_has_data(c) ? FBP_OK : FBP_END_OF_STREAM;
        }
        if (atomic_load_explicit(&h->consumer_closed, memory_order_acquire)) {
            atomic_store_explicit(&h->consumer_waiting, 0, memory_order_relaxed);
            return FBP_CLOSED_HERE;
        }
        if (deadline > 0 && fbp_now_ns() >= deadline) {
            atomic_store_explicit(&h->consumer_waiting, 0, memory_order_relaxed);
            return FBP_TIMEOUT_EMPTY;
        }
        int r = fbp_futex_wait(&h->data_seq, seq, deadline);
        if (r == EINTR) {
            atomic_store_explicit(&h->consumer_waiting, 0, memory_order_relaxed);
            return FBP_INTERRUPTED;
        }
    }
    atomic_store_explicit(&h->consumer_waiting, 0, memory_order_relaxed);
    return FBP_OK;
}

static inline int fbp_consumer_grow_pending(fbp_consumer *c) {
    uint64_t size = c->pending_mask + 1;
    uint64_t *bigger = (uint64_t *)malloc(2 * size * sizeof(uint64_t));
    if (!bigger) return -1;
    for (uint64_t i = c->first; i != c->next; i++) bigger[i & (2 * size - 1)] = c->pending[i & c->pending_mask];
    free(c->pending);
    c->pending = bigger;
    c->pending_mask = 2 * size - 1;
    return 0;
}

/* Moves the shared tail over the released prefix and wakes a sleeping producer. */
static inline void fbp_consumer_advance(fbp_consumer *c) {
    uint64_t t = c->tail;
    while (c->first != c->next && (c->pending[c->first & c->pending_mask] & FBP_PENDING_RELEASED)) {
        uint64_t entry = c->pending[c->first & c->pending_mask];
        t = entry & ~(uint64_t)(FBP_RECORD_ALIGN - 1);
        /* counted when the tail passes it, not at release(): a record released behind a
         * held one is delivered again after a consumer crash, and must count once */
        if (!(entry & FBP_PENDING_PAD)) c->released++;
        c->first++;
    }
    if (t == c->tail) return;
    c->tail = t;
    fbp_ring_header *h = c->hdr;
    /* A newer consumer took over (at-least-once restart): this one's late releases must
     * not move the tail under it. */
    if (atomic_load_explicit(&h->consumer_attaches, memory_order_relaxed) != c->generation)
        return;
    atomic_store_explicit(&h->packets_released, c->released, memory_order_relaxed);
    /* release: our reads of the freed records happen before the producer may reuse them;
     * seq_cst exchange: also the Dekker barrier, as in fbp_producer_publish */
    atomic_exchange_explicit(&h->tail, t, memory_order_seq_cst);
    if (atomic_load_explicit(&h->producer_waiting, memory_order_seq_cst) &&
        atomic_exchange_explicit(&h->producer_waiting, 0, memory_order_acq_rel)) {
        atomic_fetch_add_explicit(&h->space_seq, 1, memory_order_release);
        fbp_futex_wake(&h->space_seq);
    }
}

/* Takes the next published user record (skipping PADs), without waiting. Returns 1 and
 * fills payload/length/kind/index, 0 if none is published, -1 on ENOMEM, -2 if the
 * record header is impossible (corrupt segment). The record stays
 * owned until fbp_consumer_release(index). */
static inline int fbp_consumer_take(fbp_consumer *c, const uint8_t **payload, uint64_t *length,
                                    uint32_t *kind, uint64_t *index) {
    for (;;) {
        if (!fbp_consumer_has_data(c)) return 0;
        if (c->next - c->first > c->pending_mask && fbp_consumer_grow_pending(c) != 0) return -1;
        uint64_t off = c->read % c->cap;
        const fbp_record_header *rec = (const fbp_record_header *)(c->data + off);
        uint64_t size = fbp_align_record(rec->length);
        /* Only memory corruption can make this true (headers are written before head is
         * published); refuse rather than read outside the segment. */
        if (rec->length > c->cap || size > c->cap - off || size > c->head_cache - c->read)
            return -2;
        c->read += size;
        uint64_t i = c->next++;
        if (rec->kind == FBP_KIND_PAD) {
            c->pending[i & c->pending_mask] = c->read | FBP_PENDING_RELEASED | FBP_PENDING_PAD;
            if (i == c->first) fbp_consumer_advance(c);
            continue;
        }
        c->pending[i & c->pending_mask] = c->read;
        c->received++;
        c->received_bytes += rec->length;
        /* unsigned 32-bit difference: right across the stamp's wrap-around */
        uint64_t waited = (uint64_t)(uint32_t)(fbp_stamp_now() - rec->stamp) << FBP_STAMP_SHIFT;
        unsigned b = fbp_latency_bucket(waited);
        c->latency_counts[b]++;
        c->latency_sum_ns += waited;
        c->latency_dirty |= 1u << b;
        *payload = (const uint8_t *)(rec + 1);
        *length = rec->length;
        *kind = rec->kind;
        *index = i;
        return 1;
    }
}

/* Publishes the delivery counters once per call (not per record). */
static inline void fbp_consumer_publish_counts(fbp_consumer *c) {
    fbp_ring_header *h = c->hdr;
    atomic_store_explicit(&h->packets_received, c->received, memory_order_relaxed);
    atomic_store_explicit(&h->bytes_received, c->received_bytes, memory_order_relaxed);
    uint32_t dirty = c->latency_dirty;
    if (!dirty) return;
    c->latency_dirty = 0;
    atomic_store_explicit(&h->latency_sum_ns, c->latency_sum_ns, memory_order_relaxed);
    while (dirty) {
        unsigned b = (unsigned)__builtin_ctz(dirty);
        atomic_store_explicit(&h->latency_counts[b], c->latency_counts[b], memory_order_relaxed);
        dirty &= dirty - 1;
    }
}

static inline void fbp_consumer_release(fbp_consumer *c, uint64_t index) {
    c->pending[index & c->pending_mask] |= FBP_PENDING_RELEASED;
    if (index == c->first) fbp_consumer_advance(c);
}

static inline void fbp_consumer_close(fbp_consumer *c) {
    fbp_ring_header *h = c->hdr;
    if (c->closed) return;
    c->closed = 1;
    atomic_store_explicit(&h->consumer_closed, 1, memory_order_seq_cst);
    fbp_wake_both(h);
}

/* ------------------------------------------------------------------------------------ */
/* waiting on several rings                                                              */

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449 /* same number on every architecture (Linux >= 5.16) */
#endif
#define FBP_FUTEX2_SIZE_U32 0x02
#define FBP_WAITV_MAX 128

struct fbp_futex_waitv {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};

typedef struct {
    fbp_producer *producer; /* exactly one of producer/consumer is set */
    fbp_consumer *consumer;
    uint64_t need;          /* producer: record size that must fit */
} fbp_wait_item;

/* Ready means the next call would not block: a consumer has a record or is at end of
 * stream; a producer can place `need` bytes (or start its wrap), or is broken; either
 * side was closed. */
static inline int fbp_item_ready(fbp_wait_item *it) {
    if (it->consumer) {
        fbp_consumer *c = it->consumer;
        if (fbp_consumer_has_data(c)) return 1;
        return atomic_load_explicit(&c->hdr->producer_closed, memory_order_acquire) ||
               atomic_load_explicit(&c->hdr->consumer_closed, memory_order_acquire);
    }
    fbp_producer *p = it->producer;
    if (atomic_load_explicit(&p->hdr->consumer_closed, memory_order_acquire) ||
        atomic_load_explicit(&p->hdr->producer_closed, memory_order_acquire))
        return 1;
    uint64_t off = p->head % p->cap;
    uint64_t need = it->need;
    if (off != 0 && need > p->cap - off) need = p->cap - off; /* the PAD can go out now */
    return fbp_producer_free(p) >= need;
}

static int fbp_waitv_missing = 0; /* set once futex_waitv returned ENOSYS */

/* Marks ready items in ready[] and returns how many, 0 on timeout, or -FBP_INTERRUPTED.
 * Sleeps with futex_waitv on every ring's word at once; on kernels without it (ENOSYS)
 * or with more than FBP_WAITV_MAX rings, polls with sleeps growing from 50 us to 2 ms. */
static inline int fbp_wait_any(fbp_wait_item *items, int n, int64_t deadline, int *ready) {
    struct fbp_futex_waitv w[FBP_WAITV_MAX];
    int64_t poll_ns = 50000;
    for (;;) {
        int count = 0;
        for (int i = 0; i < n; i++) {
            fbp_wait_item *it = &items[i];
            fbp_ring_header *h = it->consumer ? it->consumer->hdr : it->producer->hdr;
            _Atomic uint32_t *flag = it->consumer ? &h->consumer_waiting : &h->producer_waiting;
            _Atomic uint32_t *word = it->consumer ? &h->data_seq : &h->space_seq;
            /* word before flag: see fbp_producer_wait_space */
            w[i < FBP_WAITV_MAX ? i : 0].val = atomic_load_explicit(word, memory_order_acquire);
            atomic_store_explicit(flag, 1, memory_order_seq_cst);
            w[i < FBP_WAITV_MAX ? i : 0].uaddr = (uint64_t)(uintptr_t)word;
            w[i < FBP_WAITV_MAX ? i : 0].flags = FBP_FUTEX2_SIZE_U32;
            w[i < FBP_WAITV_MAX ? i : 0].reserved = 0;
        }
        atomic_thread_fence(memory_order_seq_cst);
        for (int i = 0; i < n; i++) {
            ready[i] = fbp_item_ready(&items[i]);
            count += ready[i];
        }
        int timed_out = deadline == 0 || (deadline > 0 && fbp_now_ns() >= deadline);
        if (count || timed_out) {
            for (int i = 0; i < n; i++) {
                fbp_wait_item *it = &items[i];
                fbp_ring_header *h = it->consumer ? it->consumer->hdr : it->producer->hdr;
                atomic_store_explicit(it->consumer ? &h->consumer_waiting : &h->producer_waiting,
                                      0, memory_order_relaxed);
            }
            return count;
        }
        if (!fbp_waitv_missing && n <= FBP_WAITV_MAX) {
            struct timespec ts, *tsp = NULL;
            if (deadline > 0) {
                ts.tv_sec = deadline / 1000000000LL;
                ts.tv_nsec = deadline % 1000000000LL;
                tsp = &ts;
            }
            long r = syscall(SYS_futex_waitv, w, (unsigned)n, 0, tsp, CLOCK_MONOTONIC);
            if (r < 0 && errno == EINTR) return -FBP_INTERRUPTED;
            /* ENOSYS (old kernel), or anything but "value changed"/"timed out" (e.g. a
             * seccomp filter): poll from now on rather than spin on a failing call */
            if (r < 0 && errno != EAGAIN && errno != ETIMEDOUT) fbp_waitv_missing = 1;
        } else {
            struct timespec ts = {0, poll_ns};
            if (nanosleep(&ts, NULL) != 0 && errno == EINTR) return -FBP_INTERRUPTED;
            poll_ns = poll_ns * 2 > 2000000 ? 2000000 : poll_ns * 2;
        }
    }
}

#endif /* FBP_RING_H */
