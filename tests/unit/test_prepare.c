/* The replay-ready form: slots follow the live blocks, each thread gets its own stream, an op on
 * a block another thread made waits for that op, and ops that cannot be replayed (double frees,
 * frees of unknown pointers, failed calls) are skipped and counted. Traces are built with the
 * trace writer, so every answer is known. The form is read back from the replay file through the
 * same loader the worker uses; the streaming path (tiny chunks, flushed ops flagged by patches)
 * must give the same file contents as the all-in-memory one, and replay the exact calls. */
#define _GNU_SOURCE
#include "check.h"
#include "replay/prepare.h"
#include "replay/worker.h"
#include "trace/writer.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char path[256], rpath[300];
static mallet_writer_t *w;
static uint64_t clock_;

static void ev_full(const mallet_event_t *tmpl)
{
    mallet_event_t e = *tmpl;
    e.callsite = 0x400000 + e.op;
    clock_ += 100;
    e.free_cycles = clock_ - 10;
    e.cycles = clock_;
    CHECK(mallet_writer_event(w, &e) == 0);
}

static void ev(uint32_t tid, uint8_t op, uint64_t ptr, uint64_t old, uint64_t size, int failed)
{
    mallet_event_t e = {.op = op, .tid = tid, .ptr = ptr, .old_ptr = old, .size = size,
                        .failed = (uint8_t)failed};
    ev_full(&e);
}

/* A new trace; thread_exits: its recorder marks thread ends (mallet_writer_thread_exit). */
static void begin_marked(int thread_exits)
{
    char err[256];
    const char *t = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/mallet-test-prepare-%d.mtrace", t && *t ? t : "/tmp", (int)getpid());
    snprintf(rpath, sizeof rpath, "%s.replay", path);
    mallet_meta_t meta = {.pid = 1, .thread_exits = thread_exits};
    w = mallet_writer_open(path, &meta, 0, err, sizeof err);
    CHECK(w != NULL);
    clock_ = 1000;
}

static void begin(void)
{
    begin_marked(0);
}

/* An op with its extension (zero when it has none), as the tests look at it. */
typedef struct full {
    mallet_rop_t o;
    mallet_rop_ext_t x;
} full_t;

/* A replay file read back whole, as the worker does when it fits; and each op with its
 * extension. */
typedef struct loaded {
    mallet_prepared_t p;
    uint32_t nthreads;
    mallet_rop_t **ops;
    mallet_rop_ext_t **exts;
    full_t **full;
    uint64_t *nops;
    uint64_t calls;
} loaded_t;

static void unload(loaded_t *l)
{
    for (uint32_t t = 0; l->ops && t < l->nthreads; t++) {
        free(l->ops[t]);
        free(l->exts[t]);
        free(l->full[t]);
    }
    free(l->ops);
    free(l->exts);
    free(l->full);
    free(l->nops);
    memset(l, 0, sizeof *l);
}

static uint64_t size_of(const full_t *f)
{
    return mallet_rop_size(&f->o, &f->x);
}

static uint32_t old_slot(const full_t *f)
{
    return mallet_rop_old_slot(&f->o, &f->x);
}

/* Loads rpath; returns 0, or -1 with the loader's message in err. */
static int load(loaded_t *l, char *err, size_t errlen)
{
    mallet_rfile_t rf;
    memset(l, 0, sizeof *l);
    if (mallet_rfile_open(rpath, &rf, err, errlen)) return -1;
    l->p = rf.info;
    l->nthreads = rf.nthreads;
    l->ops = calloc(rf.nthreads + 1, sizeof *l->ops);
    l->exts = calloc(rf.nthreads + 1, sizeof *l->exts);
    l->full = calloc(rf.nthreads + 1, sizeof *l->full);
    l->nops = calloc(rf.nthreads + 1, sizeof *l->nops);
    int rc = 0;
    for (uint32_t t = 0; !rc && t < rf.nthreads; t++) {
        const mallet_rfile_thread_t *th = &rf.threads[t];
        l->nops[t] = th->nops;
        l->ops[t] = calloc(th->nops + 1, sizeof(mallet_rop_t));
        l->exts[t] = calloc(th->nexts + 1, sizeof(mallet_rop_ext_t));
        l->full[t] = calloc(th->nops + 1, sizeof(full_t));
        for (uint64_t k = 0; !rc && k < th->nchunks; k++) {
            int64_t c = mallet_rfile_read_chunk(&rf, t, k, l->ops[t] + th->chunks[k].first,
                                                l->exts[t] + th->chunks[k].xfirst, err, errlen);
            if (c < 0) rc = -1;
            else l->calls += (uint64_t)c;
        }
        for (uint64_t i = 0, x = 0; !rc && i < th->nops; i++) {
            l->full[t][i].o = l->ops[t][i];
            if (l->ops[t][i].kind & MALLET_ROP_EXT) l->full[t][i].x = l->exts[t][x++];
        }
    }
    if (!rc)
        rc = mallet_rfile_check_waits(&rf, (const mallet_rop_t *const *)l->ops,
                                      (const mallet_rop_ext_t *const *)l->exts, err, errlen);
    mallet_rfile_close(&rf);
    if (rc) unload(l);
    return rc;
}

/* Serials the next prepare_opts gives the trace's threads in place of the writer's (the n-th
 * thread the writer met: serial_map[n]), or NULL: a damaged file's serials can be any number. */
static const uint32_t *serial_map;
static size_t serial_map_len;

static void renumber_threads(void)
{
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f) return;
    uint8_t hb[MALLET_CHUNK_HEADER_SIZE];
    mallet_chunk_header_t h;
    for (long off = MALLET_FILE_HEADER_SIZE;; off += MALLET_CHUNK_HEADER_SIZE + (long)h.disk_size) {
        if (fseek(f, off, SEEK_SET) || fread(hb, 1, sizeof hb, f) != sizeof hb) break;
        CHECK(mallet_chunk_header_unpack(hb, &h) == 0);
        if (h.type != MALLET_CHUNK_EVENTS) continue;
        CHECK(h.thread < serial_map_len);
        h.thread = serial_map[h.thread];
        mallet_chunk_header_pack(hb, &h);
        CHECK(fseek(f, off, SEEK_SET) == 0 && fwrite(hb, 1, sizeof hb, f) == sizeof hb);
    }
    fclose(f);
}

/* Prepares the trace written so far (closing the writer) into rpath, and loads it into l. */
static int prepare_opts(loaded_t *l, const mallet_prepare_opts_t *opts, int keep_trace)
{
    char err[512];
    CHECK(mallet_writer_close(w, 1) == 0);
    w = NULL;
    if (serial_map) renumber_threads();
    const char *paths[] = {path};
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    CHECK(r != NULL);
    if (!r) return -1;
    mallet_rfile_writer_t *rw;
    CHECK(mallet_rfile_create(rpath, 123, 456, &rw) == 0);
    mallet_prepared_t p;
    int rc = mallet_prepare(r, 0, rw, opts, &p, err, sizeof err);
    if (rc) fprintf(stderr, "prepare: %s\n", err);
    mallet_reader_close(r);
    if (!keep_trace) unlink(path);
    if (rc) return rc;
    rc = load(l, err, sizeof err);
    if (rc) fprintf(stderr, "load: %s\n", err);
    CHECK(rc == 0);
    if (rc) return rc;
    CHECK_EQ(l->p.ops, p.ops);
    CHECK_EQ(l->p.waits, p.waits);
    CHECK_EQ(l->p.patches, p.patches);
    CHECK_EQ(l->p.trace_size, 123);
    CHECK_EQ(l->p.trace_mtime_ns, 456);
    CHECK_EQ(l->calls, p.ops); /* the header and the ops agree */
    return 0;
}

static int prepare(loaded_t *l)
{
    return prepare_opts(l, NULL, 0);
}

static void test_one_thread(void)
{
    begin();
    ev(1, MALLET_OP_MALLOC, 0xa0, 0, 10, 0);
    ev(1, MALLET_OP_MALLOC, 0xb0, 0, 20, 0);
    ev(1, MALLET_OP_FREE, 0xa0, 0, 0, 0);
    ev(1, MALLET_OP_MALLOC, 0xa0, 0, 30, 0); /* the address again: a new block */
    ev(1, MALLET_OP_FREE, 0xb0, 0, 0, 0);
    ev(1, MALLET_OP_FREE, 0xa0, 0, 0, 0);
    ev(1, MALLET_OP_FREE, 0, 0, 0, 0);       /* free(NULL): a call, replayed */
    ev(1, MALLET_OP_FREE, 0xdead, 0, 0, 0);  /* never allocated: skipped */
    ev(1, MALLET_OP_FREE, 0xb0, 0, 0, 0);    /* double free: skipped */
    ev(1, MALLET_OP_MALLOC, 0, 0, 1ull << 60, 1); /* failed: skipped */
    loaded_t l;
    if (prepare(&l)) return;
    CHECK_EQ(l.nthreads, 1);
    CHECK_EQ(l.p.ops, 7);
    CHECK_EQ(l.nops[0], 7);
    CHECK_EQ(l.p.skipped, 2);
    CHECK_EQ(l.p.failed_allocs, 1);
    CHECK_EQ(l.p.waits, 0);
    CHECK_EQ(l.p.peak_live_blocks, 2);
    CHECK_EQ(l.p.nslots, 8); /* new slots come a cache line (8) at a time */
    const mallet_rop_t *o = l.ops[0];
    CHECK(o[0].kind == MALLET_OP_MALLOC && o[0].size == 10);
    CHECK(o[2].kind == MALLET_OP_FREE && o[2].slot == o[0].slot);
    CHECK(o[3].slot == o[0].slot);   /* the slot freed just before is reused */
    CHECK(o[4].slot == o[1].slot);
    CHECK(o[6].kind == MALLET_OP_FREE && o[6].slot == MALLET_NO_SLOT);
    /* malloc and free: an op each, no extension */
    for (int i = 0; i < 7; i++) CHECK(!(o[i].kind & MALLET_ROP_EXT) && !o[i].flags);
    CHECK_EQ(l.p.chunks, 1);
    unload(&l);
    struct stat sb; /* header, 7 ops, the index (a thread, a chunk): nothing else */
    CHECK(stat(rpath, &sb) == 0 && sb.st_size == 128 + 7 * 8 + 24 + 16);
}

static void test_cross_thread(void)
{
    begin();
    ev(1, MALLET_OP_MALLOC, 0x100, 0, 8, 0);    /* T1 op 0 */
    ev(1, MALLET_OP_MALLOC, 0x200, 0, 8, 0);    /* T1 op 1 */
    ev(2, MALLET_OP_FREE, 0x100, 0, 0, 0);      /* T2 op 0: waits for T1 op 0, op 1 frees */
    ev(2, MALLET_OP_REALLOC, 0x300, 0x200, 64, 0); /* T2 op 2: waits for T1 op 1, op 3 reallocs */
    ev(1, MALLET_OP_FREE, 0x300, 0, 0, 0);      /* T1 op 2: waits for T2 op 3, op 3 frees */
    loaded_t l;
    if (prepare(&l)) return;
    CHECK_EQ(l.nthreads, 2);
    CHECK_EQ(l.p.ops, 5);
    CHECK_EQ(l.p.waits, 3);
    CHECK_EQ(l.p.skipped, 0);
    CHECK_EQ(l.nops[0], 4);
    CHECK_EQ(l.nops[1], 4);
    const full_t *t1 = l.full[0], *t2 = l.full[1];
    /* a wait names the op (slot) and, in its extension, the thread (aux) */
    const uint8_t wait = MALLET_ROP_WAIT | MALLET_ROP_EXT;
    CHECK(t2[0].o.kind == wait && t2[0].x.aux == 0 && t2[0].o.slot == 0);
    CHECK(t2[1].o.kind == MALLET_OP_FREE && t2[1].o.slot == t1[0].o.slot);
    CHECK(t2[2].o.kind == wait && t2[2].x.aux == 0 && t2[2].o.slot == 1);
    CHECK(t2[3].o.kind == (MALLET_OP_REALLOC | MALLET_ROP_EXT) &&
          old_slot(&t2[3]) == t1[1].o.slot && size_of(&t2[3]) == 64);
    CHECK(t1[2].o.kind == wait && t1[2].x.aux == 1 && t1[2].o.slot == 3);
    CHECK(t1[3].o.kind == MALLET_OP_FREE && t1[3].o.slot == t2[3].o.slot);
    /* only the ops another thread waits for publish their completion */
    CHECK(t1[0].o.flags == MALLET_ROP_AWAITED && t1[1].o.flags == MALLET_ROP_AWAITED);
    CHECK(t2[3].o.flags == MALLET_ROP_AWAITED && !t2[1].o.flags && !t1[3].o.flags);
    /* a slot freed by T2 goes to T2's pool, so T2 reuses it: safe, T2 waited for the op that
     * filled it */
    CHECK(t2[3].o.slot == t1[0].o.slot);
    unload(&l);
}

/* The process's main thread (tid == pid, 1 for the trace writer) is thread 0, even when another
 * thread allocates first: the worker replays thread 0 on its own main thread. */
static void test_main_thread_first(void)
{
    begin();
    ev(7, MALLET_OP_MALLOC, 0x100, 0, 8, 0);
    ev(1, MALLET_OP_MALLOC, 0x200, 0, 24, 0);
    ev(1, MALLET_OP_FREE, 0x200, 0, 0, 0);
    loaded_t l;
    if (prepare(&l)) return;
    CHECK_EQ(l.nthreads, 2);
    CHECK_EQ(l.nops[0], 2);
    CHECK_EQ(l.nops[1], 1);
    CHECK(l.ops[0][0].kind == MALLET_OP_MALLOC && l.ops[0][0].size == 24);
    CHECK(l.ops[1][0].kind == MALLET_OP_MALLOC && l.ops[1][0].size == 8);
    unload(&l);
}

/* The trace's RSS samples are kept in the replay file (not replayed): all of them up to 512, then
 * evenly thinned. 2000 samples whose bytes are their index: stride 4 by the end, 500 kept. */
static void test_recorded_rss(void)
{
    begin();
    ev(1, MALLET_OP_MALLOC, 0x100, 0, 8, 0);
    for (uint64_t k = 0; k < 2000; k++) ev(1, MALLET_OP_RSS, 0, 0, k, 0);
    ev(1, MALLET_OP_FREE, 0x100, 0, 0, 0);
    loaded_t l;
    if (prepare_opts(&l, NULL, 0)) return;
    CHECK_EQ(l.p.ops, 2); /* the samples are not calls */
    mallet_rss_sample_t rss[MALLET_RFILE_RSS_MAX];
    uint32_t n = 0;
    CHECK(mallet_rfile_recorded_rss(rpath, rss, &n) == 0);
    CHECK_EQ(n, 500);
    int bad = 0;
    for (uint32_t i = 0; i < n; i++) bad += rss[i].bytes != 4u * i || (i && rss[i].t_ns < rss[i - 1].t_ns);
    CHECK_EQ(bad, 0);
    unload(&l);
}

static void test_realloc_cases(void)
{
    begin();
    ev(1, MALLET_OP_MALLOC, 0x10, 0, 8, 0);
    ev(1, MALLET_OP_REALLOC, 0x10, 0x10, 16, 0);    /* in place */
    ev(1, MALLET_OP_REALLOC, 0x20, 0x10, 32, 0);    /* moves */
    ev(1, MALLET_OP_REALLOC, 0, 0x20, 1ull << 60, 1); /* fails: the block stays */
    ev(1, MALLET_OP_REALLOC, 0, 0x20, 0, 0);        /* realloc(p, 0): frees it */
    ev(1, MALLET_OP_REALLOC, 0x40, 0, 24, 0);       /* realloc(NULL, n): allocates */
    ev(1, MALLET_OP_REALLOC, 0x50, 0x999, 24, 0);   /* unknown pointer: allocates anew */
    ev(1, MALLET_OP_FREE, 0x40, 0, 0, 0);
    ev(1, MALLET_OP_FREE, 0x50, 0, 0, 0);
    loaded_t l;
    if (prepare(&l)) return;
    CHECK_EQ(l.p.ops, 8);
    CHECK_EQ(l.p.failed_allocs, 1);
    CHECK_EQ(l.p.skipped, 1);
    const full_t *o = l.full[0];
    const uint8_t realloc_ = MALLET_OP_REALLOC | MALLET_ROP_EXT;
    CHECK(o[1].o.kind == realloc_ && old_slot(&o[1]) == o[0].o.slot && o[1].o.slot != o[0].o.slot);
    CHECK(old_slot(&o[2]) == o[1].o.slot);
    CHECK(o[3].o.kind == realloc_ && old_slot(&o[3]) == o[2].o.slot &&
          o[3].o.slot == MALLET_NO_SLOT);
    CHECK(o[4].o.kind == realloc_ && old_slot(&o[4]) == MALLET_NO_SLOT);
    CHECK(o[5].o.kind == MALLET_OP_MALLOC && o[5].o.size == 24);
    CHECK(o[6].o.slot == o[4].o.slot && o[7].o.slot == o[5].o.slot);
    CHECK(l.p.nslots == 8);
    unload(&l);
}

/* calloc and reallocarray keep count and size whichever of them is large; alignments past 32 bits
 * keep their power of two; a malloc of more bytes than the short form holds takes an extension;
 * numbers no successful call can have are not replayed. */
static void test_call_numbers(void)
{
    begin();
    mallet_event_t c1 = {.op = MALLET_OP_CALLOC, .tid = 1, .ptr = 0x10, .nmemb = 3, .size = 1ull << 40};
    mallet_event_t c2 = {.op = MALLET_OP_CALLOC, .tid = 1, .ptr = 0x20, .nmemb = 1ull << 40, .size = 3};
    mallet_event_t ra = {.op = MALLET_OP_REALLOCARRAY, .tid = 1, .ptr = 0x30, .old_ptr = 0x20,
                         .nmemb = 5ull << 33, .size = 2};
    mallet_event_t m1 = {.op = MALLET_OP_MEMALIGN, .tid = 1, .ptr = 0x40, .align = 64, .size = 7};
    mallet_event_t m2 = {.op = MALLET_OP_POSIX_MEMALIGN, .tid = 1, .ptr = 0x50, .align = 1ull << 40, .size = 9};
    mallet_event_t bad = {.op = MALLET_OP_CALLOC, .tid = 1, .ptr = 0x60, .nmemb = 1ull << 40, .size = 1ull << 40};
    ev_full(&c1);
    ev_full(&c2);
    ev_full(&ra);
    ev_full(&m1);
    ev_full(&m2);
    ev_full(&bad);
    mallet_event_t huge = {.op = MALLET_OP_MALLOC, .tid = 1, .ptr = 0x70, .size = 1ull << 50};
    ev_full(&huge); /* more than an address space: recorded as a success, not replayable */
    ev(1, MALLET_OP_MALLOC, 0x80, 0, MALLET_ROP_SHORT_MAX, 0);
    ev(1, MALLET_OP_MALLOC, 0x90, 0, MALLET_ROP_SHORT_MAX + 1, 0);
    ev(1, MALLET_OP_MALLOC, 0xa0, 0, 5ull << 40, 0);
    loaded_t l;
    if (prepare(&l)) return;
    CHECK_EQ(l.p.ops, 8);
    CHECK_EQ(l.p.failed_allocs, 2);
    uint64_t size, aux;
    const full_t *o = l.full[0];
    mallet_rop_args(&o[0].o, &o[0].x, &size, &aux);
    CHECK(size == 1ull << 40 && aux == 3 && !(o[0].o.size & MALLET_ROP_ALT));
    mallet_rop_args(&o[1].o, &o[1].x, &size, &aux);
    CHECK(size == 3 && aux == 1ull << 40 && (o[1].o.size & MALLET_ROP_ALT));
    mallet_rop_args(&o[2].o, &o[2].x, &size, &aux);
    /* reallocarray is replayed as realloc of the product */
    CHECK(o[2].o.kind == (MALLET_OP_REALLOCARRAY | MALLET_ROP_EXT) && size == 10ull << 33 &&
          aux == 1 && old_slot(&o[2]) == o[1].o.slot);
    mallet_rop_args(&o[3].o, &o[3].x, &size, &aux);
    CHECK(size == 7 && aux == 64);
    mallet_rop_args(&o[4].o, &o[4].x, &size, &aux);
    CHECK(size == 9 && aux == 1ull << 40 && (o[4].o.size & MALLET_ROP_ALT));
    CHECK(o[5].o.kind == MALLET_OP_MALLOC && o[5].o.size == MALLET_ROP_SHORT_MAX);
    CHECK(o[6].o.kind == (MALLET_OP_MALLOC | MALLET_ROP_EXT) &&
          size_of(&o[6]) == MALLET_ROP_SHORT_MAX + 1);
    mallet_rop_args(&o[7].o, &o[7].x, &size, &aux);
    CHECK(o[7].o.kind == (MALLET_OP_MALLOC | MALLET_ROP_EXT) && size == 5ull << 40 && aux == 1);
    /* at the end: a calloc, reallocarray's product, the aligned blocks and the mallocs */
    CHECK_EQ(l.p.peak_live_bytes,
             (3ull << 40) + (10ull << 33) + 7 + 9 + 2 * MALLET_ROP_SHORT_MAX + 1 + (5ull << 40));
    unload(&l);
}

static void test_slots_follow_live_blocks(void)
{
    begin();
    /* 20000 blocks, never more than 3 live at once, at ever new addresses */
    for (uint64_t i = 0; i < 20000; i++) {
        ev(1, MALLET_OP_MALLOC, 0x100000 + 16 * i, 0, 16, 0);
        if (i >= 2) ev(1, MALLET_OP_FREE, 0x100000 + 16 * (i - 2), 0, 0, 0);
    }
    loaded_t l;
    if (prepare(&l)) return;
    CHECK_EQ(l.p.ops, 20000 + 19998);
    CHECK_EQ(l.p.peak_live_blocks, 3);
    CHECK_EQ(l.p.nslots, 8);
    unload(&l);
}

/* Past the size where the live table goes from a quarter to half full (LIVE_SPARSE_MAX in
 * prepare.c: 2^20 entries, 2^18 live blocks): every block is still found when it dies, and an
 * address born again while live (its free not recorded) replaces its entry. */
static void test_many_live_blocks(void)
{
    enum { N = 300000 };
    begin();
    for (uint64_t i = 0; i < N; i++) ev(1, MALLET_OP_MALLOC, 0x10000000 + 32 * i, 0, 24, 0);
    ev(1, MALLET_OP_MALLOC, 0x10000000, 0, 8, 0); /* the first block's free was not recorded */
    for (uint64_t i = N; i-- > 0;) ev(1, MALLET_OP_FREE, 0x10000000 + 32 * i, 0, 0, 0);
    loaded_t l;
    if (prepare(&l)) return;
    CHECK_EQ(l.p.ops, 2 * N + 1);
    CHECK_EQ(l.p.skipped, 0);
    CHECK_EQ(l.p.peak_live_blocks, N);
    CHECK_EQ(l.p.peak_live_bytes, 24 * N);
    const mallet_rop_t *o = l.ops[0];
    uint64_t wrong = 0; /* the frees come in reverse: op 2N - i frees block i */
    for (uint64_t i = 1; i < N; i++) wrong += o[2 * N - i].slot != o[i].slot;
    CHECK_EQ(wrong, 0);
    CHECK_EQ(o[2 * N].slot, o[N].slot); /* the address's last block */
    unload(&l);
}

/* Two threads allocating side by side never get slots in the same cache line of the worker's
 * slot table (8 pointers): each thread's stores stay in lines of its own. */
static void test_slot_lines(void)
{
    begin();
    for (uint64_t i = 0; i < 100; i++) {
        ev(1, MALLET_OP_MALLOC, 0x100000 + 16 * i, 0, 16, 0);
        ev(2, MALLET_OP_MALLOC, 0x900000 + 16 * i, 0, 16, 0);
    }
    for (uint64_t i = 0; i < 100; i++) {
        ev(1, MALLET_OP_FREE, 0x100000 + 16 * i, 0, 0, 0);
        ev(2, MALLET_OP_FREE, 0x900000 + 16 * i, 0, 0, 0);
    }
    loaded_t l;
    if (prepare(&l)) return;
    CHECK_EQ(l.nthreads, 2);
    CHECK_EQ(l.p.nslots, 208); /* 100 live blocks each: 13 lines each */
    int shared = 0;
    for (uint64_t i = 0; i < l.nops[0]; i++)
        for (uint64_t k = 0; k < l.nops[1]; k++)
            shared += l.ops[0][i].slot / 8 == l.ops[1][k].slot / 8;
    CHECK_EQ(shared, 0);
    unload(&l);
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(uint64_t n)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (rng * 0x2545f4914f6cdd1dull >> 11) % n;
}

/* Many threads handing blocks to each other, some freed long after they were made. Returns the
 * calls the trace holds and sets *cross to the frees and reallocs of another thread's block. */
static uint64_t many_threads_trace(uint64_t *cross)
{
    enum { NT = 24, N = 60000 };
    static uint64_t live[4096];
    static uint32_t owner[4096];
    size_t nlive = 0;
    uint64_t next = 0x10000, calls = 0;
    *cross = 0;
    begin();
    for (int i = 0; i < N; i++) {
        uint32_t tid = 100 + (uint32_t)rnd(NT);
        uint64_t k = rnd(10);
        if (nlive && (k < 4 || nlive == 4096)) { /* free (or realloc) a random live block */
            size_t j = rnd(nlive);
            *cross += owner[j] != tid;
            if (k == 0) {
                ev(tid, MALLET_OP_REALLOC, next, live[j], 1 + rnd(300), 0);
                live[j] = next, owner[j] = tid, next += 0x40;
            } else {
                ev(tid, MALLET_OP_FREE, live[j], 0, 0, 0);
                live[j] = live[--nlive], owner[j] = owner[nlive];
            }
        } else {
            ev(tid, k == 9 ? MALLET_OP_MEMALIGN : MALLET_OP_MALLOC, next, 0, 1 + rnd(500), 0);
            live[nlive] = next, owner[nlive++] = tid, next += 0x40;
        }
        calls++;
    }
    /* all freed in the end: the replay in this process leaves nothing behind */
    for (size_t j = 0; j < nlive; j++, calls++) {
        uint32_t tid = 100 + (uint32_t)rnd(NT);
        *cross += owner[j] != tid;
        ev(tid, MALLET_OP_FREE, live[j], 0, 0, 0);
    }
    return calls;
}

static void test_streaming_many_threads(void)
{
    uint64_t cross;
    rng = 0x2545f4914f6cdd1dull;
    uint64_t calls = many_threads_trace(&cross);
    /* the whole form in memory until the end: no chunk before the end, no patch */
    loaded_t whole, tiny;
    if (prepare_opts(&whole, NULL, 1)) return;
    CHECK_EQ(whole.p.ops, calls);
    CHECK_EQ(whole.p.waits, cross);
    CHECK(cross > 1000);
    CHECK_EQ(whole.p.patches, 0);
    uint32_t with_ops = 0; /* thread 0 is kept for the process's main thread, here without ops */
    for (uint32_t t = 0; t < whole.nthreads; t++) with_ops += whole.nops[t] > 0;
    CHECK_EQ(whole.nops[0], 0);
    CHECK_EQ(whole.p.chunks, with_ops);
    /* tiny buffers: many chunks, flushed ops flagged by patches applied in several batches */
    mallet_prepare_opts_t opts = {.chunk_ops = 5, .buffer_ops = 40, .patch_cap = 7};
    rng = 0x2545f4914f6cdd1dull; /* the same trace again */
    many_threads_trace(&cross);
    if (prepare_opts(&tiny, &opts, 1)) return;
    CHECK_EQ(tiny.p.ops, calls);
    CHECK_EQ(tiny.p.waits, cross);
    CHECK(tiny.p.patches > 100);
    CHECK(tiny.p.chunks > calls / 5);
    CHECK_EQ(tiny.nthreads, whole.nthreads);
    CHECK_EQ(tiny.p.nslots, whole.p.nslots);
    /* the same streams, flags and extensions included (whole, they moved as buffers grew) */
    for (uint32_t t = 0; t < whole.nthreads && t < tiny.nthreads; t++) {
        CHECK_EQ(tiny.nops[t], whole.nops[t]);
        if (tiny.nops[t] == whole.nops[t])
            CHECK(!memcmp(tiny.full[t], whole.full[t], whole.nops[t] * sizeof(full_t)));
    }
    /* replayed for real (this process's malloc), whole and streamed: exactly the trace's calls */
    char e2[512];
    mallet_replay_result_t res;
    CHECK(mallet_replay_run(rpath, MALLET_TOUCH_FIRST, 0, &res, e2, sizeof e2) == 0);
    CHECK_EQ(res.ops, calls);
    CHECK_EQ(res.failed, 0);
    setenv("MALLET_REPLAY_OPS_MEM", "1000", 1); /* every thread streams, 5 ops at a time */
    int rc = mallet_replay_run(rpath, MALLET_TOUCH_FIRST, 0, &res, e2, sizeof e2);
    if (rc) fprintf(stderr, "replay: %s\n", e2);
    CHECK(rc == 0);
    CHECK_EQ(res.ops, calls);
    CHECK_EQ(res.failed, 0);
    unsetenv("MALLET_REPLAY_OPS_MEM");
    unload(&whole);
    unload(&tiny);
    unlink(path);
    unlink(rpath);
}

/* Rewrites n bytes at off of rpath. */
static void poke(uint64_t off, const void *b, size_t n)
{
    FILE *f = fopen(rpath, "r+b");
    CHECK(f && fseek(f, (long)off, SEEK_SET) == 0 && fwrite(b, 1, n, f) == n);
    if (f) fclose(f);
}

/* A damaged replay file gives one line that names it and says what is wrong; never a crash. */
static void test_corrupt_files(void)
{
    begin();
    ev(1, MALLET_OP_MALLOC, 0x100, 0, 8, 0);
    ev(2, MALLET_OP_FREE, 0x100, 0, 0, 0);
    loaded_t l;
    if (prepare_opts(&l, NULL, 0)) return;
    unload(&l);
    struct stat sb;
    CHECK(stat(rpath, &sb) == 0);
    char err[512];
    mallet_replay_result_t res;
    /* the ops start right after the 128-byte header: T1's malloc, then T2's wait and free and
     * the wait's extension */
    const uint64_t hdr = 128;
    const uint64_t op0 = hdr, op1 = hdr + 8, op2 = hdr + 16, x1 = hdr + 24;
    uint32_t big = 1000;
    poke(op0 + 4, &big, 4); /* T1's slot: past nslots */
    CHECK(mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == -1);
    CHECK(strstr(err, rpath) && strstr(err, "names a slot or op that does not exist") &&
          !strchr(err, '\n'));
    uint32_t zero = 0;
    poke(op0 + 4, &zero, 4);
    CHECK(mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == 0);
    CHECK_EQ(res.ops, 2);
    /* threads at once (header offset 116): 1 or 2 for its two threads, nothing else; with 1, T2
     * starts when T1 has run its malloc, the op it waits for */
    for (uint32_t at_once = 0; at_once < 4; at_once++) {
        poke(116, &at_once, 4);
        int ok = mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == 0;
        CHECK_EQ(ok, at_once == 1 || at_once == 2);
        if (ok) {
            CHECK_EQ(res.ops, 2);
        } else {
            CHECK(strstr(err, rpath) && strstr(err, "thread concurrency is out of range") &&
                  !strchr(err, '\n'));
        }
    }
    uint32_t two = 2;
    poke(116, &two, 4);
    uint8_t noflag = 0;
    poke(op0 + 1, &noflag, 1); /* the malloc T2 waits for is no longer published */
    CHECK(mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == -1);
    CHECK(strstr(err, "never published") != NULL);
    uint8_t flag = MALLET_ROP_AWAITED;
    poke(op0 + 1, &flag, 1);
    uint32_t far = 5;
    poke(op1 + 4, &far, 4); /* T2 waits for an op T1 does not have */
    CHECK(mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == -1);
    CHECK(strstr(err, "does not exist") != NULL);
    far = 0;
    poke(op1 + 4, &far, 4);
    uint32_t self = 1;
    poke(x1 + 4, &self, 4); /* T2 waits for itself: for an op not before the wait */
    CHECK(mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == -1);
    CHECK(strstr(err, "does not exist") != NULL);
    poke(x1 + 4, &zero, 4);
    uint8_t kind = 99;
    poke(op2, &kind, 1);
    CHECK(mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == -1);
    /* EXT where it cannot be, or missing: a free never has an extension, a wait always has one,
     * and every op with EXT has its own */
    const uint8_t wait = MALLET_ROP_WAIT | MALLET_ROP_EXT, ext = MALLET_ROP_EXT;
    const uint8_t bad_kinds[][2] = {{wait, MALLET_OP_FREE | ext},
                                    {wait, MALLET_OP_MALLOC | ext},
                                    {MALLET_ROP_WAIT, MALLET_OP_FREE},
                                    {MALLET_OP_MALLOC | ext, MALLET_OP_FREE}};
    for (int i = 0; i < 4; i++) {
        poke(op1, &bad_kinds[i][0], 1);
        poke(op2, &bad_kinds[i][1], 1);
        CHECK(mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == -1);
        CHECK(strstr(err, rpath) && strstr(err, "corrupt replay file") && !strchr(err, '\n'));
    }
    poke(op1, &wait, 1);
    kind = MALLET_OP_FREE;
    poke(op2, &kind, 1);
    CHECK(mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == 0);
    /* a replay file of another version is not this mallet's (the CLI makes it again) */
    mallet_prepared_info_t info;
    CHECK(mallet_prepared_peek(rpath, &info) == 0);
    uint32_t version = 7;
    poke(8, &version, 4);
    CHECK(mallet_prepared_peek(rpath, &info) == -1);
    CHECK(mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == -1);
    CHECK(strstr(err, "not a prepared replay of this mallet") != NULL);
    /* cut anywhere: never accepted (the index is at the end) */
    for (off_t cut = 0; cut < sb.st_size; cut += 7) {
        CHECK(truncate(rpath, cut) == 0);
        CHECK(mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == -1);
        CHECK(strstr(err, rpath) != NULL);
        if (cut < (off_t)hdr) CHECK(mallet_prepared_peek(rpath, &info) == -1);
    }
    unlink(rpath);
    CHECK(mallet_replay_run(rpath, 0, 0, &res, err, sizeof err) == -1);
}

/* check_waits on streams made by hand, three threads of a malloc, a wait and a free each (all
 * published): waits for ops before the other thread's wait can all be met; two threads each
 * waiting for the op after the other's wait deadlock, and a third waiting behind them stops too.
 * With fewer threads at once than three (the file's concurrency), a thread starts only when an
 * earlier one has ended (and not one that stays to the end): waits for a thread that cannot
 * start deadlock too. */
static void test_wait_cycles(void)
{
    static const struct {
        uint32_t waits_for[3], op[3]; /* each thread's wait: the thread and the op it names */
        uint32_t pool;                /* threads at once */
        int deadlock;
        uint32_t stuck;
        uint32_t stays; /* threads that keep their slot to the end (MALLET_RFILE_T_STAYS) */
    } cases[] = {
        {{1, 0, 0}, {0, 0, 0}, 3, 0, 0, 0}, /* crossing, each for the other's malloc */
        /* T0 for T1's free, T1 for T0's malloc, T2 for T0's free */
        {{1, 0, 0}, {2, 0, 2}, 3, 0, 0, 0},
        {{1, 0, 0}, {2, 2, 0}, 3, 1, 0, 0}, /* T0 and T1 each for the other's free */
        {{1, 2, 1}, {2, 2, 2}, 3, 1, 0, 0}, /* T1 and T2 each for the other's free, T0 behind */
        {{1, 2, 0}, {2, 2, 2}, 3, 1, 0, 0}, /* a cycle through all three */
        {{1, 2, 1}, {0, 2, 2}, 3, 1, 1, 0}, /* T1 and T2 as above, T0 for T1's malloc: T0 ends */
        {{1, 0, 0}, {0, 0, 0}, 1, 1, 0, 0}, /* crossing, one at a time: T1 cannot start */
        {{1, 0, 0}, {0, 0, 0}, 2, 0, 0, 0}, /* crossing, two at a time */
        {{2, 0, 0}, {0, 0, 0}, 2, 0, 0, 0}, /* T0 for T2's malloc: T2 starts when T1 ends */
        {{2, 2, 0}, {0, 0, 0}, 2, 1, 0, 0}, /* T0 and T1 for T2's malloc: T2 cannot start */
        /* T0 for T2's malloc, T1 stays after its ops: T2 cannot start; with three at once it can */
        {{2, 0, 0}, {0, 0, 0}, 2, 1, 0, 1u << 1},
        {{2, 0, 0}, {0, 0, 0}, 3, 0, 0, 1u << 1},
        {{1, 0, 0}, {0, 0, 0}, 2, 0, 0, 1u << 0}, /* crossing, T0 stays: T2 takes T1's slot */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mallet_rfile_thread_t th[3] = {{.nops = 3}, {.nops = 3}, {.nops = 3}};
        for (uint32_t t = 0; t < 3; t++)
            if (cases[c].stays >> t & 1) th[t].flags = MALLET_RFILE_T_STAYS;
        mallet_rfile_t rf = {.path = "hand.replay",
                             .nthreads = 3,
                             .threads = th,
                             .info = {.nthreads = 3, .concurrency = cases[c].pool}};
        mallet_rop_t ops[3][3];
        mallet_rop_ext_t exts[3][1];
        const mallet_rop_t *op_ptrs[3];
        const mallet_rop_ext_t *ext_ptrs[3];
        for (uint32_t t = 0; t < 3; t++) {
            ops[t][0] = (mallet_rop_t){MALLET_OP_MALLOC, MALLET_ROP_AWAITED, 8, t};
            ops[t][1] = (mallet_rop_t){MALLET_ROP_WAIT | MALLET_ROP_EXT, 0, 0, cases[c].op[t]};
            ops[t][2] = (mallet_rop_t){MALLET_OP_FREE, MALLET_ROP_AWAITED, 0, t};
            exts[t][0] = (mallet_rop_ext_t){0, cases[c].waits_for[t]};
            op_ptrs[t] = ops[t];
            ext_ptrs[t] = exts[t];
        }
        char err[512] = "";
        int rc = mallet_rfile_check_waits(&rf, op_ptrs, ext_ptrs, err, sizeof err);
        CHECK_EQ(rc, -cases[c].deadlock);
        if (!cases[c].deadlock) continue;
        char want[128];
        snprintf(want, sizeof want,
                 "hand.replay: corrupt replay file: threads wait for each other "
                 "(a deadlock): thread %u stops at op 1",
                 cases[c].stuck);
        CHECK_STREQ(err, want);
    }
}

/* rpath's threads wait for each other: refused before the run when the streams are held whole;
 * replayed with every thread streamed (so the waits are not run alone first) in a child, which
 * must end with one line saying so, rather than hang. */
static void check_deadlocked(void)
{
    char err[512];
    mallet_replay_result_t res;
    CHECK(mallet_replay_run(rpath, MALLET_TOUCH_NONE, 0, &res, err, sizeof err) == -1);
    CHECK(strstr(err, rpath) && strstr(err, "threads wait for each other (a deadlock)"));
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        dup2(fds[1], 2);
        setenv("MALLET_REPLAY_OPS_MEM", "8", 1); /* every thread streams */
        _exit(mallet_replay_run(rpath, MALLET_TOUCH_NONE, 0, &res, err, sizeof err) ? 3 : 0);
    }
    close(fds[1]);
    char out[1024] = "";
    ssize_t n = 0, k;
    while (n < (ssize_t)sizeof out - 1 &&
           (k = read(fds[0], out + n, sizeof out - 1 - (size_t)n)) > 0)
        n += k;
    close(fds[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    CHECK(strstr(out, "mallet-worker: ") == out && strstr(out, rpath) &&
          strstr(out, "threads wait for each other (a deadlock)") &&
          strchr(out, '\n') == out + strlen(out) - 1);
}

/* A replay file whose two threads wait for each other: refused before the run when the streams
 * are held whole; streamed, the worker finds its threads stuck and ends with one line instead of
 * sleeping for ever. Two damages: each wait moved to the op after the other's wait; and the
 * file's threads at once set to one, so that the main thread waits for a thread that cannot
 * start before it ends. */
static void test_deadlocked_file(void)
{
    for (int damage = 0; damage < 2; damage++) {
        begin();
        ev(1, MALLET_OP_MALLOC, 0x100, 0, 8, 0);
        ev(2, MALLET_OP_MALLOC, 0x200, 0, 8, 0);
        ev(2, MALLET_OP_FREE, 0x100, 0, 0, 0); /* waits for T1's malloc */
        ev(1, MALLET_OP_FREE, 0x200, 0, 0, 0); /* waits for T2's malloc */
        loaded_t l;
        if (prepare_opts(&l, NULL, 0)) return;
        CHECK_EQ(l.p.concurrency, 2);
        unload(&l);
        FILE *f = fopen(rpath, "r+b");
        CHECK(f != NULL);
        if (!f) return;
        if (damage == 0) {
            /* each wait (kind WAIT | EXT) now names op 2, the free after the other thread's
             * wait, which is published */
            uint8_t op[16];
            int waits = 0;
            uint64_t index = 0; /* the ops and extensions end where the index starts */
            CHECK(fseek(f, 104, SEEK_SET) == 0 && fread(&index, 8, 1, f) == 1);
            for (long off = 128; off + 16 <= (long)index && fseek(f, off, SEEK_SET) == 0 &&
                                 fread(op, 1, 16, f) == 16;
                 off += 8) {
                if (op[0] != (MALLET_ROP_WAIT | MALLET_ROP_EXT)) continue;
                uint32_t two = 2;
                memcpy(op + 4, &two, 4);
                op[9] = MALLET_ROP_AWAITED;
                CHECK(fseek(f, off, SEEK_SET) == 0 && fwrite(op, 1, 16, f) == 16);
                waits++;
            }
            CHECK_EQ(waits, 2);
        } else {
            uint32_t one = 1; /* threads at once, at offset 116 of the header */
            CHECK(fseek(f, 116, SEEK_SET) == 0 && fwrite(&one, 4, 1, f) == 1);
        }
        fclose(f);
        check_deadlocked();
        unlink(path);
        unlink(rpath);
    }
}

/* The threads alive at once in the merged order (the worker runs at most that many): the main
 * thread from the start to its last event, every other from its first event to its last. Each
 * case is a relay, every thread freeing the block of the one before, and replays in full. */
static void test_concurrency(void)
{
    static const struct {
        uint32_t tids[6]; /* the threads of a relay, in turn; 0: none */
        int main_last;    /* the main thread frees the last block (else the last thread) */
        uint32_t nthreads, concurrency;
    } cases[] = {
        {{1, 2, 3, 4}, 1, 4, 2},       /* main alive throughout, the others one after another */
        {{1, 2, 3, 4}, 0, 4, 1},       /* main only at the start: one at a time */
        {{7, 8, 9}, 0, 4, 1},          /* main never seen (thread 0 is kept for it) */
        {{1, 2, 3, 2, 3, 4}, 0, 4, 2}, /* 2 and 3 take turns, then 4 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        begin();
        uint64_t prev = 0, calls = 0;
        uint32_t last = 0;
        for (int i = 0; i < 6 && cases[c].tids[i]; i++) {
            uint64_t p = 0x1000 * (uint64_t)(i + 1);
            last = cases[c].tids[i];
            ev(last, MALLET_OP_MALLOC, p, 0, 16, 0);
            calls++;
            if (prev) ev(last, MALLET_OP_FREE, prev, 0, 0, 0), calls++;
            prev = p;
        }
        /* the last block freed too: nothing left live in the replay (LeakSanitizer) */
        ev(cases[c].main_last ? 1 : last, MALLET_OP_FREE, prev, 0, 0, 0), calls++;
        loaded_t l;
        if (prepare_opts(&l, NULL, 0)) return;
        CHECK_EQ(l.nthreads, cases[c].nthreads);
        CHECK_EQ(l.p.concurrency, cases[c].concurrency);
        unload(&l);
        mallet_replay_result_t res;
        char err[512];
        CHECK(mallet_replay_run(rpath, MALLET_TOUCH_FIRST, 0, &res, err, sizeof err) == 0);
        CHECK_EQ(res.ops, calls);
        CHECK_EQ(res.failed, 0);
        unlink(rpath);
    }
}

/* Thread ends as the recorder marks them: a thread alive from its first event to its end (idle
 * after its last event or not), one never marked to the end of the process; a trace without marks
 * says nothing, and there a thread's last event ends it. Three threads: T2 makes a block, T3
 * makes and frees one, the main thread frees T2's. The flags say how the replay ends each. */
static void test_thread_ends(void)
{
    enum { NONE = 0, EXITS = MALLET_RFILE_T_EXITS, STAYS = MALLET_RFILE_T_STAYS };
    static const struct {
        int marked;           /* the recorder marks thread ends */
        int t2_end, t3_end;   /* when T2 and T3 end: 0 never, 1 after their last event, 2 after
                               * everything (T2: after T3's events) */
        uint32_t concurrency; /* with the main thread */
        uint32_t flags[3];
    } cases[] = {
        {0, 0, 0, 2, {NONE, NONE, NONE}},    /* nothing known: T2 ends at its malloc */
        {1, 1, 1, 2, {STAYS, EXITS, EXITS}}, /* T2 ends before T3 starts */
        {1, 2, 1, 3, {STAYS, EXITS, EXITS}}, /* T2, idle, ends after T3 */
        {1, 0, 1, 3, {STAYS, STAYS, EXITS}}, /* T2 lives to the end */
        {1, 0, 0, 3, {STAYS, STAYS, STAYS}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        begin_marked(cases[c].marked);
        ev(1, MALLET_OP_MALLOC, 0x100, 0, 8, 0); /* the main thread first: index 0 */
        ev(2, MALLET_OP_MALLOC, 0x200, 0, 8, 0);
        if (cases[c].t2_end == 1) CHECK(mallet_writer_thread_exit(w, 2, clock_ + 5) == 0);
        ev(3, MALLET_OP_MALLOC, 0x300, 0, 16, 0);
        ev(3, MALLET_OP_FREE, 0x300, 0, 0, 0);
        if (cases[c].t3_end) CHECK(mallet_writer_thread_exit(w, 3, clock_ + 5) == 0);
        if (cases[c].t2_end == 2) CHECK(mallet_writer_thread_exit(w, 2, clock_ + 50) == 0);
        ev(1, MALLET_OP_FREE, 0x200, 0, 0, 0);
        ev(1, MALLET_OP_FREE, 0x100, 0, 0, 0);
        loaded_t l;
        if (prepare_opts(&l, NULL, 0)) return;
        CHECK_EQ(l.nthreads, 3);
        CHECK_EQ(l.p.concurrency, cases[c].concurrency);
        unload(&l);
        mallet_rfile_t rf;
        char err[512];
        CHECK(mallet_rfile_open(rpath, &rf, err, sizeof err) == 0);
        for (uint32_t t = 0; t < 3; t++)
            CHECK_EQ(rf.threads[t].flags, cases[c].flags[t]);
        mallet_rfile_close(&rf);
        mallet_replay_result_t res;
        CHECK(mallet_replay_run(rpath, MALLET_TOUCH_FIRST, 0, &res, err, sizeof err) == 0);
        CHECK_EQ(res.ops, 6);
        CHECK_EQ(res.failed, 0);
        unlink(rpath);
    }
}

/* A thread table's flags (24-byte entries at the index offset, header offset 104: u32 tid, u32
 * flags, ...): unknown ones are refused; a thread made to stay to the end where the threads at
 * once do not allow it leaves a thread that cannot start: refused whole, found streamed. */
static void test_thread_flags_damaged(void)
{
    begin();
    ev(1, MALLET_OP_MALLOC, 0x100, 0, 8, 0);
    ev(2, MALLET_OP_MALLOC, 0x200, 0, 8, 0);
    ev(2, MALLET_OP_FREE, 0x200, 0, 0, 0);
    ev(3, MALLET_OP_MALLOC, 0x300, 0, 8, 0);
    ev(1, MALLET_OP_FREE, 0x300, 0, 0, 0); /* waits for T3, which starts when T2 has ended */
    ev(1, MALLET_OP_FREE, 0x100, 0, 0, 0);
    loaded_t l;
    if (prepare_opts(&l, NULL, 0)) return;
    CHECK_EQ(l.p.concurrency, 2);
    unload(&l);
    uint64_t index = 0;
    FILE *f = fopen(rpath, "rb");
    CHECK(f && fseek(f, 104, SEEK_SET) == 0 && fread(&index, 8, 1, f) == 1);
    if (f) fclose(f);
    char err[512];
    mallet_replay_result_t res;
    static const uint32_t bad[] = {4, 3, 0x80000000u};
    for (int i = 0; i < 3; i++) {
        poke(index + 24 + 4, &bad[i], 4);
        CHECK(mallet_replay_run(rpath, MALLET_TOUCH_NONE, 0, &res, err, sizeof err) == -1);
        CHECK(strstr(err, rpath) && strstr(err, "a thread has unknown flags") &&
              !strchr(err, '\n'));
    }
    uint32_t exits = MALLET_RFILE_T_EXITS, stays = MALLET_RFILE_T_STAYS;
    poke(index + 24 + 4, &exits, 4);
    CHECK(mallet_replay_run(rpath, MALLET_TOUCH_NONE, 0, &res, err, sizeof err) == 0);
    CHECK_EQ(res.ops, 6);
    poke(index + 24 + 4, &stays, 4); /* T2 keeps the second slot: T3 never starts */
    check_deadlocked();
    unlink(path);
    unlink(rpath);
}

/* Thread serials anywhere in 32 bits (a damaged file; fuzz_prepare found 0xfffffffc wrapping the
 * dense table that held them, and a large one would have made it gigabytes): the threads are
 * told apart all the same. */
static void test_thread_serials(void)
{
    static const uint32_t map[] = {0, 0xfffffffcu, 0x80000000u, 0xfffffffdu, 7};
    begin();
    ev(1, MALLET_OP_MALLOC, 0x100, 0, 8, 0);
    ev(2, MALLET_OP_MALLOC, 0x200, 0, 8, 0);
    ev(3, MALLET_OP_FREE, 0x100, 0, 0, 0);
    ev(4, MALLET_OP_FREE, 0x200, 0, 0, 0);
    ev(2, MALLET_OP_MALLOC, 0x300, 0, 8, 0);
    ev(1, MALLET_OP_FREE, 0x300, 0, 0, 0);
    serial_map = map, serial_map_len = sizeof map / sizeof map[0];
    loaded_t l;
    int rc = prepare_opts(&l, NULL, 0);
    serial_map = NULL;
    if (rc) return;
    CHECK_EQ(l.nthreads, 4);
    CHECK_EQ(l.calls, 6);
    unload(&l);
    mallet_replay_result_t res;
    char err[512];
    CHECK(mallet_replay_run(rpath, MALLET_TOUCH_NONE, 0, &res, err, sizeof err) == 0);
    CHECK_EQ(res.ops, 6);
    CHECK_EQ(res.failed, 0);
    unlink(rpath);
}

/* A thread that resumes after a gap (no allocation call of its own for longer than the gap, here
 * 10 us: 10^4 to 3.3 x 10^4 cycles, whatever the fitted clock rate; events are 100 cycles apart,
 * a gap is 10^6) first waits for the last op another thread made before it resumed; so does one
 * that ends after a gap, at the end of its stream. Not after a short pause, not when its own
 * event was the last, and not inside a realloc (its two halves are one call). */
static void test_resumes(void)
{
    const mallet_prepare_opts_t opts = {.gap_ns = 10000};
    const uint8_t wait = MALLET_ROP_WAIT | MALLET_ROP_EXT;
    begin_marked(1);
    ev(1, MALLET_OP_MALLOC, 0x100, 0, 8, 0); /* T1 op 0 */
    ev(2, MALLET_OP_MALLOC, 0x200, 0, 8, 0); /* T2 op 0: 100 cycles after the start, no wait */
    ev(2, MALLET_OP_FREE, 0x200, 0, 0, 0);   /* T2 op 1 */
    clock_ += 1000000;
    ev(1, MALLET_OP_MALLOC, 0x300, 0, 8, 0); /* T1 op 1 waits for T2 op 1; op 2 */
    ev(2, MALLET_OP_MALLOC, 0x400, 0, 8, 0); /* T2 op 2 waits for T1 op 2; op 3 */
    clock_ += 1000000;
    ev(2, MALLET_OP_FREE, 0x400, 0, 0, 0);   /* T2 op 4: its own event was the last, no wait */
    ev(3, MALLET_OP_MALLOC, 0x500, 0, 8, 0); /* T3 op 0 waits for T2 op 4 (its first event, 2 x
                                              * 10^6 after the start); op 1 */
    clock_ += 1000000;
    ev(2, MALLET_OP_FREE, 0x100, 0, 0, 0);   /* T2 op 5 waits for T3 op 1, op 6 for T1 op 0 (the
                                              * block is T1's); op 7 */
    ev(3, MALLET_OP_FREE, 0x500, 0, 0, 0);   /* T3 op 2 waits for T2 op 7; op 3 */
    ev(2, MALLET_OP_MALLOC, 0x600, 0, 8, 0); /* T2 op 8 */
    clock_ += 1000000;
    CHECK(mallet_writer_thread_exit(w, 3, clock_) == 0); /* T3 op 4, its last, waits for T2 op 8 */
    ev(1, MALLET_OP_FREE, 0x300, 0, 0, 0); /* T1 op 3 waits for T3 op 4: T3 has ended; op 4 */
    ev(1, MALLET_OP_FREE, 0x600, 0, 0, 0); /* T1 op 5 waits for T2 op 8 (the block); op 6 */
    loaded_t l;
    if (prepare_opts(&l, &opts, 1)) return; /* the trace kept: prepared again without a gap */
    CHECK_EQ(l.nthreads, 3);
    CHECK_EQ(l.p.ops, 12);
    CHECK_EQ(l.p.waits, 9);
    CHECK_EQ(l.nops[0], 7);
    CHECK_EQ(l.nops[1], 9);
    CHECK_EQ(l.nops[2], 5);
    const full_t *t1 = l.full[0], *t2 = l.full[1], *t3 = l.full[2];
    static const struct {
        uint32_t thread, op, waits_for, its_op;
    } waits[] = {{0, 1, 1, 1}, {1, 2, 0, 2}, {2, 0, 1, 4}, {1, 5, 2, 1}, {1, 6, 0, 0},
                 {2, 2, 1, 7}, {2, 4, 1, 8}, {0, 3, 2, 4}, {0, 5, 1, 8}};
    for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
        const full_t *o = &l.full[waits[i].thread][waits[i].op];
        CHECK(o->o.kind == wait && o->x.aux == waits[i].waits_for && o->o.slot == waits[i].its_op);
        CHECK(l.full[waits[i].waits_for][waits[i].its_op].o.flags == MALLET_ROP_AWAITED);
    }
    CHECK(t2[3].o.kind == MALLET_OP_MALLOC && !t2[3].o.flags); /* nobody waits for it */
    CHECK(t1[2].o.kind == MALLET_OP_MALLOC && t3[3].o.kind == MALLET_OP_FREE);
    CHECK_EQ(l.p.gap_ns, 10000); /* in the header: a cache made with another gap is remade */
    unload(&l);
    mallet_replay_result_t res;
    char err[512];
    CHECK(mallet_replay_run(rpath, MALLET_TOUCH_FIRST, 0, &res, err, sizeof err) == 0);
    CHECK_EQ(res.ops, 12);
    CHECK_EQ(res.failed, 0);
    /* no gap: only the waits for blocks (T2 for T1's, T1 for T2's) */
    const mallet_prepare_opts_t none = {.gap_ns = MALLET_PREPARE_NO_GAP};
    char err2[512];
    const char *paths[] = {path};
    mallet_reader_t *r = mallet_reader_open(paths, 1, err2, sizeof err2);
    mallet_rfile_writer_t *rw;
    mallet_prepared_t p;
    CHECK(r && mallet_rfile_create(rpath, 1, 2, &rw) == 0);
    CHECK(r && mallet_prepare(r, 0, rw, &none, &p, err2, sizeof err2) == 0);
    mallet_reader_close(r);
    CHECK_EQ(p.waits, 2);
    CHECK_EQ(p.gap_ns, 0);
    CHECK(mallet_replay_run(rpath, MALLET_TOUCH_FIRST, 0, &res, err, sizeof err) == 0);
    CHECK_EQ(res.ops, 12);
    unlink(rpath);
    unlink(path);

    /* the last op of the thread before may be a wait (a resume whose call was then skipped): that
     * wait's end is published, and the replay goes through */
    begin();
    ev(1, MALLET_OP_MALLOC, 0x100, 0, 8, 0); /* T1 op 0 */
    ev(2, MALLET_OP_MALLOC, 0x200, 0, 8, 0); /* T2 op 0 */
    clock_ += 1000000;
    ev(1, MALLET_OP_FREE, 0x900, 0, 0, 0); /* T1: waits for T2 op 0 (op 1); the free is skipped */
    clock_ += 1000000;
    ev(2, MALLET_OP_FREE, 0x200, 0, 0, 0); /* T2: waits for T1 op 1, the wait (op 1), op 2 */
    ev(1, MALLET_OP_FREE, 0x100, 0, 0, 0); /* T1 op 2 */
    if (prepare_opts(&l, &opts, 0)) return;
    CHECK_EQ(l.p.skipped, 1);
    CHECK(l.full[0][1].o.kind == wait && l.full[0][1].o.flags == MALLET_ROP_AWAITED);
    CHECK(l.full[1][1].o.kind == wait && l.full[1][1].x.aux == 0 && l.full[1][1].o.slot == 1);
    unload(&l);
    CHECK(mallet_replay_run(rpath, MALLET_TOUCH_FIRST, 0, &res, err, sizeof err) == 0);
    CHECK_EQ(res.ops, 4);
    unlink(rpath);

    /* with the default gap (1 ms: 10^6 cycles or more), the same 10^6-cycle pauses make none */
    begin();
    ev(1, MALLET_OP_MALLOC, 0x100, 0, 8, 0);
    ev(2, MALLET_OP_MALLOC, 0x200, 0, 8, 0);
    clock_ += 900000;
    ev(1, MALLET_OP_FREE, 0x100, 0, 0, 0);
    ev(2, MALLET_OP_FREE, 0x200, 0, 0, 0);
    if (prepare(&l)) return;
    CHECK_EQ(l.p.waits, 0);
    unload(&l);
}

int main(void)
{
    test_one_thread();
    test_cross_thread();
    test_main_thread_first();
    test_recorded_rss();
    test_realloc_cases();
    test_call_numbers();
    test_slots_follow_live_blocks();
    test_many_live_blocks();
    test_slot_lines();
    test_streaming_many_threads();
    test_corrupt_files();
    test_wait_cycles();
    test_deadlocked_file();
    test_concurrency();
    test_thread_ends();
    test_thread_flags_damaged();
    test_thread_serials();
    test_resumes();
    return CHECK_DONE();
}
