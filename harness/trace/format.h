/* mallet trace format v1: the on-disk layout shared by the recorder, the reader and every tool.
 * docs/TRACE_FORMAT.md is the prose version of this file; keep them in step.
 *
 * A trace file is one process's allocation history:
 *
 *   file header (16 bytes) | chunk | chunk | ...
 *
 * Every chunk is an 80-byte header followed by its payload. Chunks are appended with one write(2)
 * each (O_APPEND), so chunks from different threads never interleave; a process that dies leaves a
 * file whose last chunk may be cut, and every chunk before it stays readable.
 * All integers are little-endian. */
#ifndef MALLET_TRACE_FORMAT_H
#define MALLET_TRACE_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MALLET_TRACE_MAGIC "MALLETTR" /* 8 bytes, no NUL on disk */
#define MALLET_TRACE_VERSION 3u /* what the recorder writes */
#define MALLET_TRACE_VERSION_PACKED 4u /* version 3 with packed EVENTS chunks (mallet pack) */
#define MALLET_TRACE_VERSION_OLDEST 1u /* still read: version 1 is version 2 without SAME_TIME,
                                        * version 2 is version 3 without marks */
#define MALLET_FILE_HEADER_SIZE 16u /* magic[8] u32 version u32 header_size */

#define MALLET_CHUNK_MAGIC 0x4b48434du /* "MCHK" */
#define MALLET_CHUNK_HEADER_SIZE 80u
/* A reader rejects larger chunks as corrupt. The recorder writes event chunks of at most its
 * buffer size (1 MiB at most) and caps a MAPS chunk below this. */
#define MALLET_CHUNK_MAX_SIZE (64u << 20)

enum mallet_chunk_type {
    MALLET_CHUNK_META = 1,   /* process description: key/value records, see mallet_meta_key */
    MALLET_CHUNK_MAPS = 2,   /* text of /proc/self/maps at that moment (callsite resolution) */
    MALLET_CHUNK_EVENTS = 3, /* one thread's events, encoded as below */
    MALLET_CHUNK_END = 4,    /* the image ended: payload is one byte, a mallet_end_reason */
};

enum mallet_end_reason {
    MALLET_END_EXIT = 0,  /* exit() or return from main */
    MALLET_END_EXEC = 1,  /* about to exec (if the exec fails, events follow) */
    MALLET_END__EXIT = 2, /* _exit() / _Exit() */
};

enum mallet_codec {
    MALLET_CODEC_RAW = 0,
    MALLET_CODEC_ZSTD = 1, /* payload is one zstd frame holding raw_size bytes */
    MALLET_CODEC_PACKED = 2, /* EVENTS only, version 4: coded with a model of the thread's heap
                              * that lives across its chunks (pack.h, TRACE_FORMAT.md 13) */
};

/* Chunk header flags. */
/* The thread's exit: an EVENTS chunk (with its last events, or none) written as the thread ends,
 * whose last_cycles is the time it ended (never before its events). Events the thread's exit
 * makes after it (other libraries' thread destructors) come in chunks of their own. */
#define MALLET_CHUNK_F_THREAD_EXIT 0x1u
#define MALLET_CHUNK_F_EMERGENCY 0x2u   /* written from a fatal-signal or exit path */

/* The 80-byte chunk header, as it is after unpacking. On disk:
 *  0 u32 magic   4 u8 type   5 u8 codec   6 u16 flags
 *  8 u32 tid     OS thread id of the events' thread (display only: tids are reused)
 * 12 u32 thread  the recorder's serial number for that thread, unique within the file
 * 16 u32 disk_size (payload bytes that follow)   20 u32 raw_size (after decompression)
 * 24 u32 count (events in an EVENTS chunk, else 0)   28 u32 reserved (0)
 * 32 u64 clock_cycles  40 u64 clock_ns: one reading of the cycle counter and of CLOCK_MONOTONIC
 *                      taken together when the chunk was written (the reader fits cycles->ns)
 * 48 u64 first_cycles  56 u64 last_cycles: timestamps of the chunk's first and last event, so a
 *                      reader can merge threads in time order from the headers alone
 *                      (THREAD_EXIT: last_cycles is the thread's end, count may be 0)
 * 64 u64 first_seq     index of the chunk's first event among all events of its thread. A
 *                      chunk may repeat events an earlier chunk of the same thread already
 *                      holds (a dying process flushes other threads' buffers as they are);
 *                      readers keep each (thread, seq) once.
 * 72 u32 payload_hash (mallet_hash32 of the disk payload)
 * 76 u32 header_hash  (mallet_hash32 of bytes 0..75) */
typedef struct mallet_chunk_header {
    uint8_t type, codec;
    uint16_t flags;
    uint32_t tid, thread;
    uint32_t disk_size, raw_size, count;
    uint64_t clock_cycles, clock_ns;
    uint64_t first_cycles, last_cycles;
    uint64_t first_seq;
    uint32_t payload_hash;
} mallet_chunk_header_t;

/* META chunk payload: a sequence of records { u8 key, varint length, length bytes }. Unknown
 * keys are skipped by readers (so new keys do not need a new version). Integers are varints. */
enum mallet_meta_key {
    MALLET_META_PID = 1,
    MALLET_META_PPID = 2,
    MALLET_META_START_REALTIME_NS = 3, /* wall clock at recorder start */
    MALLET_META_START_NS = 4,          /* CLOCK_MONOTONIC at recorder start */
    MALLET_META_START_CYCLES = 5,      /* cycle counter at recorder start */
    MALLET_META_CMDLINE = 6,           /* argv, each NUL-terminated */
    MALLET_META_EXE = 7,               /* /proc/self/exe target */
    MALLET_META_PARENT_TRACE = 8,      /* 1 if this process was forked from a traced process */
    MALLET_META_CODEC_LEVEL = 9,       /* zstd level used, if not a fast one (informative) */
    MALLET_META_CYCLES_PER_SEC = 10,   /* the cycle counter's rate as the recorder measured it */
    MALLET_META_THREAD_EXITS = 11,     /* 1: every thread that ended before the process has a
                                        * THREAD_EXIT chunk (one without lived to the end) */
    MALLET_META_CODEC_FAST_LEVEL = 12, /* N: zstd's fast level -N was used (informative) */
    MALLET_META_FORK_END_CYCLES = 13,  /* a forked child: the cycle counter it read at its start,
                                        * after the fork (docs/TRACE_FORMAT.md 5) */
};

/* Event ops. An EVENTS payload is a sequence of events, each:
 *   u8 op|flags, unless MALLET_EV_SAME_TIME varint zigzag(cycles - previous event's cycles),
 *   op-specific fields, then,
 *   unless MALLET_EV_SAME_SITE, varint zigzag(callsite - previous callsite of the same op)
 * "previous" values start at 0 in every chunk, so each chunk decodes on its own.
 * A pointer P is a prefix varint of zigzag(pointer - previous pointer field of the chunk, of any
 * event); every other number is a short varint (mallet_put_short).
 * Op-specific fields, in order:
 *   MALLOC          size, P result
 *   CALLOC          nmemb, size, P result
 *   REALLOC         P old, size, P result, varint (cycles - free_cycles)
 *   REALLOCARRAY    P old, nmemb, size, P result, varint (cycles - free_cycles)
 *   FREE            P ptr
 *   POSIX_MEMALIGN  align, size, P result, [varint return code if MALLET_EV_FAIL]
 *   ALIGNED_ALLOC   align, size, P result
 *   MEMALIGN        align, size, P result
 *   VALLOC          size, P result
 *   PVALLOC         size, P result
 *   RSS             rss bytes (a sample of the process's resident set; callsite field is 0)
 * A timestamp is taken after the real allocation returns and before the real free is called; a
 * realloc has both (free_cycles before the call, cycles after), because it gives up the old block
 * and obtains the new one at different moments. So for any address the event that released it
 * has a smaller timestamp than the allocation that reuses it, whatever the threads. */
enum mallet_op {
    MALLET_OP_MALLOC = 1,
    MALLET_OP_CALLOC = 2,
    MALLET_OP_REALLOC = 3,
    MALLET_OP_REALLOCARRAY = 4,
    MALLET_OP_FREE = 5,
    MALLET_OP_POSIX_MEMALIGN = 6,
    MALLET_OP_ALIGNED_ALLOC = 7,
    MALLET_OP_MEMALIGN = 8,
    MALLET_OP_VALLOC = 9,
    MALLET_OP_PVALLOC = 10,
    MALLET_OP_RSS = 11,
    MALLET_OP_COUNT_ /* one past the last */
};
#define MALLET_EV_OP_MASK 0x1fu
#define MALLET_EV_FAIL 0x20u      /* the call failed: NULL result, or non-zero return code */
#define MALLET_EV_SAME_SITE 0x40u /* callsite equals the previous callsite of this op */
#define MALLET_EV_SAME_TIME 0x80u /* cycles equal the previous event's: the field is omitted
                                   * (version 2; sparse stamps make most events so) */
/* A mark (version 3): the first byte 12, then short zigzag(cycles - previous cycles); no call,
 * not counted in a chunk's `count`. A clock reading the event before it is given (readers: the
 * time the thread last allocated before a pause, which that event carried from earlier). */
#define MALLET_MARK 12u
/* Room one encoded event may need: the op byte, at most 7 varints of 9 bytes, and the 7 bytes the
 * last varint's 8-byte store may write past the end (71), rounded up. */
#define MALLET_EVENT_MAX_SIZE 96u

/* One decoded event. Fields an op does not use are 0. */
typedef struct mallet_event {
    uint8_t op;
    uint8_t failed;
    uint32_t tid;      /* OS thread id */
    uint32_t thread;   /* recorder's thread serial (unique within a file, unlike tid) */
    uint64_t seq;      /* index among the thread's events */
    uint64_t cycles;   /* raw cycle-counter timestamp (after the call, or before a free) */
    uint64_t free_cycles; /* realloc/reallocarray: timestamp taken before the call */
    uint64_t ptr;      /* result of an allocation, or the pointer freed */
    uint64_t old_ptr;  /* realloc/reallocarray: the pointer passed in */
    uint64_t size;     /* requested size (calloc/reallocarray: element size) */
    uint64_t nmemb;    /* calloc/reallocarray element count */
    uint64_t align;    /* memalign family alignment */
    uint64_t callsite; /* return address of the call into the allocator */
    int32_t ret;       /* posix_memalign return code */
} mallet_event_t;

const char *mallet_op_name(unsigned op);

/* Formats a message into err (errlen bytes) and returns -1: library code's way to fail with
 * "FILE: what is wrong" for the CLI to print. */
int mallet_errorf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* --- small shared helpers, inline because the recorder's hot path uses them ---------------- */

static inline void mallet_put_u32(uint8_t *p, uint32_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 4);
#else
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
#endif
}

static inline void mallet_put_u64(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8); /* one store: the recorder's varints are built on this */
#else
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
#endif
}

/* Prefix varint: the count of trailing 1 bits of the first byte, plus one, is the length in
 * bytes (1..8), and the value is the remaining 7*length bits, little-endian; a first byte of
 * 0xff means the value follows in 8 more bytes. Encoding is branch-free for values below 2^56,
 * which matters on the recorder's hot path (LEB128's loop mispredicts on every size change).
 * It stores 8 bytes at p (or 9): callers leave that much room past the end of their data. */
static inline uint8_t *mallet_put_varint(uint8_t *p, uint64_t v)
{
    if (__builtin_expect(v >> 56 != 0, 0)) {
        *p = 0xff;
        mallet_put_u64(p + 1, v);
        return p + 9;
    }
    /* bytes needed for a value of b significant bits: (b + 6) / 7, by table (no divide) */
    static const uint8_t len_of_bits[57] = {1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3,
                                            3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 6, 6,
                                            6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8};
    unsigned len = len_of_bits[64u - (unsigned)__builtin_clzll(v | 1)];
    mallet_put_u64(p, (v << len) | ((1ull << (len - 1)) - 1));
    return p + len;
}

/* Short varint, for the event fields that are almost always small (time deltas, sizes, counts):
 * 2 bytes for values below 2^15 (low bit 0), 4 bytes below 2^30 (low bits 01), else the byte
 * 0x03 and 8 bytes. Fixed widths with predictable branches: on the recorder's hot path this is
 * ~3 ns an event cheaper than the prefix varint's dependent chain. */
static inline uint8_t *mallet_put_short(uint8_t *p, uint64_t v)
{
    if (__builtin_expect(v < (1u << 15), 1)) {
        p[0] = (uint8_t)(v << 1);
        p[1] = (uint8_t)(v >> 7);
        return p + 2;
    }
    if (v < (1u << 30)) {
        mallet_put_u32(p, (uint32_t)(v << 2) | 1u);
        return p + 4;
    }
    *p = 3;
    mallet_put_u64(p + 1, v);
    return p + 9;
}

static inline uint64_t mallet_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t mallet_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static inline uint16_t mallet_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t mallet_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t mallet_get_u64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8); /* one load: the hash runs this over every byte written */
    return v;
#else
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
#endif
}

/* Reads a short varint at *pp (checked: not past end; unchecked: the caller knows 9 bytes are
 * there) and advances *pp; 0, or -1 if malformed. */
static inline __attribute__((always_inline)) int mallet_get_short(const uint8_t **pp,
                                                                  const uint8_t *end,
                                                                  uint64_t *out, int checked)
{
    const uint8_t *p = *pp;
    size_t avail = (size_t)(end - p);
    if (checked && avail < 2) return -1;
    if (!(p[0] & 1)) {
        *out = mallet_get_u16(p) >> 1;
        *pp = p + 2;
        return 0;
    }
    if (!(p[0] & 2)) {
        if (checked && avail < 4) return -1;
        *out = mallet_get_u32(p) >> 2;
        *pp = p + 4;
        return 0;
    }
    if (p[0] != 3 || (checked && avail < 9)) return -1;
    *out = mallet_get_u64(p + 1);
    *pp = p + 9;
    return 0;
}

/* A fast non-cryptographic 32-bit hash, 8 bytes a step, used to detect corrupt chunks. */
uint32_t mallet_hash32(const void *data, size_t len);

void mallet_chunk_header_pack(uint8_t out[MALLET_CHUNK_HEADER_SIZE], const mallet_chunk_header_t *h);
/* Returns 0, or a negative code: -1 bad magic, -2 header hash mismatch, -3 bad field. */
int mallet_chunk_header_unpack(const uint8_t in[MALLET_CHUNK_HEADER_SIZE], mallet_chunk_header_t *h);
void mallet_file_header_pack(uint8_t out[MALLET_FILE_HEADER_SIZE]);

#endif
