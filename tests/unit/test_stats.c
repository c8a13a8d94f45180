/* Unit test of analyze/stats.c: traces with known answers are written with the trace writer,
 * read back, and every number of the stats and check analyses is compared with the hand-computed
 * one. Times are not predictable (the reader maps cycles to ns with the clock pairs the writer
 * stamps), so expected times are taken from a separate read of the same trace.
 *
 * The traces go to a private directory under $TMPDIR (or /tmp), removed at the end unless
 * MALLET_TEST_KEEP is set (then its path is printed, to look at them with mallet dump). */
#define _GNU_SOURCE
#include "analyze/stats.h"
#include "check.h"
#include "platform/platform.h"
#include "trace/writer.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[4096];
static uint64_t c0; /* event timestamps are c0 + step * 1000, near the real cycle counter */

static uint64_t at(unsigned step)
{
    return c0 + (uint64_t)step * 1000;
}

static char *trace_path(const char *name)
{
    static char buf[4][4200];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static const char *cmdline = "prog\0--flag\0"; /* what wopen records as argv */
static size_t cmdline_len = 12;
static uint64_t start_ns; /* what wopen records as the recorder's start (0: unknown) */

static mallet_writer_t *wopen(const char *path, int64_t pid, int64_t ppid, int forked, int level)
{
    mallet_meta_t m = {.pid = (uint64_t)pid, .ppid = (uint64_t)ppid, .forked = forked};
    m.start_ns = start_ns;
    m.cmdline = cmdline;
    m.cmdline_len = cmdline_len;
    char err[256];
    mallet_writer_t *w = mallet_writer_open(path, &m, level, err, sizeof err);
    if (!w) fprintf(stderr, "writer: %s\n", err);
    return w;
}

static void put(mallet_writer_t *w, mallet_event_t ev)
{
    CHECK(mallet_writer_event(w, &ev) == 0);
}

/* Event constructors, one per call kind: thread t_, time step, callsite derived from the step. */
#define MALLOC(t_, step, sz, p)                                                                    \
    ((mallet_event_t){.op = MALLET_OP_MALLOC,                                                      \
                      .tid = t_,                                                                   \
                      .cycles = at(step),                                                          \
                      .size = sz,                                                                  \
                      .ptr = p,                                                                    \
                      .callsite = 0x1000 + step})
#define FREE(t_, step, p)                                                                          \
    ((mallet_event_t){                                                                             \
        .op = MALLET_OP_FREE, .tid = t_, .cycles = at(step), .ptr = p, .callsite = 0x2000 + step})
#define REALLOC(t_, step, old, sz, p)                                                              \
    ((mallet_event_t){.op = MALLET_OP_REALLOC,                                                     \
                      .tid = t_,                                                                   \
                      .cycles = at(step),                                                          \
                      .free_cycles = at(step),                                                     \
                      .old_ptr = old,                                                              \
                      .size = sz,                                                                  \
                      .ptr = p,                                                                    \
                      .failed = !(p) && (sz),                                                      \
                      .callsite = 0x3000 + step})
#define ALIGNED(op_, t_, step, al, sz, p)                                                          \
    ((mallet_event_t){.op = op_,                                                                   \
                      .tid = t_,                                                                   \
                      .cycles = at(step),                                                          \
                      .align = al,                                                                 \
                      .size = sz,                                                                  \
                      .ptr = p,                                                                    \
                      .failed = !(p),                                                              \
                      .callsite = 0x4000 + step})

static mallet_event_t site(mallet_event_t e, uint64_t callsite)
{
    e.callsite = callsite;
    return e;
}

static mallet_reader_t *ropen(const char *const *paths, unsigned n)
{
    char err[512];
    mallet_reader_t *r = mallet_reader_open(paths, n, err, sizeof err);
    if (!r) fprintf(stderr, "reader: %s\n", err);
    CHECK(r != NULL);
    return r;
}

/* time_ns of the event stamped `cycles`, and of the first event, from a separate read. */
static uint64_t time_of(const char *const *paths, unsigned n, uint64_t cycles, uint64_t *first)
{
    mallet_reader_t *r = ropen(paths, n);
    mallet_rec_t rec;
    uint64_t t = UINT64_MAX;
    *first = UINT64_MAX;
    while (r && mallet_reader_next(r, &rec) > 0) {
        if (*first == UINT64_MAX) *first = rec.time_ns;
        if (rec.ev.cycles == cycles) t = rec.time_ns;
    }
    mallet_reader_close(r);
    return t;
}

static uint64_t rel(const char *const *paths, unsigned n, unsigned step)
{
    uint64_t first, t = time_of(paths, n, at(step), &first);
    return t - first;
}

static int stats_of(const char *const *paths, unsigned n, mallet_stats_t *st)
{
    mallet_reader_t *r = ropen(paths, n);
    if (!r) return -1;
    char err[512];
    int rc = mallet_stats_compute(r, st, err, sizeof err);
    if (rc) fprintf(stderr, "stats: %s\n", err);
    mallet_reader_close(r);
    return rc;
}

static int check_of(const char *const *paths, unsigned n, mallet_check_t *c)
{
    mallet_reader_t *r = ropen(paths, n);
    if (!r) return -1;
    char err[512];
    int rc = mallet_check_compute(r, c, err, sizeof err);
    if (rc) fprintf(stderr, "check: %s\n", err);
    mallet_reader_close(r);
    return rc;
}

/* One thread going through every call kind and every realloc case. */
static const char *write_single(void)
{
    const char *path = trace_path("single.mtrace");
    mallet_writer_t *w = wopen(path, 42, 1, 0, 0);
    if (!w) return NULL;
    const uint32_t t = 10;
    put(w, MALLOC(t, 1, 100, 0x10000)); /* A */
    put(w, (mallet_event_t){.op = MALLET_OP_CALLOC,
                            .tid = t,
                            .cycles = at(2),
                            .nmemb = 3,
                            .size = 8,
                            .ptr = 0x20000});     /* B */
    put(w, REALLOC(t, 3, 0x10000, 200, 0x30000)); /* A -> C (moves) */
    put(w, FREE(t, 4, 0x20000));                  /* B dies */
    put(w, FREE(t, 5, 0));                        /* free(NULL) */
    put(w, (mallet_event_t){.op = MALLET_OP_RSS, .tid = 99, .cycles = at(5) + 1, .size = 1000000});
    put(w, REALLOC(t, 6, 0, 50, 0x40000));                             /* realloc(NULL): D */
    put(w, REALLOC(t, 7, 0x40000, 0, 0));                              /* realloc(D, 0) frees */
    put(w, REALLOC(t, 8, 0x30000, (uint64_t)1 << 40, 0));              /* fails, C stays */
    put(w, ALIGNED(MALLET_OP_POSIX_MEMALIGN, t, 9, 64, 64, 0x50000));  /* E */
    put(w, ALIGNED(MALLET_OP_ALIGNED_ALLOC, t, 10, 64, 128, 0x60000)); /* F */
    put(w, ALIGNED(MALLET_OP_MEMALIGN, t, 11, 32, 16, 0x70000));       /* G */
    put(w, (mallet_event_t){.op = MALLET_OP_VALLOC,
                            .tid = t,
                            .cycles = at(12),
                            .size = 4096,
                            .ptr = 0x80000}); /* H */
    put(w, (mallet_event_t){.op = MALLET_OP_PVALLOC,
                            .tid = t,
                            .cycles = at(13),
                            .size = 10,
                            .ptr = 0x90000}); /* I: the peak */
    put(w, FREE(t, 14, 0x80000));             /* H dies */
    put(w, FREE(t, 15, 0x50000));             /* E dies */
    put(w, FREE(t, 16, 0x50000));             /* double free */
    put(w, FREE(t, 17, 0xdead0));             /* never allocated */
    put(w, (mallet_event_t){.op = MALLET_OP_RSS, .tid = 99, .cycles = at(17) + 1, .size = 3000000});
    put(w, MALLOC(t, 18, UINT64_MAX, 0));         /* fails */
    put(w, REALLOC(t, 19, 0x30000, 10, 0x30000)); /* shrink in place */
    put(w, (mallet_event_t){.op = MALLET_OP_REALLOCARRAY,
                            .tid = t,
                            .cycles = at(20),
                            .free_cycles = at(20),
                            .nmemb = 4,
                            .size = 8,
                            .ptr = 0xa0000}); /* J */
    put(w, (mallet_event_t){.op = MALLET_OP_POSIX_MEMALIGN,
                            .tid = t,
                            .cycles = at(21),
                            .align = 3,
                            .size = 8,
                            .ptr = 0xbad0,
                            .failed = 1,
                            .ret = 22});
    put(w, (mallet_event_t){.op = MALLET_OP_CALLOC,
                            .tid = t,
                            .cycles = at(22),
                            .nmemb = (uint64_t)1 << 40,
                            .size = (uint64_t)1 << 40,
                            .ptr = 0,
                            .failed = 1});        /* saturating, fails */
    put(w, MALLOC(t, 23, 0, 0xb0000));            /* K: size 0 */
    put(w, REALLOC(t, 24, 0xcafe0, 10, 0xc0000)); /* unknown old; L */
    put(w, MALLOC(t, 25, 8, 0x60000));            /* F still live */
    CHECK(mallet_writer_close(w, 1) == 0);
    return path;
}

static void test_single(void)
{
    const char *path = write_single();
    if (!path) return;
    const char *paths[1] = {path};
    mallet_stats_t st;
    if (stats_of(paths, 1, &st)) return;
    CHECK_EQ(st.events, 25);
    CHECK_EQ(st.by_kind[MALLET_OP_MALLOC], 4);
    CHECK_EQ(st.by_kind[MALLET_OP_CALLOC], 2);
    CHECK_EQ(st.by_kind[MALLET_OP_REALLOC], 6);
    CHECK_EQ(st.by_kind[MALLET_OP_REALLOCARRAY], 1);
    CHECK_EQ(st.by_kind[MALLET_OP_FREE], 6);
    CHECK_EQ(st.by_kind[MALLET_OP_POSIX_MEMALIGN], 2);
    CHECK_EQ(st.by_kind[MALLET_OP_ALIGNED_ALLOC], 1);
    CHECK_EQ(st.by_kind[MALLET_OP_MEMALIGN], 1);
    CHECK_EQ(st.by_kind[MALLET_OP_VALLOC], 1);
    CHECK_EQ(st.by_kind[MALLET_OP_PVALLOC], 1);
    CHECK_EQ(st.by_kind[MALLET_OP_RSS], 0);
    CHECK_EQ(st.alloc_calls, 19);
    CHECK_EQ(st.failed_calls, 4);
    CHECK_EQ(st.free_calls, 6);
    CHECK_EQ(st.null_frees, 1);
    CHECK_EQ(st.unknown_frees, 2);
    CHECK_EQ(st.unknown_reallocs, 1);
    CHECK_EQ(st.missed_frees, 1);
    CHECK_EQ(st.inherited_frees, 0);
    CHECK_EQ(st.threads, 1); /* the RSS sampler's tid is not a thread making calls */
    CHECK_EQ(st.processes, 1);
    CHECK_EQ(st.bytes_requested, 4748);
    CHECK_EQ(st.peak_live_bytes, 4514);
    CHECK_EQ(st.peak_live_blocks, 6);
    CHECK_EQ(st.peak_live_time_ns, rel(paths, 1, 13));
    CHECK_EQ(st.leaked_bytes, 86);
    CHECK_EQ(st.leaked_blocks, 7);
    CHECK_EQ(st.blocks_freed, 6);
    CHECK_EQ(st.cross_thread_frees, 0);
    CHECK_EQ(st.rss_samples, 2);
    CHECK_EQ(st.peak_rss_bytes, 3000000);
    CHECK_EQ(st.duration_ns, rel(paths, 1, 25));
    /* Sizes born: 100 24 200 50 64 128 16 4096 10 10 32 0 10 8. */
    static const struct {
        unsigned bucket;
        uint64_t n;
    } sizes[] = {{0, 1}, {3, 1}, {4, 4}, {5, 2}, {6, 2}, {7, 2}, {8, 1}, {12, 1}};
    uint64_t total = 0;
    for (unsigned i = 0; i < MALLET_HIST_BUCKETS; i++)
        total += st.size_hist.count[i];
    CHECK_EQ(total, 14);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        CHECK_EQ(st.size_hist.count[sizes[i].bucket], sizes[i].n);
    /* Lifetimes of A(1-3) B(2-4) D(6-7) H(12-14) E(9-15) C(3-19). */
    static const unsigned life[][2] = {{1, 3}, {2, 4}, {6, 7}, {12, 14}, {9, 15}, {3, 19}};
    mallet_hist_t want = {{0}};
    for (size_t i = 0; i < 6; i++)
        want.count[mallet_hist_bucket(rel(paths, 1, life[i][1]) - rel(paths, 1, life[i][0]))]++;
    for (unsigned i = 0; i < MALLET_HIST_BUCKETS; i++)
        CHECK_EQ(st.lifetime_hist.count[i], want.count[i]);
    CHECK_EQ(st.nprocs, 1);
    if (st.nprocs == 1) {
        const mallet_proc_stats_t *p = &st.procs[0];
        CHECK_EQ(p->pid, 42);
        CHECK_EQ(p->ppid, 1);
        CHECK_STREQ(p->cmdline, "prog --flag");
        CHECK_EQ(p->events, 25);
        CHECK_EQ(p->threads, 1);
        CHECK_EQ(p->ended_cleanly, 1);
        CHECK_EQ(p->cut, 0);
        CHECK_EQ(p->peak_live_bytes, 4514);
        CHECK_EQ(p->leaked_bytes, 86);
        CHECK_EQ(p->leaked_blocks, 7);
        CHECK_EQ(p->rss_samples, 2);
    }

    /* The JSON document: required keys, values, and a stable rendering. */
    json_t *j = mallet_stats_json(&st);
    CHECK(j != NULL);
    if (j) {
        static const char *const first_keys[] = {"events", "alloc_calls", "failed_calls",
                                                 "free_calls"};
        const char *key;
        json_t *val;
        size_t k = 0;
        json_object_foreach(j, key, val)
        {
            if (k < 4) CHECK_STREQ(key, first_keys[k]);
            k++;
        }
        CHECK_EQ(json_integer_value(json_object_get(j, "events")), 25);
        CHECK_EQ(json_integer_value(json_object_get(j, "alloc_calls")), 19);
        CHECK_EQ(json_integer_value(json_object_get(j, "failed_calls")), 4);
        CHECK_EQ(json_integer_value(json_object_get(j, "free_calls")), 6);
        CHECK_EQ(json_integer_value(json_object_get(j, "threads")), 1);
        CHECK_EQ(json_integer_value(json_object_get(j, "processes")), 1);
        CHECK_EQ(json_integer_value(json_object_get(j, "peak_live_bytes")), 4514);
        CHECK_EQ(json_integer_value(json_object_get(j, "leaked_bytes")), 86);
        CHECK_EQ(json_integer_value(json_object_get(j, "leaked_blocks")), 7);
        CHECK_EQ(json_integer_value(json_object_get(j, "rss_samples")), 2);
        CHECK_EQ(json_integer_value(json_object_get(json_object_get(j, "by_kind"), "realloc")), 6);
        CHECK(json_object_get(json_object_get(j, "by_kind"), "rss") == NULL);
        json_t *h = json_object_get(j, "size_histogram");
        CHECK_EQ(json_array_size(h), 13); /* buckets 0..12, the empty ones between included */
        CHECK_EQ(json_integer_value(json_object_get(json_array_get(h, 0), "le")), 1);
        CHECK_EQ(json_integer_value(json_object_get(json_array_get(h, 12), "le")), 4096);
        CHECK_EQ(json_integer_value(json_object_get(json_array_get(h, 4), "count")), 4);
        json_t *pp = json_array_get(json_object_get(j, "per_process"), 0);
        CHECK(json_is_true(json_object_get(pp, "ended_cleanly")));
        CHECK_STREQ(json_string_value(json_object_get(pp, "cmdline")), "prog --flag");
        char *a = json_dumps(j, JSON_INDENT(2)), *b = json_dumps(j, JSON_INDENT(2));
        CHECK(a && b && !strcmp(a, b));
        free(a), free(b);
        json_decref(j);
    }
    char *text = NULL;
    size_t tlen = 0;
    FILE *mem = open_memstream(&text, &tlen);
    CHECK(mem && mallet_stats_write_text(&st, mem) == 0);
    if (mem) fclose(mem);
    CHECK(text && strstr(text, "peak live            4514 bytes"));
    CHECK(text && strstr(text, "live at end          86 bytes"));
    free(text);
    mallet_stats_free(&st);
}

/* Three threads; blocks freed and realloc'd away by threads that did not allocate them; a
 * realloc whose old address is reused by another thread while the call runs. */
static void test_threads(void)
{
    const char *path = trace_path("threads.mtrace");
    mallet_writer_t *w = wopen(path, 7, 1, 0, 3); /* zstd chunks this time */
    if (!w) return;
    put(w, MALLOC(1, 1, 10, 0x1000));          /* P1 */
    put(w, MALLOC(1, 2, 20, 0x2000));          /* P2 */
    put(w, FREE(2, 3, 0x1000));                /* cross */
    put(w, MALLOC(2, 4, 30, 0x3000));          /* P3 */
    put(w, FREE(1, 5, 0x3000));                /* cross */
    put(w, FREE(1, 6, 0x2000));                /* same thread */
    put(w, MALLOC(3, 7, 40, 0x4000));          /* P4 */
    put(w, REALLOC(2, 8, 0x4000, 80, 0x5000)); /* realloc'd away by another thread: P5 */
    put(w, FREE(3, 9, 0x5000));                /* cross: P5 was born in thread 2 */
    put(w, MALLOC(1, 10, 16, 0x6000));
    mallet_event_t re = REALLOC(1, 13, 0x6000, 100, 0x7000);
    re.free_cycles = at(11); /* gives 0x6000 up at step 11, returns at 13 */
    put(w, re);
    put(w, MALLOC(2, 12, 16, 0x6000)); /* reuses the address in between: no missed free */
    put(w, FREE(2, 14, 0x6000));
    put(w, FREE(1, 15, 0x7000));
    CHECK(mallet_writer_close(w, 1) == 0);
    const char *paths[1] = {path};
    mallet_stats_t st;
    if (stats_of(paths, 1, &st)) return;
    CHECK_EQ(st.events, 14);
    CHECK_EQ(st.by_kind[MALLET_OP_REALLOC], 2);
    CHECK_EQ(st.threads, 3);
    CHECK_EQ(st.blocks_freed, 8);
    CHECK_EQ(st.cross_thread_frees, 4);
    CHECK_EQ(st.missed_frees, 0);
    CHECK_EQ(st.unknown_frees, 0);
    CHECK_EQ(st.peak_live_bytes, 116);
    CHECK_EQ(st.peak_live_blocks, 2);
    CHECK_EQ(st.peak_live_time_ns, rel(paths, 1, 13));
    CHECK_EQ(st.leaked_blocks, 0);
    json_t *j = mallet_stats_json(&st);
    CHECK(j && json_real_value(json_object_get(j, "cross_thread_free_fraction")) == 0.5);
    json_decref(j);
    mallet_stats_free(&st);
    mallet_check_t c;
    if (check_of(paths, 1, &c)) return;
    CHECK_EQ(c.problems_total, 0);
    CHECK_EQ(c.leaked_blocks, 0);
    mallet_check_free(&c);
}

static const mallet_site_t *top_site(const mallet_stats_t *st, uint64_t callsite)
{
    for (size_t i = 0; i < st->ntop_sites; i++)
        if (st->top_sites[i].callsite == callsite) return &st->top_sites[i];
    return NULL;
}

/* heaptrack's two other views: what each site had live at the heap's peak, and temporary
 * allocations (a block freed by its thread's very next call), per thread whatever the other
 * threads do in between, a realloc counting as the call that frees. */
static void test_peak_and_temporary(void)
{
    const char *path = trace_path("sites.mtrace");
    mallet_writer_t *w = wopen(path, 9, 1, 0, 0);
    if (!w) return;
    enum { S1 = 0x51000, S2 = 0x52000, S3 = 0x53000, S4 = 0x54000 };
    put(w, site(MALLOC(1, 1, 100, 0x1000), S1));
    put(w, site(MALLOC(1, 2, 50, 0x2000), S2));
    put(w, FREE(1, 3, 0x2000)); /* temporary (S2) */
    put(w, site(MALLOC(1, 4, 100, 0x3000), S1));
    put(w, site(MALLOC(2, 5, 10, 0x4000), S3)); /* the peak: 210 bytes, S1 200 and S3 10 */
    put(w, FREE(1, 6, 0x3000));                 /* temporary (S1): thread 2's call is not its */
    put(w, site(MALLOC(2, 7, 5, 0x5000), S3));
    put(w, site(MALLOC(1, 8, 20, 0x6000), S2));
    put(w, FREE(2, 9, 0x6000)); /* another thread's block: not temporary */
    put(w, site(MALLOC(1, 10, 8, 0x7000), S2));
    put(w, site(MALLOC(1, 11, 8, 0x8000), S2));
    put(w, site(REALLOC(1, 12, 0x8000, 16, 0x9000), S4)); /* temporary (S2) */
    put(w, FREE(1, 13, 0x7000)); /* calls came between: not temporary */
    CHECK(mallet_writer_close(w, 1) == 0);
    const char *paths[1] = {path};
    mallet_stats_t st;
    if (stats_of(paths, 1, &st)) return;
    CHECK_EQ(st.peak_live_bytes, 210);
    CHECK_EQ(st.blocks_freed, 5);
    CHECK_EQ(st.temporary_allocs, 3);
    const mallet_site_t *s1 = top_site(&st, S1), *s2 = top_site(&st, S2), *s3 = top_site(&st, S3),
                        *s4 = top_site(&st, S4);
    CHECK(s1 && s2 && s3 && s4);
    if (s1 && s2 && s3 && s4) {
        CHECK_EQ(s1->calls, 2);
        CHECK_EQ(s1->peak_bytes, 200);
        CHECK_EQ(s1->peak_blocks, 2);
        CHECK_EQ(s1->temporary, 1);
        CHECK_EQ(s2->calls, 4);
        CHECK_EQ(s2->peak_bytes, 0);
        CHECK_EQ(s2->temporary, 2);
        CHECK_EQ(s3->peak_bytes, 10);
        CHECK_EQ(s3->peak_blocks, 1);
        CHECK_EQ(s3->temporary, 0);
        CHECK_EQ(s4->peak_bytes, 0);
        CHECK_EQ(s4->temporary, 0);
    }
    json_t *j = mallet_stats_json(&st);
    CHECK(j && json_integer_value(json_object_get(j, "temporary_allocs")) == 3);
    json_t *sites = j ? json_object_get(j, "top_sites") : NULL;
    uint64_t peak = 0, temporary = 0;
    for (size_t i = 0; i < json_array_size(sites); i++) {
        peak +=
            (uint64_t)json_integer_value(json_object_get(json_array_get(sites, i), "peak_bytes"));
        temporary +=
            (uint64_t)json_integer_value(json_object_get(json_array_get(sites, i), "temporary"));
    }
    CHECK_EQ(peak, 210);
    CHECK_EQ(temporary, 3);
    json_decref(j);
    mallet_stats_free(&st);
}

/* Two processes with the same addresses, one not ended cleanly, and a forked child that frees
 * a block inherited from its parent. */
static void test_processes(void)
{
    const char *pa = trace_path("proc-a.mtrace"), *pb = trace_path("proc-b.mtrace"),
               *pc = trace_path("proc-c.mtrace");
    mallet_writer_t *a = wopen(pa, 100, 1, 0, 0), *b = wopen(pb, 200, 1, 0, 0);
    cmdline = "child\0\xff\x01\xc3\xa9\xed\xa0\x80\0"; /* not UTF-8, a control byte */
    cmdline_len = 14;
    mallet_writer_t *c = wopen(pc, 300, 100, 1, 0);
    cmdline = "prog\0--flag\0";
    cmdline_len = 12;
    if (!a || !b || !c) return;
    put(a, MALLOC(1, 1, 1000, 0x7000)); /* same pointer as b's: a different block */
    put(b, MALLOC(1, 2, 500, 0x7000));
    put(b, MALLOC(1, 3, 600, 0x8000)); /* peak: 2100 */
    put(a, FREE(1, 4, 0x7000));
    put(b, FREE(1, 5, 0x7000));
    put(a, MALLOC(1, 6, 64, 0x9000)); /* inherited by c, leaked by a */
    put(c, FREE(5, 7, 0x9000));       /* fine: the block came with the fork */
    put(c, FREE(5, 8, 0x9100));       /* not: nobody allocated it */
    CHECK(mallet_writer_close(a, 1) == 0);
    CHECK(mallet_writer_close(b, 0) == 0);
    CHECK(mallet_writer_close(c, 1) == 0);
    const char *paths[3] = {pa, pb, pc};
    mallet_stats_t st;
    if (stats_of(paths, 3, &st)) return;
    CHECK_EQ(st.processes, 3);
    CHECK_EQ(st.threads, 3);
    CHECK_EQ(st.events, 8);
    CHECK_EQ(st.peak_live_bytes, 2100);
    CHECK_EQ(st.peak_live_time_ns, rel(paths, 3, 3));
    CHECK_EQ(st.leaked_bytes, 664);
    CHECK_EQ(st.leaked_blocks, 2);
    CHECK_EQ(st.inherited_frees, 1);
    CHECK_EQ(st.unknown_frees, 1);
    CHECK_EQ(st.nprocs, 3);
    if (st.nprocs == 3) {
        CHECK_EQ(st.procs[0].pid, 100);
        CHECK_EQ(st.procs[0].events, 3);
        CHECK_EQ(st.procs[0].peak_live_bytes, 1000);
        CHECK_EQ(st.procs[0].leaked_bytes, 64);
        CHECK_EQ(st.procs[0].ended_cleanly, 1);
        CHECK_EQ(st.procs[1].events, 3);
        CHECK_EQ(st.procs[1].peak_live_bytes, 1100);
        CHECK_EQ(st.procs[1].leaked_bytes, 600);
        CHECK_EQ(st.procs[1].ended_cleanly, 0);
        CHECK_EQ(st.procs[2].forked, 1);
        CHECK_EQ(st.procs[2].threads, 1);
        CHECK_STREQ(st.procs[2].cmdline, "child ??\xc3\xa9???"); /* é kept, a surrogate not */
    }
    json_t *j = mallet_stats_json(&st);
    CHECK(j != NULL);
    json_decref(j);
    char *text = NULL;
    size_t tlen = 0;
    FILE *mem = open_memstream(&text, &tlen);
    CHECK(mem && mallet_stats_write_text(&st, mem) == 0);
    if (mem) fclose(mem);
    CHECK(text && strstr(text, "did not end cleanly"));
    free(text);
    mallet_stats_free(&st);

    mallet_check_t ck;
    if (check_of(paths, 3, &ck)) return;
    CHECK_EQ(ck.inherited_frees, 1);
    CHECK_EQ(ck.unknown_frees, 1);
    CHECK_EQ(ck.problems_total, 1);
    CHECK_EQ(ck.nleaks, 2);
    if (ck.nleaks == 2) {
        CHECK_EQ(ck.leaks[0].file, 1);
        CHECK_EQ(ck.leaks[0].bytes, 600);
        CHECK_EQ(ck.leaks[1].file, 0);
        CHECK_EQ(ck.leaks[1].callsite, 0x1000 + 6);
    }
    mallet_check_free(&ck);
}

/* Which frees in a forked child are of inherited blocks depends on when the fork happened: the
 * child's recorder start. */
static void test_fork_times(void)
{
    const char *pp = trace_path("fork-p.mtrace"), *pc = trace_path("fork-c.mtrace");
    /* c0 taken again beside n0: the reader maps cycles to ns from clock pairs stamped when the
     * chunks are written, at the recorder's rate or 1 ns per cycle when it has none, so the
     * steps land near n0 only if c0 is this close to it (with main's c0, a slow earlier test
     * under TSan pushed step 100000 before the fork). */
    c0 = mallet_cycles();
    const uint64_t n0 = mallet_now_ns();
    start_ns = n0;
    mallet_writer_t *p = wopen(pp, 500, 1, 0, 0);
    start_ns = n0 + 1000000; /* the fork: 1 ms after c0, between steps 4 and 100000 */
    mallet_writer_t *c = wopen(pc, 501, 500, 1, 0);
    start_ns = 0;
    if (!p || !c) return;
    put(p, MALLOC(1, 1, 10, 0xa000)); /* before the fork, never freed by the parent */
    put(p, MALLOC(1, 2, 20, 0xb000)); /* before the fork, freed by the parent after it */
    put(p, MALLOC(1, 3, 40, 0xd000)); /* before the fork, freed by the parent before it */
    put(p, FREE(1, 4, 0xd000));
    put(p, MALLOC(1, 5, 50, 0xe000)); /* before the fork; after it freed, and the address reused */
    put(p, MALLOC(1, 100000, 30, 0xc000)); /* after the fork: the child never had it */
    put(p, FREE(1, 100001, 0xb000));
    put(c, FREE(9, 100002, 0xa000)); /* inherited */
    put(c, FREE(9, 100003, 0xb000)); /* inherited: the child's copy outlives the parent's */
    put(c, FREE(9, 100004, 0xc000)); /* unknown */
    put(c, FREE(9, 100005, 0xd000)); /* unknown */
    put(p, FREE(1, 100006, 0xe000));
    put(p, MALLOC(1, 100007, 60, 0xe000));
    put(c, FREE(9, 100008, 0xe000)); /* inherited: its copy of the parent's first 0xe000 */
    put(p, MALLOC(1, 100009, 70, 0xf000)); /* born and dead after the fork */
    put(p, FREE(1, 100010, 0xf000));
    put(c, FREE(9, 100011, 0xf000)); /* unknown */
    CHECK(mallet_writer_close(p, 1) == 0);
    CHECK(mallet_writer_close(c, 1) == 0);
    const char *paths[2] = {pp, pc};
    mallet_stats_t st;
    if (stats_of(paths, 2, &st)) return;
    CHECK_EQ(st.inherited_frees, 3);
    CHECK_EQ(st.unknown_frees, 3);
    CHECK_EQ(st.leaked_blocks, 3); /* the parent's 0xa000, 0xc000 and second 0xe000 */
    CHECK_EQ(st.leaked_bytes, 100);
    CHECK_EQ(st.missed_frees, 0);
    mallet_stats_free(&st);
    mallet_check_t ck;
    if (check_of(paths, 2, &ck)) return;
    CHECK_EQ(ck.inherited_frees, 3);
    CHECK_EQ(ck.unknown_frees, 3);
    CHECK_EQ(ck.problems_total, 3);
    if (ck.nproblems == 3) {
        CHECK_EQ(ck.problems[0].ptr, 0xc000);
        CHECK_EQ(ck.problems[1].ptr, 0xd000);
        CHECK_EQ(ck.problems[1].file, 1);
        CHECK_EQ(ck.problems[2].ptr, 0xf000);
    }
    mallet_check_free(&ck);
}

/* check: double free vs unknown free, reallocs of freed and unknown pointers, leaks by site. */
static void test_check(void)
{
    const char *path = trace_path("check.mtrace");
    mallet_writer_t *w = wopen(path, 9, 1, 0, 0);
    if (!w) return;
    put(w, site(MALLOC(1, 1, 10, 0xa0), 0x111));
    put(w, site(MALLOC(1, 2, 10, 0xb0), 0x111));
    put(w, site(MALLOC(1, 3, 500, 0xc0), 0x222));
    put(w, FREE(1, 4, 0xa0));
    put(w, FREE(1, 5, 0xa0));                    /* double free, first freed at step 4 */
    put(w, site(MALLOC(1, 6, 10, 0xa0), 0x111)); /* allocated again */
    put(w, FREE(1, 7, 0xa0));                    /* fine */
    put(w, FREE(1, 8, 0x999));                   /* unknown */
    put(w, REALLOC(1, 9, 0xb0, 20, 0xd0));       /* b0 dies */
    put(w, REALLOC(1, 10, 0xb0, 30, 0xe0));      /* realloc of freed pointer; e0 born */
    put(w, REALLOC(1, 11, 0x777, 5, 0));         /* fails: old untouched, nothing to say */
    put(w, REALLOC(1, 12, 0x888, 5, 0xf0));      /* realloc of unknown pointer; f0 born */
    CHECK(mallet_writer_close(w, 1) == 0);
    const char *paths[1] = {path};
    mallet_check_t c;
    if (check_of(paths, 1, &c)) return;
    CHECK_EQ(c.problems_total, 4);
    CHECK_EQ(c.nproblems, 4);
    CHECK_EQ(c.double_frees, 1);
    CHECK_EQ(c.unknown_frees, 1);
    CHECK_EQ(c.realloc_freed, 1);
    CHECK_EQ(c.realloc_unknown, 1);
    if (c.nproblems == 4) {
        CHECK_EQ(c.problems[0].kind, MALLET_PROBLEM_DOUBLE_FREE);
        CHECK_EQ(c.problems[0].ptr, 0xa0);
        CHECK_EQ(c.problems[0].callsite, 0x2000 + 5);
        CHECK_EQ(c.problems[0].first_callsite, 0x2000 + 4);
        CHECK_EQ(c.problems[0].time_ns, rel(paths, 1, 5));
        CHECK_EQ(c.problems[0].first_time_ns, rel(paths, 1, 4));
        CHECK_EQ(c.problems[1].kind, MALLET_PROBLEM_UNKNOWN_FREE);
        CHECK_EQ(c.problems[1].ptr, 0x999);
        CHECK_EQ(c.problems[2].kind, MALLET_PROBLEM_REALLOC_FREED);
        CHECK_EQ(c.problems[2].ptr, 0xb0);
        CHECK_EQ(c.problems[2].first_callsite, 0x3000 + 9);
        CHECK_EQ(c.problems[2].op, MALLET_OP_REALLOC);
        CHECK_EQ(c.problems[3].kind, MALLET_PROBLEM_REALLOC_UNKNOWN);
        CHECK_EQ(c.problems[3].ptr, 0x888);
    }
    CHECK_EQ(c.leaked_bytes, 555);
    CHECK_EQ(c.leaked_blocks, 4);
    CHECK_EQ(c.nleaks, 4);
    static const uint64_t sites[4][2] = {
        {0x222, 500}, {0x3000 + 10, 30}, {0x3000 + 9, 20}, {0x3000 + 12, 5}};
    for (size_t i = 0; i < 4 && i < c.nleaks; i++) {
        CHECK_EQ(c.leaks[i].callsite, sites[i][0]);
        CHECK_EQ(c.leaks[i].bytes, sites[i][1]);
        CHECK_EQ(c.leaks[i].blocks, 1);
    }
    mallet_check_free(&c);
}

/* Many live blocks (the table grows many times, and shrinks back through deletions), leaks
 * grouped by callsite. */
static void test_scale(void)
{
    const char *path = trace_path("scale.mtrace");
    mallet_writer_t *w = wopen(path, 5, 1, 0, 1);
    if (!w) return;
    const unsigned n = 200000;
    for (unsigned i = 0; i < n; i++) {
        put(w,
            site(MALLOC(1 + i % 4, i, 16 + i % 5, 0x10000000 + (uint64_t)i * 16), 0x500 + i % 3));
    }
    for (unsigned i = 0; i < n; i += 2)
        put(w, FREE(1, n + i, 0x10000000 + (uint64_t)i * 16));
    CHECK(mallet_writer_close(w, 1) == 0);
    const char *paths[1] = {path};
    uint64_t all = 0, left = 0;
    for (unsigned i = 0; i < n; i++) {
        all += 16 + i % 5;
        if (i % 2) left += 16 + i % 5;
    }
    mallet_stats_t st;
    if (stats_of(paths, 1, &st)) return;
    CHECK_EQ(st.events, n + n / 2);
    CHECK_EQ(st.peak_live_bytes, all);
    CHECK_EQ(st.peak_live_blocks, n);
    CHECK_EQ(st.leaked_blocks, n / 2);
    CHECK_EQ(st.leaked_bytes, left);
    CHECK_EQ(st.threads, 4);
    CHECK_EQ(st.cross_thread_frees, n / 2 / 2); /* even i: thread 1 or 3; freed by 1 */
    mallet_stats_free(&st);
    mallet_check_t c;
    if (check_of(paths, 1, &c)) return;
    CHECK_EQ(c.leaked_blocks, n / 2);
    CHECK_EQ(c.nleaks, 3);
    CHECK_EQ(c.problems_total, 0);
    mallet_check_free(&c);
}

static void append(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, data, len) == (ssize_t)len);
    if (fd >= 0) close(fd);
}

/* A cut trace still gives the stats of its complete chunks; a corrupt one is an error. */
static void test_damaged(void)
{
    const char *path = write_single();
    if (!path) return;
    const char *paths[1] = {path};
    mallet_stats_t st;

    /* Bytes after the last complete chunk, fewer than a chunk header. */
    append(path, "partial chunk header: 30 bytes", 30);
    mallet_reader_t *r = ropen(paths, 1);
    if (r) {
        CHECK_EQ(mallet_reader_info(r, 0)->cut, 1);
        CHECK_EQ(mallet_reader_info(r, 0)->cut_bytes, 30);
        mallet_reader_close(r);
    }
    if (!stats_of(paths, 1, &st)) {
        CHECK_EQ(st.events, 25);
        CHECK_EQ(st.procs[0].cut, 1);
        CHECK_EQ(st.procs[0].ended_cleanly, 1);
        mallet_stats_free(&st);
    }

    /* Cut inside the END chunk (a header and one byte): the process looks like it died. */
    const uint64_t end_chunk = MALLET_CHUNK_HEADER_SIZE + 1, cut = end_chunk - 5;
    path = write_single();
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    CHECK(truncate(path, sb.st_size - 5) == 0);
    if (!stats_of(paths, 1, &st)) {
        CHECK_EQ(st.events, 25);
        CHECK_EQ(st.peak_live_bytes, 4514);
        CHECK_EQ(st.leaked_bytes, 86);
        CHECK_EQ(st.procs[0].cut, 1);
        CHECK_EQ(st.procs[0].cut_bytes, cut);
        CHECK_EQ(st.procs[0].ended_cleanly, 0);
        mallet_stats_free(&st);
    }

    /* A flipped byte at the end of the last EVENTS payload (just before the cut END chunk):
     * the reader finds it only when it decodes that chunk, and the analysis returns the error
     * and nothing else. */
    CHECK(stat(path, &sb) == 0);
    int fd = open(path, O_RDWR);
    uint8_t byte = 0;
    off_t pos = sb.st_size - (off_t)cut - 1;
    CHECK(fd >= 0 && pread(fd, &byte, 1, pos) == 1);
    byte ^= 0x40;
    CHECK(pwrite(fd, &byte, 1, pos) == 1);
    close(fd);
    r = ropen(paths, 1);
    if (r) {
        char err[512] = "";
        CHECK(mallet_stats_compute(r, &st, err, sizeof err) == -1);
        CHECK(strstr(err, path) != NULL);
        CHECK(st.procs == NULL && st.events == 0);
        mallet_reader_close(r);
    }
    r = ropen(paths, 1);
    if (r) {
        mallet_check_t c;
        char err[512] = "";
        CHECK(mallet_check_compute(r, &c, err, sizeof err) == -1);
        CHECK(strstr(err, "corrupt") != NULL);
        CHECK(c.leaks == NULL && c.problems == NULL);
        mallet_reader_close(r);
    }
}

static void test_hist(void)
{
    CHECK_EQ(mallet_hist_bucket(0), 0);
    CHECK_EQ(mallet_hist_bucket(1), 0);
    CHECK_EQ(mallet_hist_bucket(2), 1);
    CHECK_EQ(mallet_hist_bucket(3), 2);
    CHECK_EQ(mallet_hist_bucket(4), 2);
    CHECK_EQ(mallet_hist_bucket(5), 3);
    CHECK_EQ(mallet_hist_bucket((uint64_t)1 << 63), 63);
    CHECK_EQ(mallet_hist_bucket(((uint64_t)1 << 63) + 1), 64);
    CHECK_EQ(mallet_hist_bucket(UINT64_MAX), 64);
    CHECK_EQ(mallet_hist_le(0), 1);
    CHECK_EQ(mallet_hist_le(10), 1024);
    CHECK_EQ(mallet_hist_le(64), UINT64_MAX);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mallet-test-stats-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    c0 = mallet_cycles();
    const int keep = getenv("MALLET_TEST_KEEP") != NULL;
    test_hist();
    test_single();
    test_threads();
    test_peak_and_temporary();
    test_processes();
    test_fork_times();
    test_check();
    test_scale();
    test_damaged();
    const char *names[] = {"single.mtrace", "threads.mtrace", "proc-a.mtrace", "proc-b.mtrace",
                           "proc-c.mtrace", "fork-p.mtrace",  "fork-c.mtrace", "check.mtrace",
                           "scale.mtrace",  "sites.mtrace"};
    for (size_t i = 0; !keep && i < sizeof names / sizeof names[0]; i++)
        unlink(trace_path(names[i]));
    if (keep)
        fprintf(stderr, "traces kept in %s\n", dir);
    else
        rmdir(dir);
    return CHECK_DONE();
}
