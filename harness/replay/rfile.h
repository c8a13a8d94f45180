/* The replay file: the replay-ready form of a trace (prepare.h) on disk, cached beside the trace
 * as TRACE.replay (docs/REPLAY_FILE.md). Written as a stream of chunks while the trace is being
 * prepared, so neither the writer nor the reader ever holds all ops in memory; read back chunk by
 * chunk, every op checked before anyone uses it.
 *
 * Layout: a fixed header, then the chunks (each an array of mallet_rop_t of one thread followed
 * by the extensions of its EXT ops, the threads' chunks interleaved in the order they were
 * written), then the index: a thread table and, thread by thread in op order, where each chunk
 * is. The header names the index. */
#ifndef MALLET_REPLAY_RFILE_H
#define MALLET_REPLAY_RFILE_H

#include "trace/format.h"

#define MALLET_NO_SLOT UINT32_MAX

/* One op of a thread's stream: an allocation-API call to make, or a wait for another thread.
 * 8 bytes: malloc (of fewer than 2^16 bytes) and free, most of any trace, are one op each; every
 * other op has the EXT bit and takes an extension (mallet_rop_ext_t), the next one in its chunk's
 * extensions (docs/REPLAY_FILE.md). Ops and extensions are kept apart so that op i of a thread is
 * at a computable place: waits name it, progress counts it, and prepare patches its flags byte in
 * the file. A 1e9-event trace of mallocs and frees is then about 8 GB of ops, read sequentially. */
#define MALLET_ROP_WAIT 0x20u /* kind of a wait: not a call, the thread waits for another one */
#define MALLET_ROP_EXT 0x80u  /* kind: the op has an extension (all but short mallocs and frees) */

#define MALLET_ROP_AWAITED                                                                         \
    0x1u /* flags: another thread waits for this op: publish its completion */

/* A malloc of up to this many bytes is one op without extension. */
#define MALLET_ROP_SHORT_MAX UINT16_MAX

/* Sizes are 47 bits: no successful call gets more (a user address space is at most 2^47 bytes on
 * x86-64 and 2^48 on arm64). The 48th bit is ALT, an alternative reading of aux and size. */
#define MALLET_ROP_SIZE_MAX ((1ull << 47) - 1)
#define MALLET_ROP_ALT 0x8000u

typedef struct mallet_rop {
    uint8_t kind;  /* MALLET_OP_* (never RSS) or MALLET_ROP_WAIT, | MALLET_ROP_EXT */
    uint8_t flags; /* MALLET_ROP_AWAITED and nothing else: prepare sets it in the file by
                    * writing this one byte (see rfile.c) */
    uint16_t size; /* malloc without EXT: bytes; with EXT: size bits 32..46, MALLET_ROP_ALT */
    uint32_t slot; /* the block it makes (allocations, realloc's new block) or frees;
                    * WAIT: the index of the op waited for, in that thread's stream */
} mallet_rop_t;

/* The rest of an op with MALLET_ROP_EXT. */
typedef struct mallet_rop_ext {
    uint32_t size_lo; /* size bits 0..31: bytes (calloc: element size; reallocarray: count x
                       * size) */
    uint32_t aux;     /* realloc, reallocarray: the block it resizes (or MALLET_NO_SLOT);
                       * calloc: element count (ALT: aux is the element size, size the count);
                       * memalign family: alignment (ALT: its log2, above 2^32 - 1);
                       * WAIT: the thread waited for */
} mallet_rop_ext_t;

/* The op's kind without the EXT bit: MALLET_OP_* or MALLET_ROP_WAIT. */
static inline uint8_t mallet_rop_kind(const mallet_rop_t *o)
{
    return (uint8_t)(o->kind & ~MALLET_ROP_EXT);
}

static inline int mallet_rop_resizes(uint8_t kind)
{
    return kind == MALLET_OP_REALLOC || kind == MALLET_OP_REALLOCARRAY;
}

static inline int mallet_rop_aligns(uint8_t kind)
{
    return kind == MALLET_OP_POSIX_MEMALIGN || kind == MALLET_OP_ALIGNED_ALLOC ||
           kind == MALLET_OP_MEMALIGN;
}

/* x: the op's extension; not read when the op has none. */
static inline uint64_t mallet_rop_size(const mallet_rop_t *o, const mallet_rop_ext_t *x)
{
    if (!(o->kind & MALLET_ROP_EXT)) return o->size;
    return (uint64_t)(o->size & ~MALLET_ROP_ALT) << 32 | x->size_lo;
}

/* Sets the size of an op with EXT; size must be at most MALLET_ROP_SIZE_MAX. */
static inline void mallet_rop_set_size(mallet_rop_t *o, mallet_rop_ext_t *x, uint64_t size, int alt)
{
    x->size_lo = (uint32_t)size;
    o->size = (uint16_t)((size >> 32) | (alt ? MALLET_ROP_ALT : 0));
}

/* The block a realloc resizes, else MALLET_NO_SLOT. */
static inline uint32_t mallet_rop_old_slot(const mallet_rop_t *o, const mallet_rop_ext_t *x)
{
    return mallet_rop_resizes(mallet_rop_kind(o)) ? x->aux : MALLET_NO_SLOT;
}

/* The call's numbers as the trace had them: bytes (element size) and the element count (calloc)
 * or the alignment (memalign family), else 1 (reallocarray's size is the product). */
static inline void mallet_rop_args(const mallet_rop_t *o, const mallet_rop_ext_t *x,
                                   uint64_t *size, uint64_t *aux)
{
    uint8_t kind = mallet_rop_kind(o);
    *size = mallet_rop_size(o, x);
    *aux = 1;
    if (kind != MALLET_OP_CALLOC && !mallet_rop_aligns(kind)) return; /* these have EXT */
    *aux = x->aux;
    if (o->size & MALLET_ROP_ALT) {
        if (kind == MALLET_OP_CALLOC) {
            *aux = *size;
            *size = x->aux;
        } else {
            *aux = 1ull << (x->aux & 63);
        }
    }
}

/* What a replay file says about itself, and about the trace it was made from. */
typedef struct mallet_prepared_info {
    uint64_t trace_size, trace_mtime_ns; /* of the trace file: a changed trace is re-prepared */
    uint64_t ops;                        /* allocation-API calls (waits not counted) */
    uint64_t waits;                      /* ops that wait for another thread */
    uint64_t skipped, failed_allocs;
    uint64_t peak_live_bytes, peak_live_blocks;
    uint64_t chunks;
    uint64_t patches; /* AWAITED flags set in ops already written (rfile.c) */
    uint32_t nthreads, nslots;
    /* the most threads alive at once in the trace's time order (a thread alive from its first
     * event to its end, or to its last event where the trace does not mark ends; the main thread
     * from the start): the worker runs at most this many, starting threads in index order, which
     * is the order of their first events */
    uint32_t concurrency;
    uint64_t gap_ns; /* the resume gap it was prepared with (prepare.h), 0: none */
} mallet_prepared_info_t;

/* Reads a replay file's header. Returns 0, or -1 if path is missing or not a replay file of this
 * mallet. */
int mallet_prepared_peek(const char *path, mallet_prepared_info_t *info);

/* The traced process's own RSS samples (the trace's RSS events), kept so that a replay's RSS can
 * be set beside the original run's: t_ns from the process's first event. At most
 * MALLET_RFILE_RSS_MAX, evenly thinned. */
#define MALLET_RFILE_RSS_MAX 512
typedef struct mallet_rss_sample {
    uint64_t t_ns, bytes;
} mallet_rss_sample_t;
/* Reads them into out (room for MALLET_RFILE_RSS_MAX). Returns 0, or -1 (not a replay file). */
int mallet_rfile_recorded_rss(const char *path, mallet_rss_sample_t *out, uint32_t *n);

/* ---- writing (prepare.c) ------------------------------------------------------------------- */

typedef struct mallet_rfile_writer mallet_rfile_writer_t;

/* Starts a replay file for path: written aside (PATH.PID.tmp) and renamed on commit, so a reader
 * never sees half a file and two replays never mix. Returns 0 or -errno. */
int mallet_rfile_create(const char *path, uint64_t trace_size, uint64_t trace_mtime_ns,
                        mallet_rfile_writer_t **out);
/* Appends n ops (1 <= n <= MALLET_RFILE_CHUNK_MAX) to thread's stream, as one chunk, with the
 * extensions of those that have EXT (nx of them, in op order). */
#define MALLET_RFILE_CHUNK_MAX (1u << 20)
int mallet_rfile_append(mallet_rfile_writer_t *w, uint32_t thread, const mallet_rop_t *ops,
                        uint32_t n, const mallet_rop_ext_t *exts, uint32_t nx);
/* Flags op (an index into thread's stream, already appended) MALLET_ROP_AWAITED. */
int mallet_rfile_mark_awaited(mallet_rfile_writer_t *w, uint32_t thread, uint64_t op);
/* How a traced thread ended (flags in the thread table). EXITS: before its process; the replay's
 * thread ends after its ops, inside the timed part. STAYS: it lived to its process's end; the
 * replay's thread, and the allocator's state for it, stays to the end of the timed part.
 * Neither: not known (the trace's recorder did not mark thread ends), and the replay ends the
 * thread when its slot is needed or after the timed part. */
#define MALLET_RFILE_T_EXITS 0x1u
#define MALLET_RFILE_T_STAYS 0x2u
/* Writes the index and header (counts from info; trace size and mtime as given to create),
 * renames the file into place and frees w. tids[t]: thread t's OS id; tflags[t] its
 * MALLET_RFILE_T_* (NULL: none known). Returns 0 or -errno; on failure the file is removed. */
int mallet_rfile_commit(mallet_rfile_writer_t *w, const mallet_prepared_info_t *info,
                        const uint32_t *tids, const uint32_t *tflags);
/* Removes the unfinished file and frees w. */
void mallet_rfile_discard(mallet_rfile_writer_t *w);
/* Adds an RSS sample of the traced process (in time order); past MALLET_RFILE_RSS_MAX every
 * other one is dropped, and from then on every other one is taken. */
void mallet_rfile_add_rss(mallet_rfile_writer_t *w, uint64_t t_ns, uint64_t bytes);
/* Test knob: apply the pending patches whenever cap of them are pending (default 256 Ki). */
void mallet_rfile_set_patch_cap(mallet_rfile_writer_t *w, size_t cap);
/* Patches applied to the file (AWAITED flags of ops already appended), for the bench. */
uint64_t mallet_rfile_patches(const mallet_rfile_writer_t *w);

/* ---- reading (the worker, tests, the fuzzer) ----------------------------------------------- */

typedef struct mallet_rfile_chunk {
    uint64_t offset; /* of its ops from the file start; its extensions follow them */
    uint64_t first;  /* index of its first op in the thread's stream */
    uint64_t xfirst; /* index of its first extension in the thread's extensions */
    uint32_t nops, nexts;
} mallet_rfile_chunk_t;

typedef struct mallet_rfile_thread {
    uint32_t tid;
    uint32_t flags; /* MALLET_RFILE_T_* */
    uint64_t nops;  /* ops in the stream, waits included; at most UINT32_MAX */
    uint64_t nexts; /* extensions: the ops with EXT */
    const mallet_rfile_chunk_t *chunks;
    uint64_t nchunks;
} mallet_rfile_thread_t;

/* An open replay file. Its tables live in one anonymous mapping (the worker's own memory never
 * comes from the allocator under test). Everything here has been checked against the file's size;
 * the ops are checked as they are read. */
typedef struct mallet_rfile {
    int fd;
    const char *path;
    mallet_prepared_info_t info;
    uint32_t nthreads, nslots;
    mallet_rfile_thread_t *threads;
    uint32_t max_chunk_ops; /* the largest chunk: this many ops and extensions hold any chunk */
    void *map;
    size_t map_len;
} mallet_rfile_t;

/* Opens path and checks its header and index. Returns 0, or -1 with "PATH: what is wrong" in
 * err. */
int mallet_rfile_open(const char *path, mallet_rfile_t *rf, char *err, size_t errlen);
void mallet_rfile_close(mallet_rfile_t *rf);
/* Reads chunk k of thread t into ops (room for its nops) and exts (room for its nexts) and checks
 * every op in it: slots below nslots, known kinds and forms, an extension for each op with EXT,
 * waits on an existing op of another thread (or an earlier one of its own). Returns the number
 * of allocation-API calls in it, or -1 with err set. Allocates nothing. */
int64_t mallet_rfile_read_chunk(const mallet_rfile_t *rf, uint32_t t, uint64_t k, mallet_rop_t *ops,
                                mallet_rop_ext_t *exts, char *err, size_t errlen);
/* With every thread's stream in memory (ops[t], its extensions exts[t]): checks that every wait
 * names an op flagged AWAITED (a wait on an op that is never published would never end), and
 * that the waits let every thread reach its end (no two threads wait for each other). Returns 0
 * or -1. Its memory comes from mmap. */
int mallet_rfile_check_waits(const mallet_rfile_t *rf, const mallet_rop_t *const *ops,
                             const mallet_rop_ext_t *const *exts, char *err, size_t errlen);

#endif
