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

#define SAVE_MAGIC "MALLETRP"
#define SAVE_VERSION 5u

typedef struct save_header {
    char magic[8];
    uint32_t version, op_size; /* op_size: sizeof(mallet_rop_t) of the writer */
    uint32_t nthreads, nslots;
    uint64_t ops, skipped, failed_allocs;
    uint64_t trace_size, trace_mtime_ns;
    uint64_t peak_live_bytes;
} save_header_t;

typedef struct save_thread {
    uint32_t tid, pad;
    uint64_t nops, offset; /* offset of its ops from the file start */
} save_thread_t;

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int mallet_prepared_save(const mallet_prepared_t *p, const char *path, uint64_t trace_size,
                         uint64_t trace_mtime_ns)
{
    /* written aside and renamed: a reader never sees half a file, two replays never mix */
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    save_header_t h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, SAVE_MAGIC, 8);
    h.version = SAVE_VERSION;
    h.op_size = sizeof(mallet_rop_t);
    h.nthreads = p->nthreads;
    h.nslots = p->nslots;
    h.ops = p->ops;
    h.skipped = p->skipped;
    h.failed_allocs = p->failed_allocs;
    h.trace_size = trace_size;
    h.trace_mtime_ns = trace_mtime_ns;
    h.peak_live_bytes = p->peak_live_bytes;
    uint64_t off = sizeof h + (uint64_t)p->nthreads * sizeof(save_thread_t);
    int bad = write_all(fd, &h, sizeof h);
    for (uint32_t i = 0; !bad && i < p->nthreads; i++) {
        save_thread_t t = {p->threads[i].tid, 0, p->threads[i].nops, off};
        off += p->threads[i].nops * sizeof(mallet_rop_t);
        bad = write_all(fd, &t, sizeof t);
    }
    for (uint32_t i = 0; !bad && i < p->nthreads; i++)
        bad = write_all(fd, p->threads[i].ops, p->threads[i].nops * sizeof(mallet_rop_t));
    int e = bad ? (errno ? errno : EIO) : 0;
    if (close(fd) && !e) e = errno;
    if (!e && rename(tmp, path)) e = errno;
    if (e) unlink(tmp);
    return e ? -e : 0;
}

int mallet_prepared_peek(const char *path, mallet_prepared_info_t *info)
{
    save_header_t h;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, &h, sizeof h);
    close(fd);
    if (n != (ssize_t)sizeof h || memcmp(h.magic, SAVE_MAGIC, 8) || h.version != SAVE_VERSION ||
        h.op_size != sizeof(mallet_rop_t))
        return -1;
    info->trace_size = h.trace_size;
    info->trace_mtime_ns = h.trace_mtime_ns;
    info->ops = h.ops;
    info->skipped = h.skipped;
    info->failed_allocs = h.failed_allocs;
    info->nthreads = h.nthreads;
    info->nslots = h.nslots;
    info->peak_live_bytes = h.peak_live_bytes;
    return 0;
}

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct progress {
    _Alignas(64) _Atomic uint32_t done; /* ops finished by this thread */
    _Atomic uint32_t waiters;
} progress_t;

typedef struct run {
    const mallet_rop_t **ops;
    const save_thread_t *threads;
    uint32_t nthreads;
    void **slots;
    progress_t *progress;
    int touch;
    _Atomic int go;
    /* the end of the timed part: threads count themselves finished, then wait to be released so
     * that their exit (glibc gives a dead thread's stack back with madvise) stays out of it */
    _Atomic uint32_t finished, released;
    _Atomic uint64_t failed;
    size_t page;
    /* per thread, per op kind: sampled latencies in cycles, log-linear buckets; and the max */
    uint64_t (*hist)[MALLET_OP_COUNT_][MALLET_LAT_BUCKETS];
    uint64_t (*hmax)[MALLET_OP_COUNT_];
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
    uint32_t index;
} worker_arg_t;

static void *map(size_t len)
{
    void *p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void wait_for(progress_t *pr, uint64_t op)
{
    uint32_t need = (uint32_t)(op + 1);
    for (int spin = 0; spin < 2000; spin++) {
        if (atomic_load_explicit(&pr->done, memory_order_acquire) >= need) return;
#if defined(__x86_64__) || defined(__i386__)
        __asm__ __volatile__("pause");
#endif
    }
    atomic_fetch_add(&pr->waiters, 1);
    for (;;) {
        uint32_t seen = atomic_load_explicit(&pr->done, memory_order_acquire);
        if (seen >= need) break;
        syscall(SYS_futex, &pr->done, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
    }
    atomic_fetch_sub(&pr->waiters, 1);
}

static void touch(const run_t *r, char *p, size_t n)
{
    if (!p || !n) return;
    switch (r->touch) {
    case MALLET_TOUCH_FIRST: memset(p, 1, n < 8 ? n : 8); break;
    case MALLET_TOUCH_PAGES:
        for (size_t i = 0; i < n; i += r->page) p[i] = 1;
        p[n - 1] = 1;
        break;
    case MALLET_TOUCH_ALL: memset(p, 1, n); break;
    default: break;
    }
}

/* Replays thread a->index's ops, then counts itself finished. */
static void replay_thread(const worker_arg_t *a)
{
    run_t *r = a->run;
    const mallet_rop_t *ops = r->ops[a->index];
    uint64_t n = r->threads[a->index].nops;
    progress_t *me = &r->progress[a->index];
    while (!atomic_load_explicit(&r->go, memory_order_acquire)) {
#if defined(__x86_64__) || defined(__i386__)
        __asm__ __volatile__("pause");
#endif
    }
    uint64_t failed = 0;
    uint64_t(*hist)[MALLET_LAT_BUCKETS] = r->hist[a->index];
    uint64_t *hmax = r->hmax[a->index];
    /* the ops timed are a random gap apart (1 .. 2 x MALLET_LATENCY_EVERY - 1), so that a
     * periodic pattern (malloc, free, malloc, free...) cannot put every sample on one kind */
    uint32_t rnd = 0x9e3779b9u * (a->index + 1u) | 1u;
    uint64_t next_timed = 0;
    for (uint64_t i = 0; i < n; i++) {
        const mallet_rop_t *o = &ops[i];
        if (o->dep_thread != MALLET_NO_DEP) wait_for(&r->progress[o->dep_thread], o->dep_op);
        void *p = NULL, *old = o->old_slot != MALLET_NO_SLOT ? r->slots[o->old_slot] : NULL;
        size_t size = (size_t)o->size;
        const int timed = i == next_timed;
        uint64_t c0 = timed ? mallet_cycles() : 0;
        switch (o->kind) {
        case MALLET_OP_MALLOC: p = malloc(size); break;
        case MALLET_OP_CALLOC: p = calloc((size_t)o->arg, size); size *= (size_t)o->arg; break;
        case MALLET_OP_REALLOC: p = realloc(old, size); break;
        case MALLET_OP_REALLOCARRAY:
            /* as realloc: glibc's reallocarray calls its own realloc internally, so on an
             * allocator that does not export reallocarray (jemalloc 5) it would free a foreign
             * block. The overflow check is the only difference. */
            p = o->arg && size > SIZE_MAX / (size_t)o->arg ? NULL
                                                           : realloc(old, size * (size_t)o->arg);
            size *= (size_t)o->arg;
            break;
        case MALLET_OP_FREE: free(o->slot != MALLET_NO_SLOT ? r->slots[o->slot] : NULL); break;
        case MALLET_OP_POSIX_MEMALIGN:
            if (posix_memalign(&p, (size_t)o->arg, size)) p = NULL;
            break;
        case MALLET_OP_ALIGNED_ALLOC: p = aligned_alloc((size_t)o->arg, size); break;
        case MALLET_OP_MEMALIGN: p = memalign((size_t)o->arg, size); break;
        case MALLET_OP_VALLOC: p = valloc(size); break;
        case MALLET_OP_PVALLOC: /* page-rounded valloc: not every allocator exports pvalloc */
            size = (size + r->page - 1) & ~(r->page - 1);
            if (posix_memalign(&p, r->page, size ? size : r->page)) p = NULL;
            break;
        default: break;
        }
        if (timed && o->kind < MALLET_OP_COUNT_) {
            uint64_t d = mallet_cycles() - c0;
            hist[o->kind][lat_bucket(d)]++;
            if (d > hmax[o->kind]) hmax[o->kind] = d;
            rnd ^= rnd << 13, rnd ^= rnd >> 17, rnd ^= rnd << 5;
            next_timed = i + 1 + rnd % (2 * MALLET_LATENCY_EVERY - 1);
        }
        if (o->kind != MALLET_OP_FREE && o->slot != MALLET_NO_SLOT) {
            if (!p) failed++;
            r->slots[o->slot] = p;
            touch(r, p, size); /* a realloc'd block is written whole, like a new one */
        } else if (p) {
            free(p); /* realloc(p, 0) that returned a block where the recorded one did not */
        }
        /* only ops another thread waits for are published: the rest cost nothing extra */
        if (o->flags & MALLET_ROP_AWAITED) {
            atomic_store_explicit(&me->done, (uint32_t)(i + 1), memory_order_release);
            if (atomic_load_explicit(&me->waiters, memory_order_relaxed))
                syscall(SYS_futex, &me->done, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
        }
    }
    atomic_fetch_add(&r->failed, failed);
    if (atomic_fetch_add(&r->finished, 1) + 1 == r->nthreads)
        syscall(SYS_futex, &r->finished, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *worker(void *arg)
{
    const worker_arg_t *a = arg;
    run_t *r = a->run;
    replay_thread(a);
    while (!atomic_load(&r->released))
        syscall(SYS_futex, &r->released, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

static uint64_t ns_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Cycles per ns, measured over 2 ms (once per run, before the timed part). */
static double cycles_per_ns(void)
{
    uint64_t n0 = ns_now(), c0 = mallet_cycles(), n1, c1;
    do {
        n1 = ns_now();
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

/* The harness's own memory is written before the timed part, so that the resident set it adds
 * is part of the baseline and the growth measured during the replay is the allocator's. */
static void *map_touched(size_t len)
{
    void *p = map(len);
    if (p) memset(p, 0, len ? len : 1);
    return p;
}

int mallet_replay_run(const char *path, int touch_mode, int count_syscalls,
                      mallet_replay_result_t *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mallet_errorf(err, errlen, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || (size_t)sb.st_size < sizeof(save_header_t)) {
        close(fd);
        return mallet_errorf(err, errlen, "%s: not a prepared replay", path);
    }
    size_t size = (size_t)sb.st_size;
    const uint8_t *base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED) return mallet_errorf(err, errlen, "%s: %s", path, strerror(errno));
    const save_header_t *h = (const save_header_t *)base;
    int rc = -1;
    run_t *r = NULL;
    if (memcmp(h->magic, SAVE_MAGIC, 8) || h->version != SAVE_VERSION ||
        h->op_size != sizeof(mallet_rop_t) ||
        (uint64_t)h->nthreads * sizeof(save_thread_t) > size - sizeof *h) {
        mallet_errorf(err, errlen, "%s: not a prepared replay of this mallet", path);
        goto out;
    }
    const save_thread_t *th = (const save_thread_t *)(h + 1);
    uint64_t total = 0;
    for (uint32_t i = 0; i < h->nthreads; i++) {
        if (th[i].offset > size || th[i].nops > (size - th[i].offset) / sizeof(mallet_rop_t) ||
            th[i].nops > UINT32_MAX) {
            mallet_errorf(err, errlen, "%s: thread %u's ops run past the file", path, i);
            goto out;
        }
        total += th[i].nops;
    }
    /* every slot and dependency an op names must exist, or a corrupt file could crash us */
    for (uint32_t i = 0; i < h->nthreads; i++) {
        const mallet_rop_t *o = (const mallet_rop_t *)(base + th[i].offset);
        for (uint64_t k = 0; k < th[i].nops; k++)
            if ((o[k].slot != MALLET_NO_SLOT && o[k].slot >= h->nslots) ||
                (o[k].old_slot != MALLET_NO_SLOT && o[k].old_slot >= h->nslots) ||
                (o[k].dep_thread != MALLET_NO_DEP &&
                 (o[k].dep_thread >= h->nthreads || o[k].dep_op >= th[o[k].dep_thread].nops ||
                  (o[k].dep_thread == i && o[k].dep_op >= k) ||
                  /* a wait on an op that will not be published would never end */
                  !(((const mallet_rop_t *)(base + th[o[k].dep_thread].offset))[o[k].dep_op]
                        .flags & MALLET_ROP_AWAITED)))) {
                mallet_errorf(err, errlen, "%s: thread %u op %" PRIu64 " names a slot or op that does not exist",
                     path, i, k);
                goto out;
            }
    }
    size_t rsize = sizeof(run_t) + h->nthreads * (sizeof(const mallet_rop_t *) + sizeof(worker_arg_t) +
                                                  sizeof(pthread_t));
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
    r->ops = (const mallet_rop_t **)(r + 1);
    worker_arg_t *args = (worker_arg_t *)(r->ops + h->nthreads);
    pthread_t *tids = (pthread_t *)(args + h->nthreads);
    r->threads = th;
    r->nthreads = h->nthreads;
    r->slots = slots;
    r->progress = progress;
    r->touch = touch_mode;
    r->hist = hist;
    r->hmax = hmax;
    double cpn = cycles_per_ns();
    r->page = (size_t)sysconf(_SC_PAGESIZE);
    for (uint32_t i = 0; i < h->nthreads; i++) {
        r->ops[i] = (const mallet_rop_t *)(base + th[i].offset);
        args[i].run = r;
        args[i].index = i;
    }
    /* the ops are read once now, so that the page cache faults in before the timed part */
    for (size_t off = 0; off < size; off += r->page) (void)*(volatile const uint8_t *)(base + off);
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
     * thread apart (glibc's main arena grows with brk, other threads' arenas with mmap), and the
     * first traced thread is the program's main thread (prepare.c puts it first). */
    uint32_t started = 1;
    for (; started < h->nthreads; started++)
        if (pthread_create(&tids[started], NULL, worker, &args[started])) break;
    if (started < h->nthreads) {
        atomic_store(&r->released, 1);
        atomic_store(&r->finished, 1);
        atomic_store(&r->go, 1); /* let the started ones finish, then fail */
        for (uint32_t i = 1; i < started; i++) pthread_join(tids[i], NULL);
        mallet_errorf(err, errlen, "cannot start %u replay threads", h->nthreads);
        goto out;
    }
    struct rusage ru0, ru1;
    int peak_reset = mallet_rss_peak_reset() == 0;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = ns_now();
    res->baseline_rss_bytes = mallet_rss_sampler_begin(sampler, t0);
    mallet_syscount_window(1);
    /* marks for `strace -f` (tests/integration/test_syscalls.sh): a write that fails at once */
    if (count_syscalls && write(-1, "mallet: counting starts", 23)) {
    }
    atomic_store_explicit(&r->go, 1, memory_order_release);
    if (h->nthreads) replay_thread(&args[0]);
    uint32_t fin;
    while ((fin = atomic_load(&r->finished)) != h->nthreads)
        syscall(SYS_futex, &r->finished, FUTEX_WAIT_PRIVATE, fin, NULL, NULL, 0);
    uint64_t t1 = ns_now();
    mallet_syscount_window(0);
    if (count_syscalls && write(-1, "mallet: counting ends", 21)) {
    }
    getrusage(RUSAGE_SELF, &ru1);
    uint64_t hwm = 0;
    if (!peak_reset || mallet_rss_peak(&hwm)) hwm = 0;
    const mallet_rss_timeline_t *tl = mallet_rss_sampler_end(sampler);
    atomic_store(&r->released, 1);
    syscall(SYS_futex, &r->released, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    for (uint32_t i = 1; i < started; i++) pthread_join(tids[i], NULL);
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
    munmap((void *)base, size);
    return rc;
}
