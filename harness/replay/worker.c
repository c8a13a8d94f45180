/* See worker.h. Threads wait for their dependencies with a short spin, then a futex on the other
 * thread's progress counter; a thread wakes waiters only when someone is waiting, so an op costs
 * one release store in the common case. */
#define _GNU_SOURCE
#include "worker.h"

#include "platform/platform.h"
#include "rss_sampler.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct progress {
    _Alignas(64) _Atomic uint32_t done; /* ops finished by this thread */
    _Atomic uint32_t waiters;
    /* while this thread sleeps in wait_for: (the thread it waits for + 1) << 32 | the done count
     * it needs; 0 otherwise (stuck_check) */
    _Atomic uint64_t waiting;
} progress_t;

/* A thread's ops as it runs. Whole (its ops fit the budget, OPS_MEM_DEFAULT): read before the
 * timed part, the extensions behind the ops; end is nops and refill never runs. Streamed: a
 * buffer of one chunk (its ops, then its extensions), refilled with pread() as the thread runs.
 * That costs a syscall and a copy from the page cache per chunk of up to 16 Ki ops (128-256
 * KiB), some 10-70 us, so 1-6 ns an op (more if the file is not in the page cache and comes from
 * disk), counted in the replay's time and system time; the buffer's memory stays the same and no
 * mapping changes. */
typedef struct stream {
    const mallet_rop_t *ops; /* ops[i - base] for base <= i < end */
    uint64_t base, end, nops;
    /* the next op with EXT's extension: kept here, not in a register of the replay loop, for
     * only the rare ops read it (malloc and free have none) */
    const mallet_rop_ext_t *x;
    mallet_rop_t *buf;
    size_t buf_len;
    uint64_t next_chunk;
    uint32_t thread;
    const mallet_rfile_t *rf;
} stream_t;

typedef struct run {
    stream_t *streams;
    uint32_t nthreads;
    void **slots;
    progress_t *progress;
    int touch;
    _Atomic int go;
    _Atomic uint32_t finished; /* threads that have run all their ops */
    _Atomic int abandon;       /* a replay thread could not be started: the others replay nothing */
    /* At most `pool` threads run at once (the file's concurrency: rfile.h), thread t on a slot
     * with a stack of the harness's (so that neither a thread's start nor its end makes a
     * syscall of the allocator's kinds: glibc gives its own stacks back with madvise). Threads
     * 0 .. pool - 1 are started before the timed part (0 is this process's main thread); when
     * there are more, the launcher starts each of the others in index order as a slot frees up:
     * a thread that has run its ops puts its slot in the ring and exits if it ended before its
     * process (MALLET_RFILE_T_EXITS), else waits until it is released (then it exits and the
     * launcher reuses its stack); one that lived to its process's end (T_STAYS) keeps its slot.
     * The last ones are released after the timed part. */
    uint32_t pool;
    _Atomic uint32_t started; /* threads 0 .. started - 1 have been started */
    char *stacks;
    size_t stack_len;
    pthread_t *slot_tid;
    uint32_t *slot_thread;     /* per slot: the index of the thread there */
    uint8_t *joinable;         /* per slot: a thread of ours is there, not joined yet */
    _Atomic uint32_t *release; /* per slot: its thread may exit */
    _Atomic uint32_t *ring;    /* freed slots, slot + 1, in the order they freed (0: not yet) */
    _Atomic uint32_t ring_tail;
    _Atomic uint32_t launcher_ready; /* it has made its first allocation */
    _Atomic uint32_t launcher_done;  /* it has started the last thread and joins no more */
    struct worker_arg *args;
    _Atomic uint64_t failed;
    size_t page;
    uint32_t latency_every;
    /* per thread, per op kind: sampled latencies in cycles, log-linear buckets; and the max */
    uint64_t (*hist)[MALLET_OP_COUNT_][MALLET_LAT_BUCKETS];
    uint64_t (*hmax)[MALLET_OP_COUNT_];
    /* stuck_check's last picture of the threads (done << 32 ^ waiting, per thread), taken by
     * whichever sleeping thread holds `checking` */
    uint64_t *stuck_seen;
    uint32_t stuck_started;
    int stuck_seen_valid;
    _Atomic int checking;
} run_t;

/* 8 buckets per power of two: values below 16 exactly, then within 12.5%. */
static unsigned lat_bucket(uint64_t v)
{
    if (v < 16) return (unsigned)v;
    unsigned lg = 63u - (unsigned)__builtin_clzll(v);
    unsigned b = 8u * (lg - 1u) + (unsigned)((v >> (lg - 3u)) & 7u);
    return b < MALLET_LAT_BUCKETS ? b : MALLET_LAT_BUCKETS - 1;
}

/* The largest value of bucket b. */
static uint64_t lat_bucket_max(unsigned b)
{
    if (b < 16) return b;
    unsigned lg = b / 8u + 1u, sub = b % 8u;
    return ((8ull + sub + 1) << (lg - 3u)) - 1;
}

typedef struct worker_arg {
    run_t *run;
    uint32_t index, slot;
} worker_arg_t;

/* Called by a thread whose sleep in wait_for has lasted a second: are all threads stuck? A
 * damaged replay file whose threads wait for each other passes the loader's checks when it is
 * streamed (mallet_rfile_check_waits needs every stream in memory), and would sleep for ever.
 * Stuck means every thread has either run all its ops or sleeps on a done count its thread has
 * not reached, and nothing changed since the last check a second before: a thread can only
 * leave a wait once a done count moves, so no replay that can finish is ever called stuck, however
 * slow the machine. A thread not started yet counts as stuck when every slot is held by a thread
 * with ops left or one that stays to the end (none can free). Then one line, and the process ends
 * (nothing to return to mid-run). */
static __attribute__((noinline, cold)) void stuck_check(run_t *r)
{
    if (atomic_exchange(&r->checking, 1)) return;
    int stuck = 1, same = r->stuck_seen_valid;
    uint32_t who = 0, started = atomic_load(&r->started), held = 0; /* slots held */
    same &= r->stuck_started == started;
    r->stuck_started = started;
    for (uint32_t t = 0; t < started; t++) {
        uint32_t done = atomic_load(&r->progress[t].done);
        uint64_t w = atomic_load(&r->progress[t].waiting);
        uint64_t pic = (uint64_t)done << 32 ^ w;
        same &= r->stuck_seen[t] == pic;
        r->stuck_seen[t] = pic;
        if (done >= r->streams[t].nops) {
            held += (r->streams[t].rf->threads[t].flags & MALLET_RFILE_T_STAYS) != 0;
            continue;
        }
        held++;
        uint32_t u = (uint32_t)(w >> 32);
        if (!w || u - 1 >= r->nthreads || atomic_load(&r->progress[u - 1].done) >= (uint32_t)w)
            stuck = 0;
        else
            who = t;
    }
    if (started < r->nthreads && held < r->pool) stuck = 0; /* a slot frees: one starts */
    r->stuck_seen_valid = stuck;
    if (stuck && same) {
        uint64_t w = atomic_load(&r->progress[who].waiting);
        char line[4400];
        int n = snprintf(line, sizeof line,
                         "mallet-worker: %s: corrupt replay file: threads wait for each other (a "
                         "deadlock): thread %u waits for op %u of thread %u\n",
                         r->streams[0].rf->path, who, (uint32_t)w - 1, (uint32_t)(w >> 32) - 1);
        if (write(2, line, (size_t)n) < 0) _exit(1);
        _exit(1);
    }
    atomic_store(&r->checking, 0);
}

static void wait_for(run_t *r, progress_t *me, uint32_t target, uint64_t op)
{
    progress_t *pr = &r->progress[target];
    uint32_t need = (uint32_t)(op + 1);
    for (int spin = 0; spin < 2000; spin++) {
        if (atomic_load_explicit(&pr->done, memory_order_acquire) >= need) return;
#if defined(__x86_64__) || defined(__i386__)
        __asm__ __volatile__("pause");
#endif
    }
    atomic_fetch_add(&pr->waiters, 1);
    atomic_store(&me->waiting, (uint64_t)(target + 1) << 32 | need);
    for (;;) {
        uint32_t seen = atomic_load_explicit(&pr->done, memory_order_acquire);
        if (seen >= need) break;
        struct timespec second = {1, 0};
        if (syscall(SYS_futex, &pr->done, FUTEX_WAIT_PRIVATE, seen, &second, NULL, 0) != 0 &&
            errno == ETIMEDOUT)
            stuck_check(r);
    }
    atomic_store(&me->waiting, 0);
    atomic_fetch_sub(&pr->waiters, 1);
}

static inline void touch(int mode, size_t page, char *p, size_t n)
{
    if (!p || !n) return;
    switch (mode) {
    case MALLET_TOUCH_FIRST: memset(p, 1, n < 8 ? n : 8); break;
    case MALLET_TOUCH_PAGES:
        for (size_t i = 0; i < n; i += page) p[i] = 1;
        p[n - 1] = 1;
        break;
    case MALLET_TOUCH_ALL: memset(p, 1, n); break;
    default: break;
    }
}

/* A replay thread's stack (the harness's, rather than glibc's 8 MiB: see run_t), unless
 * MALLET_REPLAY_STACK_KB says (an allocator that needs more), and the most of it written before
 * the timed part. */
#define STACK_LEN_DEFAULT (1u << 20)
#define STACK_TOUCHED (16u << 10)

static size_t stack_len(size_t page)
{
    const char *env = getenv("MALLET_REPLAY_STACK_KB");
    uint64_t kb = env && *env ? strtoull(env, NULL, 0) : STACK_LEN_DEFAULT >> 10;
    if (kb > (SIZE_MAX >> 11)) kb = SIZE_MAX >> 11;
    return (((size_t)kb << 10) + page - 1) & ~(page - 1);
}

/* The budget of memory for ops held whole, all threads together; MALLET_REPLAY_OPS_MEM (bytes)
 * overrides it. Past it, threads stream. */
#define OPS_MEM_DEFAULT (1ull << 30)

/* Where a streamed thread's buffer holds chunk c's extensions: behind its ops. */
static inline mallet_rop_ext_t *chunk_exts(mallet_rop_t *buf, const mallet_rfile_chunk_t *c)
{
    return (mallet_rop_ext_t *)(buf + c->nops);
}

/* The next chunk of a streamed thread, which was read and checked before the timed part. A
 * failure here means the file changed under the replay (or a read error). The thread cannot stop
 * alone (others wait for its ops, its slots are half made), and there is no caller to return to
 * in the middle of the run: one line and the process ends. */
static __attribute__((noinline, cold)) const mallet_rop_t *refill(stream_t *st, uint64_t i)
{
    const mallet_rfile_thread_t *t = &st->rf->threads[st->thread];
    char err[4352], line[4400];
    if (st->next_chunk >= t->nchunks || t->chunks[st->next_chunk].first != i ||
        mallet_rfile_read_chunk(st->rf, st->thread, st->next_chunk, st->buf,
                                chunk_exts(st->buf, &t->chunks[st->next_chunk]), err,
                                sizeof err) < 0) {
        int n = snprintf(line, sizeof line, "mallet-worker: %s: changed during the replay\n",
                         st->rf->path);
        if (write(2, line, (size_t)n) < 0) _exit(1);
        _exit(1);
    }
    const mallet_rfile_chunk_t *c = &t->chunks[st->next_chunk++];
    st->ops = st->buf;
    st->x = chunk_exts(st->buf, c);
    st->base = c->first;
    st->end = c->first + c->nops;
    return st->ops;
}

/* Every call but malloc's short form and free: an op with EXT, whose extension is the stream's
 * next. *size: the bytes the new block holds (for touching it). */
static __attribute__((noinline)) void *other_call(const run_t *r, stream_t *st,
                                                  const mallet_rop_t *o, size_t *size_out)
{
    const mallet_rop_ext_t *x = st->x++;
    void *p = NULL, *old = NULL;
    uint64_t size64, aux64;
    mallet_rop_args(o, x, &size64, &aux64);
    size_t size = (size_t)size64, aux = (size_t)aux64; /* element count or alignment */
    uint32_t old_slot = mallet_rop_old_slot(o, x);
    if (old_slot != MALLET_NO_SLOT) old = r->slots[old_slot];
    switch (mallet_rop_kind(o)) {
    case MALLET_OP_MALLOC: p = malloc(size); break; /* of more bytes than the short form holds */
    case MALLET_OP_CALLOC: p = calloc(aux, size); size *= aux; break;
    case MALLET_OP_REALLOC: p = realloc(old, size); break;
    case MALLET_OP_REALLOCARRAY:
        /* as realloc: glibc's reallocarray calls its own realloc internally, so on an allocator
         * that does not export reallocarray (jemalloc 5) it would free a foreign block. The
         * overflow check is the only difference. */
        p = aux && size > SIZE_MAX / aux ? NULL : realloc(old, size * aux);
        size *= aux;
        break;
    case MALLET_OP_POSIX_MEMALIGN:
        if (posix_memalign(&p, aux, size)) p = NULL;
        break;
    case MALLET_OP_ALIGNED_ALLOC: p = aligned_alloc(aux, size); break;
    case MALLET_OP_MEMALIGN: p = memalign(aux, size); break;
    case MALLET_OP_VALLOC: p = valloc(size); break;
    case MALLET_OP_PVALLOC: /* page-rounded valloc: not every allocator exports pvalloc */
        size = (size + r->page - 1) & ~(r->page - 1);
        if (posix_memalign(&p, r->page, size ? size : r->page)) p = NULL;
        break;
    default: break;
    }
    *size_out = size;
    return p;
}

/* This thread has done its first `done` ops: wakes those waiting for them. */
static inline void publish(progress_t *me, uint64_t done)
{
    atomic_store_explicit(&me->done, (uint32_t)done, memory_order_release);
    if (atomic_load_explicit(&me->waiters, memory_order_relaxed))
        syscall(SYS_futex, &me->done, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Until the timed part starts: a short spin, so that the threads start together, then a sleep,
 * so that many threads waiting do not take the cores from the one starting them. */
static void wait_go(run_t *r)
{
    for (int spin = 0; spin < 20000; spin++) {
        if (atomic_load_explicit(&r->go, memory_order_acquire)) return;
#if defined(__x86_64__) || defined(__i386__)
        __asm__ __volatile__("pause");
#endif
    }
    while (!atomic_load_explicit(&r->go, memory_order_acquire))
        syscall(SYS_futex, &r->go, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

/* Replays thread a->index's ops, then counts itself finished. */
static void replay_thread(const worker_arg_t *a)
{
    run_t *r = a->run;
    stream_t *ops = &r->streams[a->index];
    uint64_t n = ops->nops, calls = 0;
    /* the window in locals: the calls to the allocator would make the compiler reload it */
    const mallet_rop_t *win = ops->ops;
    uint64_t wbase = ops->base, wend = ops->end;
    progress_t *me = &r->progress[a->index];
    wait_go(r);
    if (atomic_load(&r->abandon)) n = 0; /* their ops could wait for a thread that never runs */
    uint64_t failed = 0;
    /* in locals: the allocator calls would make the compiler reload anything behind r */
    void **const slots = r->slots;
    const int tmode = r->touch;
    const size_t page = r->page;
    uint64_t(*hist)[MALLET_LAT_BUCKETS] = r->hist[a->index];
    uint64_t *hmax = r->hmax[a->index];
    /* the calls timed are a random gap apart (1 .. 2 x every - 1), so that a periodic pattern
     * (malloc, free, malloc, free...) cannot put every sample on one kind */
    const uint32_t gaps = 2 * r->latency_every - 1;
    uint32_t rnd = 0x9e3779b9u * (a->index + 1u) | 1u;
    uint64_t next_timed = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (__builtin_expect(i >= wend, 0)) {
            win = refill(ops, i);
            wbase = ops->base, wend = ops->end;
        }
        const mallet_rop_t *o = &win[i - wbase];
        if (o->kind == (MALLET_ROP_WAIT | MALLET_ROP_EXT)) {
            wait_for(r, me, ops->x++->aux, o->slot);
            /* another thread may wait for this point too (a thread resuming after a gap waits
             * for the other's last op, whatever it was: prepare.c) */
            if (o->flags & MALLET_ROP_AWAITED) publish(me, i + 1);
            continue;
        }
        const int timed = calls++ == next_timed;
        uint64_t c0 = timed ? mallet_cycles() : 0;
        void *p = NULL;
        size_t size = 0;
        /* malloc and free inline, in few registers: they are most of any trace */
        if (o->kind == MALLET_OP_MALLOC)
            p = malloc(size = o->size);
        else if (o->kind == MALLET_OP_FREE)
            free(o->slot != MALLET_NO_SLOT ? slots[o->slot] : NULL);
        else
            p = other_call(r, ops, o, &size);
        if (timed) {
            uint64_t d = mallet_cycles() - c0;
            uint8_t kind = mallet_rop_kind(o); /* a call's: below MALLET_OP_COUNT_ (read_chunk) */
            hist[kind][lat_bucket(d)]++;
            if (d > hmax[kind]) hmax[kind] = d;
            rnd ^= rnd << 13, rnd ^= rnd >> 17, rnd ^= rnd << 5;
            next_timed = calls + rnd % gaps;
        }
        if (o->kind != MALLET_OP_FREE && o->slot != MALLET_NO_SLOT) {
            if (!p) failed++;
            slots[o->slot] = p;
            touch(tmode, page, p, size); /* a realloc'd block is written whole, like a new one */
        } else if (p) {
            free(p); /* realloc(p, 0) that returned a block where the recorded one did not */
        }
        /* only ops another thread waits for are published: the rest cost nothing extra */
        if (o->flags & MALLET_ROP_AWAITED) publish(me, i + 1);
    }
    /* everything done: a wait on an op a streamed file did not flag (unchecked, see
     * load_streams) ends here at the latest */
    publish(me, n);
    atomic_fetch_add(&r->failed, failed);
    if (atomic_fetch_add(&r->finished, 1) + 1 == r->nthreads)
        syscall(SYS_futex, &r->finished, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* A thread that has run its ops gives its slot to the launcher, if there is one (the ring holds
 * a slot at most once between two launches: no entry is overwritten before it is taken). */
static void slot_free(run_t *r, uint32_t slot)
{
    if (r->pool == r->nthreads) return;
    _Atomic uint32_t *cell = &r->ring[atomic_fetch_add(&r->ring_tail, 1) % r->pool];
    atomic_store(cell, slot + 1);
    syscall(SYS_futex, cell, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Lets the thread on slot (done with its ops, or about to be) exit, joins it, and leaves the
 * slot empty for another. */
static void slot_end(run_t *r, uint32_t slot)
{
    atomic_store(&r->release[slot], 1);
    syscall(SYS_futex, &r->release[slot], FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(r->slot_tid[slot], NULL);
    r->joinable[slot] = 0;
    atomic_store(&r->release[slot], 0);
}

/* What a thread that has run its ops does with its slot; 1: it ends now. */
static int thread_done(run_t *r, const worker_arg_t *a)
{
    uint32_t flags = r->streams[a->index].rf->threads[a->index].flags;
    if (!(flags & MALLET_RFILE_T_STAYS)) slot_free(r, a->slot);
    return (flags & MALLET_RFILE_T_EXITS) != 0;
}

static void *worker(void *arg)
{
    const worker_arg_t *a = arg;
    run_t *r = a->run;
    replay_thread(a);
    if (thread_done(r, a)) return NULL; /* the allocator's thread teardown: timed, as it was */
    while (!atomic_load(&r->release[a->slot]))
        syscall(SYS_futex, &r->release[a->slot], FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

/* Starts thread a->index on slot's stack. 0 or an errno. */
static int start_on(run_t *r, uint32_t slot, worker_arg_t *a)
{
    pthread_attr_t at;
    if (pthread_attr_init(&at)) return EAGAIN;
    a->slot = slot;
    r->slot_thread[slot] = a->index;
    int e = pthread_attr_setstack(&at, r->stacks + slot * (r->stack_len + r->page) + r->page,
                                  r->stack_len);
    if (!e) e = pthread_create(&r->slot_tid[slot], &at, worker, a);
    pthread_attr_destroy(&at);
    if (!e) r->joinable[slot] = 1;
    return e;
}

static void go(run_t *r)
{
    atomic_store_explicit(&r->go, 1, memory_order_release);
    syscall(SYS_futex, &r->go, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* After the timed part (or a failed start): lets every thread still there exit, and joins it. */
static void release_all(run_t *r)
{
    for (uint32_t slot = 0; slot < r->pool; slot++)
        if (r->joinable[slot]) slot_end(r, slot);
}

/* Starts threads pool .. nthreads - 1 in index order, each on the next slot freed. A failure
 * here leaves threads waiting for ops that will never run: one line, and the process ends. */
static void *launcher(void *arg)
{
    run_t *r = arg;
    /* Starting a thread allocates (glibc: its TLS vector, with the allocator under test), as
     * the program's own thread starts did. One allocation first, before the timed part, so that
     * the launcher's own first one (glibc gives a thread its arena then) is not counted. */
    free(malloc(1));
    atomic_store(&r->launcher_ready, 1);
    syscall(SYS_futex, &r->launcher_ready, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    wait_go(r);
    if (atomic_load(&r->abandon)) return NULL;
    for (uint32_t next = r->pool, head = 0; next < r->nthreads; next++, head++) {
        _Atomic uint32_t *cell = &r->ring[head % r->pool];
        uint32_t v;
        while (!(v = atomic_load(cell)))
            syscall(SYS_futex, cell, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
        atomic_store(cell, 0);
        uint32_t slot = v - 1;
        if (r->joinable[slot]) slot_end(r, slot); /* slot 0 was the main thread's: none */
        int e = start_on(r, slot, &r->args[next]);
        if (e) {
            char line[4400];
            int n = snprintf(line, sizeof line,
                             "mallet-worker: %s: cannot start replay thread %u: %s\n",
                             r->streams[0].rf->path, next, strerror(e));
            if (write(2, line, (size_t)n) < 0) _exit(1);
            _exit(1);
        }
        atomic_store(&r->started, next + 1);
    }
    atomic_store(&r->launcher_done, 1);
    syscall(SYS_futex, &r->launcher_done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    return NULL;
}

/* Cycles per ns, measured over 2 ms (once per run, before the timed part). */
static double cycles_per_ns(void)
{
    uint64_t n0 = mallet_now_ns(), c0 = mallet_cycles(), n1, c1;
    do {
        n1 = mallet_now_ns();
        c1 = mallet_cycles();
    } while (n1 - n0 < 2000000);
    return (double)(c1 - c0) / (double)(n1 - n0);
}

/* Percentiles of a histogram of cycles, in ns (a bucket's upper bound). */
static void summarize(const uint64_t *h, uint64_t max_cycles, double cpn, mallet_latency_t *out)
{
    uint64_t total = 0;
    for (unsigned b = 0; b < MALLET_LAT_BUCKETS; b++) total += h[b];
    memset(out, 0, sizeof *out);
    out->samples = total;
    if (!total) return;
    const double q[4] = {0.5, 0.9, 0.99, 0.999};
    uint64_t *dst[4] = {&out->p50_ns, &out->p90_ns, &out->p99_ns, &out->p999_ns};
    for (int k = 0; k < 4; k++) {
        uint64_t want = (uint64_t)((double)total * q[k] + 0.999999), seen = 0;
        unsigned b = 0;
        for (; b < MALLET_LAT_BUCKETS; b++)
            if ((seen += h[b]) >= want) break;
        uint64_t c = lat_bucket_max(b < MALLET_LAT_BUCKETS ? b : MALLET_LAT_BUCKETS - 1);
        if (c > max_cycles) c = max_cycles;
        *dst[k] = (uint64_t)((double)c / cpn);
    }
    out->max_ns = (uint64_t)((double)max_cycles / cpn);
}

static uint64_t tv_ns(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
}

/* Reads every thread's ops into anonymous memory before the timed part, checking each op: whole
 * while they fit the budget, else (streamed) through a one-chunk buffer that then holds the first
 * chunk. *calls: the allocation-API calls in all streams. */
static int load_streams(const mallet_rfile_t *rf, stream_t *st, uint64_t *calls, char *err,
                        size_t errlen)
{
    uint64_t budget = OPS_MEM_DEFAULT;
    const char *env = getenv("MALLET_REPLAY_OPS_MEM");
    if (env && *env) budget = strtoull(env, NULL, 0);
    int all_whole = 1;
    *calls = 0;
    for (uint32_t t = 0; t < rf->nthreads; t++) {
        const mallet_rfile_thread_t *th = &rf->threads[t];
        uint64_t bytes = th->nops * sizeof(mallet_rop_t) + th->nexts * sizeof(mallet_rop_ext_t);
        int whole = bytes <= budget;
        stream_t *s = &st[t];
        s->rf = rf;
        s->thread = t;
        s->nops = th->nops;
        size_t chunk = (size_t)rf->max_chunk_ops * (sizeof(mallet_rop_t) + sizeof(mallet_rop_ext_t));
        s->buf_len = whole ? (size_t)bytes : chunk;
        if (!(s->buf = mallet_map(s->buf_len)))
            return mallet_errorf(err, errlen, "out of memory for the replay's ops");
        if (whole) budget -= bytes;
        all_whole &= whole;
        /* whole, the extensions follow all ops; streamed, the chunk's */
        mallet_rop_ext_t *xs = whole ? (mallet_rop_ext_t *)(s->buf + th->nops) : NULL;
        for (uint64_t k = 0; k < th->nchunks; k++) {
            const mallet_rfile_chunk_t *c = &th->chunks[k];
            int64_t n = whole ? mallet_rfile_read_chunk(rf, t, k, s->buf + c->first, xs + c->xfirst,
                                                        err, errlen)
                              : mallet_rfile_read_chunk(rf, t, k, s->buf,
                                                        chunk_exts(s->buf, c), err,
                                                        errlen);
            if (n < 0) return -1;
            *calls += (uint64_t)n;
        }
        s->ops = s->buf;
        s->x = xs; /* streamed: set by refill */
        s->next_chunk = whole ? th->nchunks : 0;
        s->end = whole ? th->nops : 0;
        if (!whole && th->nchunks) refill(s, 0);
    }
    if (*calls != rf->info.ops)
        return mallet_errorf(err, errlen, "%s: corrupt replay file: %" PRIu64 " calls, not %" PRIu64,
                             rf->path, *calls, rf->info.ops);
    /* A wait's op is checked for its AWAITED flag only when every stream is in memory; streamed,
     * that would take a read per wait, and a missed flag only delays the waiter to the end of
     * the other thread's stream (worker()), it never hangs it. */
    if (all_whole && rf->nthreads) {
        size_t len = rf->nthreads * (sizeof(mallet_rop_t *) + sizeof(mallet_rop_ext_t *));
        const mallet_rop_t **ops = mallet_map(len);
        if (!ops) return mallet_errorf(err, errlen, "out of memory for the replay's ops");
        const mallet_rop_ext_t **exts = (const mallet_rop_ext_t **)(ops + rf->nthreads);
        for (uint32_t t = 0; t < rf->nthreads; t++) ops[t] = st[t].buf, exts[t] = st[t].x;
        int rc = mallet_rfile_check_waits(rf, ops, exts, err, errlen);
        mallet_unmap(ops, len);
        if (rc) return -1;
    }
    return 0;
}

static void unload_streams(stream_t *st, uint32_t n)
{
    for (uint32_t t = 0; st && t < n; t++)
        mallet_unmap(st[t].buf, st[t].buf_len);
    mallet_unmap(st, n * sizeof *st);
}

/* The harness's own memory is written before the timed part, so that the resident set it adds
 * is part of the baseline and the growth measured during the replay is the allocator's. */
static void *map_touched(size_t len)
{
    void *p = mallet_map(len);
    if (p) memset(p, 0, len ? len : 1);
    return p;
}

int mallet_replay_run(const char *path, int touch_mode, int count_syscalls,
                      mallet_replay_result_t *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    mallet_rfile_t rf;
    if (mallet_rfile_open(path, &rf, err, errlen)) return -1;
    const mallet_rfile_t *h = &rf;
    int rc = -1;
    run_t *r = NULL;
    uint64_t total = 0;
    stream_t *streams = mallet_map(((size_t)h->nthreads ? h->nthreads : 1) * sizeof(stream_t));
    if (!streams) {
        mallet_errorf(err, errlen, "out of memory for the replay's tables");
        goto out;
    }
    if (load_streams(&rf, streams, &total, err, errlen)) goto out;
    const uint32_t pool = h->info.concurrency;
    size_t rsize = sizeof(run_t) + h->nthreads * (sizeof(worker_arg_t) + sizeof(uint64_t)) +
                   pool * (sizeof(pthread_t) + 3 * sizeof(uint32_t) + 1);
    r = map_touched(rsize);
    void **slots = map_touched((size_t)h->nslots * sizeof(void *));
    progress_t *progress = map_touched(((size_t)h->nthreads ? h->nthreads : 1) * sizeof(progress_t));
    size_t nt = h->nthreads ? h->nthreads : 1;
    void *hist = map_touched(nt * sizeof(uint64_t[MALLET_OP_COUNT_][MALLET_LAT_BUCKETS]));
    void *hmax = map_touched(nt * sizeof(uint64_t[MALLET_OP_COUNT_]));
    if (!r || !slots || !progress || !hist || !hmax) {
        mallet_errorf(err, errlen, "out of memory for the replay's tables");
        goto out;
    }
    worker_arg_t *args = (worker_arg_t *)(r + 1);
    r->args = args;
    r->stuck_seen = (uint64_t *)(args + h->nthreads);
    r->slot_tid = (pthread_t *)(r->stuck_seen + h->nthreads);
    r->release = (_Atomic uint32_t *)(r->slot_tid + pool);
    r->ring = r->release + pool;
    r->slot_thread = (uint32_t *)(r->ring + pool);
    r->joinable = (uint8_t *)(r->slot_thread + pool);
    r->pool = pool;
    r->page = mallet_page_size();
    r->stack_len = stack_len(r->page);
    r->stacks = mallet_map_stacks(pool ? pool : 1, r->stack_len);
    r->streams = streams;
    r->nthreads = h->nthreads;
    r->slots = slots;
    r->progress = progress;
    r->touch = touch_mode;
    r->latency_every = MALLET_LATENCY_EVERY_MIN;
    while (r->latency_every < MALLET_LATENCY_EVERY_MAX &&
           total / r->latency_every > MALLET_LATENCY_SAMPLES)
        r->latency_every *= 2;
    r->hist = hist;
    r->hmax = hmax;
    double cpn = cycles_per_ns();
    if (!r->stacks) {
        mallet_errorf(err, errlen, "out of address space for %u thread stacks of %zu KiB", pool,
                      r->stack_len >> 10);
        goto out;
    }
    /* the top of each stack, where a thread starts, is written before the timed part (the
     * harness's memory, like its tables) */
    size_t touched = r->stack_len < STACK_TOUCHED ? r->stack_len : STACK_TOUCHED;
    for (uint32_t i = 0; i < pool; i++)
        memset(r->stacks + (size_t)(i + 1) * (r->stack_len + r->page) - touched, 0, touched);
    for (uint32_t i = 0; i < h->nthreads; i++) {
        args[i].run = r;
        args[i].index = i;
    }
    mallet_rss_sampler_t *sampler = mallet_rss_sampler_start();
    if (!sampler) {
        mallet_errorf(err, errlen, "cannot start the RSS sampler");
        goto out;
    }
    if (count_syscalls) {
        /* before the replay threads exist: they inherit the filter, the sampler does not */
        int e = mallet_syscount_start();
        if (e) {
            mallet_errorf(err, errlen, "cannot count syscalls: seccomp user notifications: %s",
                          strerror(-e));
            goto out;
        }
    }
    /* The first thread runs on this, the process's main thread: allocators treat the main
     * thread apart (glibc's main arena grows with brk, other threads' arenas with mmap), and
     * thread 0 is the program's main thread (prepare.c). */
    uint32_t started = 1;
    pthread_t launcher_tid;
    int e = 0;
    for (; !e && started < pool; started++)
        e = start_on(r, started, &args[started]);
    if (!e && pool < h->nthreads) e = pthread_create(&launcher_tid, NULL, launcher, r);
    if (e) {
        atomic_store(&r->abandon, 1);
        go(r); /* the started ones end at once */
        release_all(r);
        mallet_errorf(err, errlen,
                      "cannot start %u replay threads (%u at once, stacks of %zu KiB): %s",
                      h->nthreads, pool, r->stack_len >> 10, strerror(e));
        goto out;
    }
    atomic_store(&r->started, pool);
    if (pool < h->nthreads)
        while (!atomic_load(&r->launcher_ready))
            syscall(SYS_futex, &r->launcher_ready, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    struct rusage ru0, ru1;
    int peak_reset = mallet_rss_peak_reset() == 0;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = mallet_now_ns();
    res->baseline_rss_bytes = mallet_rss_sampler_begin(sampler, t0);
    mallet_syscount_window(1);
    /* marks for `strace -f` (tests/integration/test_syscalls.sh): a write that fails at once */
    if (count_syscalls && write(-1, "mallet: counting starts", 23)) {
    }
    go(r);
    if (h->nthreads) {
        args[0].slot = 0;
        replay_thread(&args[0]);
        thread_done(r, &args[0]); /* this thread cannot end: it goes on to the end of the run */
    }
    uint32_t fin;
    while ((fin = atomic_load(&r->finished)) != h->nthreads)
        syscall(SYS_futex, &r->finished, FUTEX_WAIT_PRIVATE, fin, NULL, NULL, 0);
    /* The threads that end by themselves finish ending inside the timed part, as in the program,
     * once the launcher is done with the slots (no slot joined twice). The launcher's own end, its
     * allocator's thread teardown, is the harness's: after the timed part. */
    if (pool < h->nthreads)
        while (!atomic_load(&r->launcher_done))
            syscall(SYS_futex, &r->launcher_done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    for (uint32_t slot = 1; slot < pool; slot++)
        if (r->joinable[slot] && (h->threads[r->slot_thread[slot]].flags & MALLET_RFILE_T_EXITS)) {
            pthread_join(r->slot_tid[slot], NULL);
            r->joinable[slot] = 0;
        }
    uint64_t t1 = mallet_now_ns();
    mallet_syscount_window(0);
    if (count_syscalls && write(-1, "mallet: counting ends", 21)) {
    }
    getrusage(RUSAGE_SELF, &ru1);
    uint64_t hwm = 0;
    if (!peak_reset || mallet_rss_peak(&hwm)) hwm = 0;
    const mallet_rss_timeline_t *tl = mallet_rss_sampler_end(sampler);
    if (pool < h->nthreads) pthread_join(launcher_tid, NULL);
    release_all(r);
    /* the kernel's high-water mark catches peaks between samples; without it, the samples */
    for (uint32_t i = 0; i < tl->n; i++)
        if (tl->bytes[i] > hwm) hwm = tl->bytes[i];
    res->process_peak_rss_bytes = hwm;
    res->peak_rss_bytes = hwm > res->baseline_rss_bytes ? hwm - res->baseline_rss_bytes : 0;
    res->timeline = tl;
    if (count_syscalls) {
        res->syscalls_counted = 1;
        mallet_syscount_read(res->syscalls);
    }
    res->ops = total;
    res->latency_every = r->latency_every;
    res->failed = atomic_load(&r->failed);
    res->wall_ns = t1 - t0;
    res->user_ns = tv_ns(ru1.ru_utime) - tv_ns(ru0.ru_utime);
    res->sys_ns = tv_ns(ru1.ru_stime) - tv_ns(ru0.ru_stime);
    res->minor_faults = (uint64_t)(ru1.ru_minflt - ru0.ru_minflt);
    res->major_faults = (uint64_t)(ru1.ru_majflt - ru0.ru_majflt);
    /* merge the threads' histograms (into thread 0's), per kind and over all kinds */
    uint64_t all[MALLET_LAT_BUCKETS] = {0}, all_max = 0;
    for (unsigned k = 0; k < MALLET_OP_COUNT_; k++) {
        uint64_t *h0 = r->hist[0][k], m = r->hmax[0][k];
        for (uint32_t t = 1; t < h->nthreads; t++) {
            for (unsigned b = 0; b < MALLET_LAT_BUCKETS; b++) h0[b] += r->hist[t][k][b];
            if (r->hmax[t][k] > m) m = r->hmax[t][k];
        }
        for (unsigned b = 0; b < MALLET_LAT_BUCKETS; b++) all[b] += h0[b];
        if (m > all_max) all_max = m;
        summarize(h0, m, cpn, &res->latency_by_op[k]);
    }
    summarize(all, all_max, cpn, &res->latency);
    rc = 0;
out:
    /* the blocks still live belong to the process, which ends right after */
    unload_streams(streams, h->nthreads);
    mallet_rfile_close(&rf);
    return rc;
}
