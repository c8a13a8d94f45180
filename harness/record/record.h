/* Internal interface of the recorder (libmallet_record.so). The hooks (preload.c) call into
 * per-thread buffers (tbuf.c); process.c owns the output file and the process lifecycle (start,
 * fork, exec, exit, fatal signals); options.c reads MALLET_* variables.
 *
 * Invariants:
 * - The hot path (hook -> mallet_rec_event) takes no lock, calls no malloc and no stdio.
 * - Nothing here allocates with malloc: buffers and zstd contexts come from mmap.
 * - An allocation is stamped after the real call returns; a free before the real free. */
#ifndef MALLET_RECORD_H
#define MALLET_RECORD_H

#include "platform/platform.h"
#include "record/owners.h"
#include "trace/encode.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#define MALLET_HIDDEN __attribute__((visibility("hidden")))
#define MALLET_LIKELY(x) __builtin_expect(!!(x), 1)
#define MALLET_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- options (options.c) ------------------------------------------------------------------ */
typedef struct mallet_opts {
    char output[4096];     /* MALLET_OUTPUT: a directory (existing, or ending in '/') or a file */
    long root_ppid;        /* MALLET_ROOT_PPID: the process whose parent has this pid writes
                            * MALLET_OUTPUT itself (0: whichever process creates it first) */
    int level;             /* MALLET_ZSTD_LEVEL: 0 no compression, < 0 zstd's fast levels */
    size_t buffer_bytes;   /* MALLET_BUFFER_KB: per-thread buffer (default 64 KiB) */
    uint64_t flush_ms;     /* MALLET_FLUSH_MS: flush a buffer whose first event is older */
    uint64_t rss_ms;       /* MALLET_RSS_MS: RSS sampling period, 0 = off (default 10) */
    uint32_t stamp_every;  /* MALLET_STAMP_EVERY: while the process has one thread, read the
                            * clock on one event in this many (default 16; 1 = every event) */
    uint32_t time_step_us; /* MALLET_TIME_STEP_US: while the process has one thread and
                            * allocates fast, times advance in steps this long (stamp.c) */
    bool disabled;         /* MALLET_DISABLE=1: pass everything through, write nothing */
} mallet_opts_t;
MALLET_HIDDEN void mallet_opts_read(mallet_opts_t *o);

/* ---- per-thread buffers (tbuf.c) ---------------------------------------------------------- */
typedef struct mallet_tbuf {
    struct mallet_tbuf *next; /* registry link; buffers are never unmapped, only reused */
    _Atomic int state;        /* TBUF_FREE or TBUF_ACTIVE */
    _Atomic int lock;         /* held while a chunk is written from this buffer */
    /* count << 32 | length, stored after each complete event so that a flusher on another
     * thread (a dying process) sees only whole events. */
    _Atomic uint64_t pos;
    uint32_t tid, serial;
    uint64_t seq_base;     /* sequence number of the buffer's first event */
    uint64_t first_cycles; /* no event in the buffer is older (set at attach and at each flush) */
    uint64_t flush_at;     /* cycles after which the buffer is flushed even if not full */
    uint64_t deadline;     /* min(flush_at, next RSS sample): the hot path's one time check */
    mallet_enc_state_t st;
    size_t cap;     /* flush when the length reaches this */
    uint32_t zskip; /* chunks still to write raw: the last one compressed shrank less than 2x */
    uint8_t data[];
} mallet_tbuf_t;

typedef struct mallet_tstate {
    int in_hook; /* recursion guard: nested allocator calls are not recorded */
    int exited;  /* the thread's key destructor ran: events are written one by one */
    mallet_tbuf_t *buf;
    uint32_t serial;    /* kept when the buffer is released, for events after thread exit */
    uint32_t unstamped; /* events left that may reuse last_cycles (see mallet_stamp) */
    uint64_t seq;
    uint64_t last_cycles; /* the time its events carry: its last clock reading (or claim, or
                           * step: stamp.c) */
    uint64_t last_read;   /* its last clock reading itself: how fast it allocates */
    uint32_t window;      /* the value unstamped had after the last reading */
    uint32_t tag;         /* its owner-table tag (owners.h): the serial, or MALLET_TAG_NONE */
    uint32_t claims;      /* owner-table claims since the event claims_from (stamp.c) */
    uint64_t claims_from;
    int guarded; /* depth of mallet_output_guard_begin: only the outermost blocks signals (last:
                  * the hot path's fields keep their places) */
} mallet_tstate_t;

extern __thread mallet_tstate_t mallet_tls __attribute__((tls_model("initial-exec")));

MALLET_HIDDEN mallet_tbuf_t *mallet_tbuf_attach(mallet_tstate_t *t);
MALLET_HIDDEN void mallet_tbuf_flush(mallet_tbuf_t *b, int emergency);
MALLET_HIDDEN void mallet_tbuf_flush_all(mallet_tstate_t *self, int emergency);
/* After a dying process's flush: an empty EVENTS chunk flagged EMERGENCY, so that its file says
 * the process died flushed (by a fatal signal), even when every buffer was empty (a process that
 * had written nothing has no file, and gets none). */
MALLET_HIDDEN void mallet_tbuf_dying(mallet_tstate_t *t);
/* Flushes and gives up t's buffer; thread_exit: because the thread ends (its last chunk says
 * so, with the time: docs/TRACE_FORMAT.md), not the process. */
MALLET_HIDDEN void mallet_tbuf_release(mallet_tstate_t *t, int thread_exit);
MALLET_HIDDEN void mallet_tbuf_after_fork_child(mallet_tstate_t *self);
/* A thread's event when it has no buffer: its first (a buffer is attached), or one after its
 * buffer was given up (a thread that has exited, the process after exit(): the event is written
 * as its own chunk). The event's fields one by one (mallet_rec_event says why). */
MALLET_HIDDEN void mallet_rec_first(mallet_tstate_t *t, uint8_t op, uint8_t failed,
                                    uint64_t callsite, uint64_t cycles, uint64_t size, uint64_t ptr,
                                    uint64_t old_ptr, uint64_t nmemb, uint64_t align,
                                    uint64_t free_cycles, int32_t ret);
MALLET_HIDDEN void mallet_maybe_sample_rss(mallet_tstate_t *t, uint64_t now);
/* The hot path's slow branch: the buffer is full, or its deadline passed. */
MALLET_HIDDEN void mallet_tbuf_due(mallet_tstate_t *t, mallet_tbuf_t *b, uint64_t now);
/* Appends a mark of time cycles (docs/TRACE_FORMAT.md 7.1) to t's buffer: the time the event
 * before it is given, where that event carried an earlier one (stamp.c, reading). */
MALLET_HIDDEN void mallet_tbuf_mark(mallet_tstate_t *t, uint64_t cycles);
/* Arms the thread-exit callback that releases the thread's buffer (process.c). */
MALLET_HIDDEN void mallet_thread_register(mallet_tstate_t *t);

/* ---- the process (process.c) ------------------------------------------------------------- */
typedef struct mallet_dso_counts {
    uint64_t adds, subs;
} mallet_dso_counts_t;
typedef struct mallet_proc {
    mallet_opts_t opts;
    pid_t pid, ppid;
    int forked; /* this process was forked from a traced one */
    uint64_t start_realtime_ns, start_ns, start_cycles;
    uint64_t fork_end_cycles;   /* a forked child: its first reading, after the fork */
    _Atomic int write_through;  /* set at exit(): every later event is written at once */
    uint64_t flush_cycles;      /* opts.flush_ms in cycles */
    uint64_t rss_cycles;        /* opts.rss_ms in cycles */
    uint64_t fast_event_cycles; /* 1 us: events closer than this skip the clock (mallet_stamp) */
    uint64_t step_mask;         /* opts.time_step_us in cycles, rounded up to a power of two,
                                 * minus one; 0: readings are stored as read (stamp.c) */
    uint64_t cycles_per_sec;    /* measured at start */
    _Atomic uint64_t next_rss;  /* cycle count at which the next RSS sample is due */
    _Atomic uint32_t next_serial;
    _Atomic uint32_t attaches;    /* buffers attached since the process started (or forked); from 2
                                   * on, events go through the owner table, and with MALLET_DENSE
                                   * set every event reads the clock (mallet_stamp) */
    _Atomic uint64_t single_last; /* the last reading of the process's one thread (stamp.c) */
    int membarrier_ok;            /* mallet_membarrier() works: threads may carry times */
    int thread_exits;             /* a thread's end is seen (its key destructor): META says so */
    mallet_dso_counts_t dsos;     /* shared objects loaded and unloaded at start */
} mallet_proc_t;
extern mallet_proc_t mallet_proc;

/* 0 until initialised, then 1 while recording is possible. */
extern _Atomic int mallet_ready;
MALLET_HIDDEN void mallet_init(void);
typedef struct mallet_zslot mallet_zslot_t; /* a compression context (zpool.c) */

/* ---- the output file (output.c) ---------------------------------------------------------- */
/* The trace file descriptor, opened on first use (so a forked child that only execs leaves no
 * empty file); negative when there is none. Checks that the program has not closed or replaced
 * the descriptor. */
MALLET_HIDDEN int mallet_output_fd(void);
/* Called when a write fails: says so once on stderr and stops recording. */
MALLET_HIDDEN void mallet_output_failed(int err);
/* One line on stderr from NULL-terminated pieces (write(2) only: no malloc, no stdio). */
MALLET_HIDDEN void mallet_say(const char *const *pieces);
/* The /proc/self/statm descriptor for an RSS sample, opened again if the program closed it or
 * took its number (negative if none can be had). */
MALLET_HIDDEN int mallet_statm_fd(void);
/* Forget the parent's file in a forked child (the child opens its own on first use). */
MALLET_HIDDEN void mallet_output_after_fork_child(void);
/* Appends a MAPS chunk with the current /proc/self/maps, compressed with z if the caller holds
 * a context: before the file's first events (their callsites need it), not when the file is
 * created, so that the context made for those events compresses it (sqlite3's 5.7 KB map, raw
 * below zpool.c's 8 KiB threshold, takes ~1 KB) and libraries loaded since the start are in
 * it; again: even if the file has one already (libraries were loaded or unloaded since). */
MALLET_HIDDEN void mallet_output_maps(mallet_zslot_t *z, int again);
/* Shared objects loaded and unloaded so far (dl_iterate_phdr's counters), both 0 if unknown.
 * Takes the loader's lock: not for signal handlers. */
MALLET_HIDDEN mallet_dso_counts_t mallet_output_dso_counts(void);
/* Before a dlclose: a MAPS chunk with the library still mapped, if objects were loaded since the
 * last one that has them (now: the loader's counts), so that its callsites stay named (readers
 * keep every MAPS). */
MALLET_HIDDEN void mallet_output_maps_before_unload(mallet_dso_counts_t now);
MALLET_HIDDEN int mallet_output_is_open(void);
/* Around every write of the trace, the file's creation, and a buffer's lock: begin blocks every
 * asynchronous signal, end restores the mask. A handler that runs in between (the program's
 * that calls exit(), common though not async-signal-safe, or ours for a fatal signal, which
 * flushes) would find the file half-made or the buffer locked by the very thread it
 * interrupted: it waited forever, or the process died with an empty file. And a file-size limit
 * (RLIMIT_FSIZE) must make our write fail with EFBIG, never raise a SIGXFSZ that would kill the
 * program: end discards a SIGXFSZ our write raised (not one that was pending already). Begin
 * also disables the thread's cancellation, and end restores it: write, open and read are
 * cancellation points, malloc and free are not, and a thread cancelled inside the recorder (by
 * pthread_cancel while it allocated) unwound with its buffer locked, and hung the process at its
 * exit; a request that comes meanwhile is acted on at the program's own next cancellation
 * point, as without the recorder. */
typedef struct mallet_sigmask {
    unsigned long long bits[2]; /* the kernel's sigset: 128 signals */
    int was_pending;
    int cancel_state;
} mallet_sigmask_t;
MALLET_HIDDEN mallet_sigmask_t mallet_output_guard_begin(void);
MALLET_HIDDEN void mallet_output_guard_end(mallet_sigmask_t saved);
/* Borrow/return a zstd context with its output scratch, to compress a payload of len bytes;
 * NULL (write it raw) if compression is off, no context is free, or none is made yet and the
 * payload is small (zpool.c). */
MALLET_HIDDEN mallet_zslot_t *mallet_zslot_get(size_t len);
MALLET_HIDDEN void mallet_zslot_put(mallet_zslot_t *z);
MALLET_HIDDEN int mallet_zslot_write(mallet_zslot_t *z, mallet_chunk_header_t *h,
                                     const uint8_t *raw, size_t len);
MALLET_HIDDEN void mallet_zslot_after_fork_child(void);
/* Flush everything and write an END chunk; used by exit, _exit and exec. */
MALLET_HIDDEN void mallet_finish(int reason);

/* The real allocator, found with dlsym(RTLD_NEXT). */
typedef struct mallet_real {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    void (*free)(void *);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    void (*exit_)(int);
    void (*Exit_)(int);
    /* The malloc a call of `malloc` reaches, when it is not the recorder's: the program (or a
     * library preloaded before the recorder) defines its own. NULL: ours. */
    void *(*first_malloc)(size_t);
} mallet_real_t;
extern mallet_real_t mallet_real;
MALLET_HIDDEN void mallet_resolve_real(void);
/* After mallet_resolve_real: the object whose malloc the loader finds first, if not the
 * recorder (then nothing the program allocates reaches the recorder), else NULL. */
MALLET_HIDDEN const char *mallet_malloc_owner(void);
/* C++'s operators (cxx.c): their next definitions and how to call them, where there are any. */
MALLET_HIDDEN void mallet_cxx_resolve(void);

/* ---- timestamps (stamp.c) ------------------------------------------------------------------ */

/* In mallet_proc.attaches: every event reads the clock (owner claims were too frequent, or the
 * asymmetric fence is missing). Cleared in a forked child with the count. */
#define MALLET_DENSE (1u << 30)

extern _Atomic uint64_t mallet_owners[1u << MALLET_OWNER_BITS];

/* The slow side of mallet_stamp: a clock reading, and in a multi-threaded process a claim of
 * addr's owner entry when another thread holds it. */
MALLET_HIDDEN uint64_t mallet_stamp_slow(mallet_tstate_t *t, uintptr_t addr, int release);
/* Called by a thread's first event once its buffer is counted in `attaches` (now the count): from
 * the second thread on, the fence that lets threads carry times safely (stamp.c). */
MALLET_HIDDEN void mallet_stamp_join(mallet_tstate_t *t, uint32_t attaches);
/* Gives t its serial number, and with it its owner tag. */
MALLET_HIDDEN void mallet_stamp_set_serial(mallet_tstate_t *t, uint32_t serial);
/* Before a fork, before its reading: no event of another thread after it carries a time from
 * before it (stamp.c). */
MALLET_HIDDEN void mallet_stamp_before_fork(void);

/* A reading for an event that may depend on another thread's and does not use the owner table: a
 * release (a free, a realloc's old block) comes after the program got the pointer, maybe from
 * another thread, and a plain `rdtsc` can run before that load and come out early (50 ns early
 * with a thread spinning on a hand-over slot: `handover` under load, one misordered free in ~25
 * runs). An allocation depends on another thread only through the allocator's own locks, a long
 * way before the reading. */
static inline uint64_t mallet_stamp_exact(int release)
{
    return release ? mallet_cycles_after_loads() : mallet_cycles();
}

/* The timestamp of an event on the block at addr (0: none), taken where the ordering guarantee
 * says (docs/TRACE_FORMAT.md, 8); release: the event gives the block up (a free, a realloc's
 * old block), after the program got the pointer, perhaps from another thread. Reading the cycle
 * counter costs 2-4 ns in the hook on AMD VMs (12 ns back to back), and 14-27 ns ordered, and its
 * only indispensable use is ordering events that depend on each other across threads. So while a
 * thread allocates fast (its readings were less than 1 us per event apart),
 * only one event in stamp_every reads it and the others carry the thread's last reading:
 * - in a process with one thread, always (nothing depends on another thread);
 * - with several threads, when the thread owns addr's entry in the owner table (owners.h): it was
 *   the last to make or release a block in those 64 KiB, so an event of another thread this one
 *   depends on can only have come before the claim, and the claim's reading (stamp.c) is later.
 * Every other event reads the clock; docs/RECORDER.md has the whole argument. */
__attribute__((always_inline)) static inline uint64_t mallet_stamp(mallet_tstate_t *t,
                                                                   uintptr_t addr, int release)
{
    uint32_t a = atomic_load_explicit(&mallet_proc.attaches, memory_order_relaxed);
    if (MALLET_LIKELY(t->unstamped != 0) &&
        (MALLET_LIKELY(a < 2) ||
         (a < MALLET_DENSE &&
          (!addr ||
           atomic_load_explicit(&mallet_owners[mallet_owner_index(addr)], memory_order_relaxed) >>
                   MALLET_TAG_SHIFT ==
               t->tag)))) {
        t->unstamped--;
        return t->last_cycles;
    }
    if (a >= MALLET_DENSE) { /* a reading per event, in line */
        uint64_t now = mallet_stamp_exact(release);
        return t->last_cycles = now > t->last_cycles ? now : t->last_cycles;
    }
    return mallet_stamp_slow(t, addr, release);
}

/* ---- the hot path ------------------------------------------------------------------------- */

__attribute__((always_inline)) static inline void mallet_rec_event(mallet_tstate_t *t,
                                                                   mallet_event_t *ev)
{
    mallet_tbuf_t *b = t->buf;
    if (MALLET_UNLIKELY(!b)) {
        /* field by field: passed whole, the event would have to live in memory on every call */
        mallet_rec_first(t, ev->op, ev->failed, ev->callsite, ev->cycles, ev->size, ev->ptr,
                         ev->old_ptr, ev->nmemb, ev->align, ev->free_cycles, ev->ret);
        return;
    }
    uint64_t pos = atomic_load_explicit(&b->pos, memory_order_relaxed);
    uint32_t len = (uint32_t)pos, count = (uint32_t)(pos >> 32);
    uint8_t *end = mallet_encode_event(b->data + len, &b->st, ev);
    len = (uint32_t)(end - b->data);
    atomic_store_explicit(&b->pos, (uint64_t)(count + 1) << 32 | len, memory_order_release);
    if (MALLET_UNLIKELY(len >= b->cap || ev->cycles >= b->deadline))
        mallet_tbuf_due(t, b, ev->cycles);
}

#endif
