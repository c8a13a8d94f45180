/* See stats.h: the heap model, the two analyses built on it (stats, check) and the stats
 * emitters (JSON and text from the one mallet_stats_t). */
#define _GNU_SOURCE
#include "stats.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

unsigned mallet_hist_bucket(uint64_t v)
{
    return v <= 1 ? 0 : 64u - (unsigned)__builtin_clzll(v - 1);
}

uint64_t mallet_hist_le(unsigned bucket)
{
    return bucket >= 64 ? UINT64_MAX : (uint64_t)1 << bucket;
}

/* ---- the block table ----------------------------------------------------------------------- *
 * Linear probing over a power-of-two array, Fibonacci-hashed (pointers are 16-byte aligned, so
 * their low bits say nothing), grown at 70% load. Deletion shifts the following cluster back, so
 * there are no tombstones and lookups stay short however many blocks come and go. */

/* A freed entry: check keeps them to tell a double free from a stray pointer, and both passes
 * keep those of processes that forked traced children, to recognise inherited blocks. */
#define TAG_FREED 0x80000000u

typedef struct block {
    uint64_t ptr;
    uint64_t size;     /* requested bytes; a freed entry: its birth (ns), for inherited() */
    uint64_t time_ns;  /* birth, or death for a freed entry */
    uint64_t callsite; /* allocating call, or freeing call for a freed entry */
    uint32_t tag;      /* 0: empty slot; else (file + 1) | TAG_FREED if freed */
    uint32_t thread;   /* allocating thread (recorder serial: tids are reused), or freeing one */
} block_t;

typedef struct table {
    block_t *slots;
    size_t cap, len; /* len: occupied slots */
    unsigned shift;  /* 64 - log2(cap) */
} table_t;

static size_t home(const table_t *t, uint32_t file, uint64_t ptr)
{
    uint64_t k = ptr ^ ((uint64_t)file << 48) ^ ((uint64_t)file >> 16);
    return (size_t)((k * 0x9e3779b97f4a7c15ull) >> t->shift);
}

static int table_init(table_t *t, size_t cap_log2)
{
    t->cap = (size_t)1 << cap_log2;
    t->shift = 64 - (unsigned)cap_log2;
    t->len = 0;
    t->slots = calloc(t->cap, sizeof *t->slots);
    return t->slots ? 0 : -1;
}

static void table_destroy(table_t *t)
{
    free(t->slots);
    t->slots = NULL;
}

static int same_key(const block_t *b, uint32_t file, uint64_t ptr)
{
    return b->ptr == ptr && (b->tag & ~TAG_FREED) == file + 1;
}

/* The entry for (file, ptr), live or freed, or NULL. */
static block_t *table_find(const table_t *t, uint32_t file, uint64_t ptr)
{
    size_t mask = t->cap - 1;
    for (size_t i = home(t, file, ptr);; i = (i + 1) & mask) {
        block_t *b = &t->slots[i];
        if (!b->tag) return NULL;
        if (same_key(b, file, ptr)) return b;
    }
}

static int table_grow(table_t *t)
{
    table_t n;
    if (table_init(&n, 65 - t->shift)) return -1;
    for (size_t i = 0; i < t->cap; i++) {
        const block_t *b = &t->slots[i];
        if (!b->tag) continue;
        size_t j = home(&n, (b->tag & ~TAG_FREED) - 1, b->ptr);
        while (n.slots[j].tag)
            j = (j + 1) & (n.cap - 1);
        n.slots[j] = *b;
    }
    n.len = t->len;
    free(t->slots);
    *t = n;
    return 0;
}

/* The entry for (file, ptr), created empty (tag set, the rest 0) if absent. NULL: no memory.
 * One probe sequence finds the key or the empty slot where it goes. */
static block_t *table_get(table_t *t, uint32_t file, uint64_t ptr, int *created)
{
    *created = 0;
    if ((t->len + 1) * 10 > t->cap * 7 && table_grow(t)) return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = home(t, file, ptr);; i = (i + 1) & mask) {
        block_t *b = &t->slots[i];
        if (same_key(b, file, ptr)) return b;
        if (b->tag) continue;
        memset(b, 0, sizeof *b);
        b->ptr = ptr;
        b->tag = file + 1;
        t->len++;
        *created = 1;
        return b;
    }
}

static void table_remove(table_t *t, block_t *b)
{
    size_t mask = t->cap - 1, i = (size_t)(b - t->slots), j = i;
    for (;;) {
        j = (j + 1) & mask;
        block_t *c = &t->slots[j];
        if (!c->tag) break;
        size_t k = home(t, (c->tag & ~TAG_FREED) - 1, c->ptr);
        /* c may move back to the hole at i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays) continue;
        t->slots[i] = *c;
        i = j;
    }
    memset(&t->slots[i], 0, sizeof t->slots[i]);
    t->len--;
}

/* ---- what an event does to the heap -------------------------------------------------------- */

typedef struct effect {
    uint64_t dies; /* pointer whose block this record kills, 0 if none */
    uint64_t born; /* pointer of the block this record creates, 0 if none */
    uint64_t size; /* requested bytes */
    int is_call;   /* the record counts as a call (a realloc's RELEASE half does not) */
    int is_alloc, is_free, failed;
} effect_t;

/* The reader yields a realloc of a non-NULL pointer in two halves (reader.h): the RELEASE half,
 * when the old block is given up, and the ALLOC half, when the call returns. The old block dies
 * in the first, the new one is born and the call is counted in the second; a WHOLE realloc does
 * both at once. */
static void rec_effect(const mallet_rec_t *rec, effect_t *fx)
{
    const mallet_event_t *ev = &rec->ev;
    memset(fx, 0, sizeof *fx);
    switch (ev->op) {
    case MALLET_OP_FREE:
        fx->is_call = fx->is_free = 1;
        fx->dies = ev->ptr;
        return;
    case MALLET_OP_REALLOC:
    case MALLET_OP_REALLOCARRAY:
        fx->size = ev->op == MALLET_OP_REALLOC ? ev->size : sat_mul(ev->nmemb, ev->size);
        if (rec->part != MALLET_PART_ALLOC && ev->old_ptr && (ev->ptr || fx->size == 0))
            fx->dies = ev->old_ptr;
        if (rec->part == MALLET_PART_RELEASE) return;
        fx->is_call = fx->is_alloc = 1;
        fx->born = ev->ptr;
        fx->failed = !ev->ptr && fx->size != 0;
        return;
    case MALLET_OP_CALLOC:
        fx->size = sat_mul(ev->nmemb, ev->size);
        break;
    case MALLET_OP_POSIX_MEMALIGN:
    case MALLET_OP_MALLOC:
    case MALLET_OP_ALIGNED_ALLOC:
    case MALLET_OP_MEMALIGN:
    case MALLET_OP_VALLOC:
    case MALLET_OP_PVALLOC:
        fx->size = ev->size;
        break;
    default:
        return; /* RSS samples change nothing */
    }
    fx->is_call = fx->is_alloc = 1;
    /* A failed posix_memalign leaves *memptr untouched: whatever the recorder saw is no block. */
    fx->born = ev->op == MALLET_OP_POSIX_MEMALIGN && ev->failed ? 0 : ev->ptr;
    fx->failed = !fx->born;
}

uint64_t mallet_trace_origin(const mallet_reader_t *r)
{
    uint64_t o = UINT64_MAX;
    for (unsigned i = 0; i < mallet_reader_nfiles(r); i++) {
        const mallet_trace_info_t *in = mallet_reader_info(r, i);
        if (in->start_ns && in->start_ns < o) o = in->start_ns;
    }
    return o;
}

/* A copy of s fit for JSON and a terminal: bytes that are not valid UTF-8 (jansson refuses
 * them, and a command line need not be UTF-8) and control characters become '?'. */
static char *clean_text(const char *s)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000}; /* no overlong forms */
    size_t n = strlen(s), o = 0;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        int ok = len && len <= n - i && (len > 1 || (c >= 0x20 && c != 0x7f));
        uint32_t cp = len > 1 ? c & (0x7fu >> len) : c;
        for (size_t k = 1; ok && k < len; k++) {
            ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
            cp = cp << 6 | ((unsigned char)s[i + k] & 0x3f);
        }
        if (ok && len > 1 && (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)))
            ok = 0;
        if (!ok) {
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, s + i, len);
        o += len, i += len;
    }
    out[o] = 0;
    return out;
}

/* A fork: the parent's file, and the window in which the child's copy of the parent's memory
 * was taken: from the parent's reading before the fork (the child's start) to the child's own
 * first reading (docs/TRACE_FORMAT.md 5, FORK_END_CYCLES; the start, when the trace does not
 * say). The parent's other threads run on meanwhile: a block they made or freed in it may be in
 * the child or not. */
typedef struct kid {
    uint64_t parent, fork_ns, fork_end_ns;
} kid_t;

static int cmp_kid(const void *a, const void *b)
{
    const kid_t *x = a, *y = b;
    if (x->parent != y->parent) return x->parent < y->parent ? -1 : 1;
    return x->fork_ns < y->fork_ns ? -1 : x->fork_ns > y->fork_ns;
}

/* State shared by both passes. */
typedef struct pass {
    mallet_reader_t *r;
    unsigned nfiles;
    table_t blocks;
    long *parent;           /* per file: the file of the traced process that forked it, or -1 */
    uint64_t *fork_ns;      /* per file: when it was forked (its recorder's start), 0 if unknown */
    uint64_t *fork_end_ns;  /* per file: the end of its fork's window (kid_t), >= fork_ns */
    uint64_t max_window_ns; /* the longest of those windows */
    uint8_t *keep_freed;    /* per file: keep freed entries (check: all; stats: parents only) */
    /* The forks, by parent then time (absolute ns): file f's are kids[kid_start[f] ..
     * kid_start[f + 1]). And the blocks of parents whose address was reused: the last life
     * before, kept when a child was forked during it (its copy of the block is the child's to
     * free, however the parent reused the address since). Keyed (parent, ptr), as blocks are. */
    kid_t *kids;
    size_t *kid_start;
    table_t past;
    uint64_t origin; /* resolved at the first event */
    int started;
} pass_t;

/* Links each forked process to its parent's trace: the file whose pid is its ppid and, as pids
 * are reused, that started last before it. */
static void find_parents(pass_t *p)
{
    for (unsigned i = 0; i < p->nfiles; i++) {
        const mallet_trace_info_t *in = mallet_reader_info(p->r, i);
        p->parent[i] = -1;
        /* The child's start is the fork (the recorder reads it in the parent), in the cycles
         * of the events' own times: ns read beside them would be converted otherwise. */
        p->fork_ns[i] =
            in->start_cycles ? mallet_reader_time_ns(p->r, in->start_cycles) : in->start_ns;
        uint64_t end = in->forked && in->fork_end_cycles && in->start_cycles
                           ? mallet_reader_time_ns(p->r, in->fork_end_cycles)
                           : 0;
        p->fork_end_ns[i] = end > p->fork_ns[i] ? end : p->fork_ns[i];
        for (unsigned j = 0; in->forked && j < p->nfiles; j++) {
            const mallet_trace_info_t *pj = mallet_reader_info(p->r, j);
            if (j == i || pj->pid != in->ppid) continue;
            if (in->start_ns && pj->start_ns > in->start_ns) continue;
            if (p->parent[i] < 0 || pj->start_ns > mallet_reader_info(p->r, p->parent[i])->start_ns)
                p->parent[i] = j;
        }
        if (p->parent[i] >= 0) p->keep_freed[p->parent[i]] = 1;
    }
    size_t n = 0;
    for (unsigned i = 0; i < p->nfiles; i++)
        if (p->parent[i] >= 0) {
            p->kids[n++] = (kid_t){(uint64_t)p->parent[i], p->fork_ns[i], p->fork_end_ns[i]};
            if (p->fork_end_ns[i] - p->fork_ns[i] > p->max_window_ns)
                p->max_window_ns = p->fork_end_ns[i] - p->fork_ns[i];
        }
    qsort(p->kids, n, sizeof *p->kids, cmp_kid);
    for (unsigned f = 0, k = 0; f <= p->nfiles; f++) {
        while (k < n && p->kids[k].parent < f)
            k++;
        p->kid_start[f] = k;
    }
}

/* True if a child of file was forked while a block lived from born to died (absolute ns): its
 * fork's window meets that life. */
static int fork_within(const pass_t *p, unsigned file, uint64_t born, uint64_t died)
{
    size_t first = p->kid_start[file], lo = first, hi = p->kid_start[file + 1];
    while (lo < hi) { /* the first fork at or after born */
        size_t mid = lo + (hi - lo) / 2;
        if (p->kids[mid].fork_ns < born)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < p->kid_start[file + 1] && p->kids[lo].fork_ns <= died) return 1;
    /* one that started before born, whose window reaches it (windows are short: a few back) */
    for (size_t k = lo; k > first && p->kids[k - 1].fork_ns + p->max_window_ns >= born; k--)
        if (p->kids[k - 1].fork_end_ns >= born) return 1;
    return 0;
}

/* A freed entry of file is about to live again at its address: if a child was forked during
 * its last life, that life is kept (p->past), for the child's free of its copy. */
static int keep_past(pass_t *p, unsigned file, const block_t *b)
{
    uint64_t born = b->size + p->origin, died = b->time_ns + p->origin;
    if (!p->keep_freed[file] || !fork_within(p, file, born, died)) return 0;
    int created;
    block_t *e = table_get(&p->past, file, b->ptr, &created);
    if (!e) return -1;
    if (!created && fork_within(p, file, e->size + p->origin, e->time_ns + p->origin) &&
        e->time_ns > b->time_ns)
        return 0;
    *e = *b;
    return 0;
}

/* The freed entry's bookkeeping, in both passes: its birth moves to size (block_t). */
static void mark_freed(block_t *b, uint64_t death_ns)
{
    b->size = b->time_ns;
    b->time_ns = death_ns;
    b->tag |= TAG_FREED;
}

/* True if ptr, unknown in file, is a block its process inherited across fork(): one that an
 * ancestor allocated before forking (the line to this file) and had not freed by then. The walk
 * is bounded: pids in a trace are untrusted and may form a cycle. */
static int inherited(const pass_t *p, unsigned file, uint64_t ptr)
{
    unsigned child = file;
    long f = p->parent[file];
    for (unsigned depth = 0; f >= 0 && depth < p->nfiles; depth++) {
        uint64_t fork_ns = p->fork_ns[child], fork_end_ns = p->fork_end_ns[child];
        const block_t *lives[2] = {table_find(&p->blocks, (uint32_t)f, ptr),
                                   table_find(&p->past, (uint32_t)f, ptr)};
        for (int k = 0; k < 2; k++) {
            const block_t *b = lives[k];
            if (!b) continue;
            if (!fork_ns) return 1;
            /* alive during the fork's window: a live entry born before its end, a freed one
             * born before its end and dead after its start */
            int freed = k == 1 || (b->tag & TAG_FREED);
            uint64_t born = (freed ? b->size : b->time_ns) + p->origin;
            if (born <= fork_end_ns && (!freed || b->time_ns + p->origin >= fork_ns)) return 1;
        }
        child = (unsigned)f;
        f = p->parent[f];
    }
    return 0;
}

static void pass_close(pass_t *p)
{
    table_destroy(&p->blocks);
    table_destroy(&p->past);
    free(p->kids);
    free(p->kid_start);
    free(p->parent);
    free(p->fork_ns);
    free(p->fork_end_ns);
    free(p->keep_freed);
}

static int pass_open(pass_t *p, mallet_reader_t *r, int keep_all_freed, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->r = r;
    p->nfiles = mallet_reader_nfiles(r);
    p->origin = mallet_trace_origin(r);
    if (p->nfiles >= TAG_FREED - 1) return mallet_errorf(err, errlen, "too many trace files");
    size_t n = p->nfiles ? p->nfiles : 1;
    p->parent = malloc(n * sizeof *p->parent);
    p->fork_ns = malloc(n * sizeof *p->fork_ns);
    p->fork_end_ns = malloc(n * sizeof *p->fork_end_ns);
    p->keep_freed = malloc(n);
    p->kids = malloc(n * sizeof *p->kids);
    p->kid_start = malloc((n + 1) * sizeof *p->kid_start);
    if (!p->parent || !p->fork_ns || !p->fork_end_ns || !p->keep_freed || !p->kids ||
        !p->kid_start || table_init(&p->blocks, 12) || table_init(&p->past, 4)) {
        pass_close(p);
        return mallet_errorf(err, errlen, "out of memory");
    }
    memset(p->keep_freed, keep_all_freed, n);
    find_parents(p);
    return 0;
}

/* Next record with its time made relative to the origin. 1, 0 at the end, -1 corrupt. */
static int pass_next(pass_t *p, mallet_rec_t *rec, char *err, size_t errlen)
{
    int n = mallet_reader_next(p->r, rec);
    if (n < 0) {
        return mallet_errorf(err, errlen, "%s", mallet_reader_error(p->r));
    }
    if (n == 0) return 0;
    if (!p->started && rec->time_ns < p->origin) p->origin = rec->time_ns;
    p->started = 1;
    rec->time_ns = rec->time_ns > p->origin ? rec->time_ns - p->origin : 0;
    return 1;
}

/* ---- stats --------------------------------------------------------------------------------- */

typedef struct stats_state {
    pass_t p;
    /* (file, thread) pairs seen making calls. An entry's callsite field holds the pointer its
     * thread's last call allocated (0: that call allocated nothing): a free of it by the
     * thread's next call ends a temporary allocation. */
    table_t threads;
    uint64_t live_bytes; /* modular arithmetic: exact again once absurd sizes are freed */
    uint64_t live_blocks;
    uint64_t *file_live;
    mallet_sites_t *sites;
} stats_state_t;

static int stats_birth(stats_state_t *s, mallet_stats_t *st, const mallet_rec_t *rec,
                       const effect_t *fx)
{
    int created;
    block_t *b = table_get(&s->p.blocks, rec->file, fx->born, &created);
    if (!b || (!created && (b->tag & TAG_FREED) && keep_past(&s->p, rec->file, b))) return -1;
    if (!created && !(b->tag & TAG_FREED)) { /* still live: its free was not recorded */
        st->missed_frees++;
        mallet_sites_release(s->sites, rec->file, b->callsite, b->size, 0);
        s->live_bytes -= b->size;
        s->file_live[rec->file] -= b->size;
        s->live_blocks--;
    }
    b->tag = rec->file + 1; /* live (again, if a freed entry was kept) */
    b->size = fx->size;
    b->time_ns = rec->time_ns;
    b->thread = rec->ev.thread;
    b->callsite = rec->ev.callsite;
    if (mallet_sites_add(s->sites, rec->file, rec->ev.callsite, fx->size)) return -1;
    st->bytes_requested = sat_add(st->bytes_requested, fx->size);
    st->size_hist.count[mallet_hist_bucket(fx->size)]++;
    s->live_bytes += fx->size;
    s->live_blocks++;
    uint64_t fl = s->file_live[rec->file] += fx->size;
    mallet_proc_stats_t *pr = &st->procs[rec->file];
    if (fl > pr->peak_live_bytes) pr->peak_live_bytes = fl;
    if (s->live_bytes > st->peak_live_bytes) {
        st->peak_live_bytes = s->live_bytes;
        st->peak_live_blocks = s->live_blocks;
        st->peak_live_time_ns = rec->time_ns;
        mallet_sites_peak(s->sites);
    }
    return 0;
}

/* th: the thread's entry in s->threads (its last call's block: a temporary allocation ends). */
static void stats_death(stats_state_t *s, mallet_stats_t *st, const mallet_rec_t *rec,
                        const effect_t *fx, const block_t *th)
{
    block_t *b = table_find(&s->p.blocks, rec->file, fx->dies);
    if (!b || (b->tag & TAG_FREED)) {
        if (!b && inherited(&s->p, rec->file, fx->dies))
            st->inherited_frees++;
        else if (fx->is_free)
            st->unknown_frees++;
        else
            st->unknown_reallocs++;
        return;
    }
    st->blocks_freed++;
    if (b->thread != rec->ev.thread) st->cross_thread_frees++;
    int temporary = th->callsite == fx->dies && b->thread == rec->ev.thread;
    st->temporary_allocs += (uint64_t)temporary;
    mallet_sites_release(s->sites, rec->file, b->callsite, b->size, temporary);
    uint64_t life = rec->time_ns > b->time_ns ? rec->time_ns - b->time_ns : 0;
    st->lifetime_hist.count[mallet_hist_bucket(life)]++;
    s->live_bytes -= b->size;
    s->file_live[rec->file] -= b->size;
    s->live_blocks--;
    if (s->p.keep_freed[rec->file]) { /* a forked child may free its copy later: see inherited */
        mark_freed(b, rec->time_ns);
    } else {
        table_remove(&s->p.blocks, b);
    }
}

static int stats_event(stats_state_t *s, mallet_stats_t *st, const mallet_rec_t *rec)
{
    const mallet_event_t *ev = &rec->ev;
    mallet_proc_stats_t *pr = &st->procs[rec->file];
    if (ev->op == MALLET_OP_RSS) {
        st->rss_samples++;
        pr->rss_samples++;
        if (ev->size > st->peak_rss_bytes) st->peak_rss_bytes = ev->size;
        if (ev->size > pr->peak_rss_bytes) pr->peak_rss_bytes = ev->size;
        return 0;
    }
    effect_t fx;
    rec_effect(rec, &fx);
    if (fx.is_call) {
        st->events++;
        if (ev->op < MALLET_OP_COUNT_) st->by_kind[ev->op]++;
        pr->events++;
    }
    int created;
    block_t *th = table_get(&s->threads, rec->file, ev->thread, &created);
    if (!th) return -1;
    if (created) {
        st->threads++;
        pr->threads++;
    }
    if (fx.is_free) {
        st->free_calls++;
        if (!fx.dies) st->null_frees++;
    }
    if (fx.is_alloc) {
        st->alloc_calls++;
        if (fx.failed) st->failed_calls++;
    }
    if (fx.dies) stats_death(s, st, rec, &fx, th);
    if (fx.born && stats_birth(s, st, rec, &fx)) return -1;
    th->callsite = fx.born;
    return 0;
}

void mallet_stats_free(mallet_stats_t *st)
{
    for (unsigned i = 0; st->procs && i < st->nprocs; i++)
        free(st->procs[i].cmdline);
    free(st->procs);
    mallet_sites_free_top(st->top_sites, st->ntop_sites);
    memset(st, 0, sizeof *st);
}

int mallet_stats_compute(mallet_reader_t *r, mallet_stats_t *st, char *err, size_t errlen)
{
    stats_state_t s;
    memset(st, 0, sizeof *st);
    memset(&s, 0, sizeof s);
    if (pass_open(&s.p, r, 0, err, errlen)) return -1;
    int rc = -1;
    st->nprocs = s.p.nfiles;
    st->processes = s.p.nfiles;
    st->procs = calloc(s.p.nfiles ? s.p.nfiles : 1, sizeof *st->procs);
    s.file_live = calloc(s.p.nfiles ? s.p.nfiles : 1, sizeof *s.file_live);
    s.sites = mallet_sites_new();
    if (!st->procs || !s.file_live || !s.sites || table_init(&s.threads, 6)) goto oom;
    for (unsigned i = 0; i < s.p.nfiles; i++) {
        const mallet_trace_info_t *in = mallet_reader_info(r, i);
        mallet_proc_stats_t *pr = &st->procs[i];
        pr->pid = in->pid, pr->ppid = in->ppid, pr->forked = in->forked;
        pr->ended_cleanly = in->ended_cleanly, pr->end_reason = in->end_reason;
        pr->thread_exits = in->thread_exits, pr->threads_exited = in->threads_exited;
        pr->cut = in->cut, pr->cut_bytes = in->cut_bytes;
        pr->trace_bytes = in->file_bytes;
        st->trace_bytes += in->file_bytes;
        if (!(pr->cmdline = clean_text(in->cmdline ? in->cmdline : ""))) goto oom;
    }
    mallet_rec_t rec;
    uint64_t last = 0;
    int n;
    while ((n = pass_next(&s.p, &rec, err, errlen)) > 0) {
        if (stats_event(&s, st, &rec)) goto oom;
        last = rec.time_ns;
    }
    if (n < 0) goto out;
    st->origin_ns = s.p.started ? s.p.origin : 0;
    st->duration_ns = last;
    for (size_t i = 0; i < s.p.blocks.cap; i++) {
        const block_t *b = &s.p.blocks.slots[i];
        if (!b->tag || (b->tag & TAG_FREED)) continue;
        mallet_proc_stats_t *pr = &st->procs[b->tag - 1];
        pr->leaked_blocks++;
        pr->leaked_bytes = sat_add(pr->leaked_bytes, b->size);
        st->leaked_blocks++;
        st->leaked_bytes = sat_add(st->leaked_bytes, b->size);
    }
    st->sites = mallet_sites_count(s.sites);
    long top = mallet_sites_top(s.sites, MALLET_TOP_SITES, &st->top_sites);
    if (top < 0) goto oom;
    st->ntop_sites = (size_t)top;
    rc = 0;
    goto out;
oom:
    mallet_errorf(err, errlen, "out of memory");
out:
    table_destroy(&s.threads);
    mallet_sites_free(s.sites);
    free(s.file_live);
    pass_close(&s.p);
    if (rc) mallet_stats_free(st);
    return rc;
}

/* ---- check --------------------------------------------------------------------------------- */

static int check_problem(mallet_check_t *c, const mallet_rec_t *rec, int kind, const block_t *b)
{
    c->problems_total++;
    switch (kind) {
    case MALLET_PROBLEM_DOUBLE_FREE:
        c->double_frees++;
        break;
    case MALLET_PROBLEM_UNKNOWN_FREE:
        c->unknown_frees++;
        break;
    case MALLET_PROBLEM_REALLOC_FREED:
        c->realloc_freed++;
        break;
    default:
        c->realloc_unknown++;
        break;
    }
    if (c->nproblems >= MALLET_CHECK_MAX_PROBLEMS) return 0;
    if (c->nproblems % 256 == 0) {
        mallet_problem_t *np = realloc(c->problems, (c->nproblems + 256) * sizeof *np);
        if (!np) return -1;
        c->problems = np;
    }
    mallet_problem_t *pb = &c->problems[c->nproblems++];
    memset(pb, 0, sizeof *pb);
    pb->kind = kind;
    pb->op = rec->ev.op;
    pb->file = rec->file;
    pb->tid = rec->ev.tid;
    pb->time_ns = rec->time_ns;
    pb->ptr = rec->ev.op == MALLET_OP_FREE ? rec->ev.ptr : rec->ev.old_ptr;
    pb->callsite = rec->ev.callsite;
    if (b) {
        pb->first_callsite = b->callsite;
        pb->first_time_ns = b->time_ns;
    }
    return 0;
}

static int check_event(pass_t *p, mallet_check_t *c, const mallet_rec_t *rec)
{
    effect_t fx;
    rec_effect(rec, &fx);
    if (fx.dies) {
        block_t *b = table_find(&p->blocks, rec->file, fx.dies);
        if (b && !(b->tag & TAG_FREED)) { /* a normal free: remember who freed it */
            mark_freed(b, rec->time_ns);
            b->callsite = rec->ev.callsite;
            b->thread = rec->ev.thread;
        } else if (!b && inherited(p, rec->file, fx.dies)) {
            c->inherited_frees++;
        } else {
            int kind = fx.is_free
                           ? (b ? MALLET_PROBLEM_DOUBLE_FREE : MALLET_PROBLEM_UNKNOWN_FREE)
                           : (b ? MALLET_PROBLEM_REALLOC_FREED : MALLET_PROBLEM_REALLOC_UNKNOWN);
            if (check_problem(c, rec, kind, b)) return -1;
        }
    }
    if (fx.born) {
        int created;
        block_t *b = table_get(&p->blocks, rec->file, fx.born, &created);
        if (!b || (!created && (b->tag & TAG_FREED) && keep_past(p, rec->file, b))) return -1;
        b->tag = rec->file + 1; /* live again if it was freed */
        b->size = fx.size;
        b->time_ns = rec->time_ns;
        b->thread = rec->ev.thread;
        b->callsite = rec->ev.callsite;
    }
    return 0;
}

static int cmp_leak_key(const void *a, const void *b)
{
    const mallet_leak_t *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return x->callsite < y->callsite ? -1 : x->callsite > y->callsite;
}

static int cmp_leak_size(const void *a, const void *b)
{
    const mallet_leak_t *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    if (x->blocks != y->blocks) return x->blocks > y->blocks ? -1 : 1;
    return cmp_leak_key(a, b);
}

/* True if the block's image ended by exec, which released its memory. */
static int released_by_exec(mallet_reader_t *r, const block_t *b)
{
    const mallet_trace_info_t *in = mallet_reader_info(r, b->tag - 1);
    return in && in->ended_cleanly && in->end_reason == MALLET_END_EXEC;
}

/* Groups the live blocks by (file, callsite). */
static int check_leaks(mallet_reader_t *r, const table_t *t, mallet_check_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].tag && !(t->slots[i].tag & TAG_FREED)) n++;
    if (n == 0) return 0;
    mallet_leak_t *l = malloc(n * sizeof *l);
    if (!l) return -1;
    n = 0;
    for (size_t i = 0; i < t->cap; i++) {
        const block_t *b = &t->slots[i];
        if (!b->tag || (b->tag & TAG_FREED)) continue;
        if (released_by_exec(r, b)) {
            c->exec_blocks++;
            c->exec_bytes = sat_add(c->exec_bytes, b->size);
            continue;
        }
        l[n++] = (mallet_leak_t){b->tag - 1, b->callsite, 1, b->size};
        c->leaked_blocks++;
        c->leaked_bytes = sat_add(c->leaked_bytes, b->size);
    }
    qsort(l, n, sizeof *l, cmp_leak_key);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && !cmp_leak_key(&l[k - 1], &l[i])) {
            l[k - 1].blocks++;
            l[k - 1].bytes = sat_add(l[k - 1].bytes, l[i].bytes);
        } else {
            l[k++] = l[i];
        }
    }
    qsort(l, k, sizeof *l, cmp_leak_size);
    c->leaks = l;
    c->nleaks = k;
    return 0;
}

void mallet_check_free(mallet_check_t *c)
{
    free(c->leaks);
    free(c->problems);
    memset(c, 0, sizeof *c);
}

int mallet_check_compute(mallet_reader_t *r, mallet_check_t *c, char *err, size_t errlen)
{
    pass_t p;
    memset(c, 0, sizeof *c);
    if (pass_open(&p, r, 1, err, errlen)) return -1;
    mallet_rec_t rec;
    int n, rc = -1;
    while ((n = pass_next(&p, &rec, err, errlen)) > 0)
        if (rec.ev.op != MALLET_OP_RSS && check_event(&p, c, &rec)) break;
    if (n > 0 || (n == 0 && check_leaks(r, &p.blocks, c)))
        mallet_errorf(err, errlen, "out of memory");
    else if (n == 0)
        rc = 0;
    c->origin_ns = p.started ? p.origin : 0;
    pass_close(&p);
    if (rc) mallet_check_free(c);
    return rc;
}

/* ---- stats emitters ------------------------------------------------------------------------ */

/* jansson integers are signed 64-bit; a count beyond that (only a hostile trace has one) is
 * given as a real rather than wrapped negative. */
static json_t *json_u64(uint64_t v)
{
    return v <= (uint64_t)INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

static double fraction(uint64_t part, uint64_t whole)
{
    return whole ? (double)part / (double)whole : 0.0;
}

/* Buckets from the first to the last non-empty one. */
static void hist_range(const mallet_hist_t *h, unsigned *lo, unsigned *hi)
{
    *lo = 0, *hi = 0;
    for (unsigned i = 0; i < MALLET_HIST_BUCKETS; i++) {
        if (!h->count[i]) continue;
        if (!*hi) *lo = i;
        *hi = i + 1;
    }
}

static json_t *hist_json(const mallet_hist_t *h)
{
    json_t *a = json_array();
    unsigned lo, hi;
    hist_range(h, &lo, &hi);
    for (unsigned i = lo; a && i < hi; i++) {
        json_t *o = json_pack("{s:o, s:o}", "le", json_u64(mallet_hist_le(i)), "count",
                              json_u64(h->count[i]));
        if (!o || json_array_append_new(a, o)) json_decref(a), a = NULL;
    }
    return a;
}

/* How a process ended, NULL if its trace has no END chunk. */
static const char *end_name(const mallet_proc_stats_t *p)
{
    if (!p->ended_cleanly) return NULL;
    switch (p->end_reason) {
    case MALLET_END_EXEC:
        return "exec";
    case MALLET_END__EXIT:
        return "_exit";
    default:
        return "exit";
    }
}

static json_t *proc_json(const mallet_proc_stats_t *p)
{
    return json_pack(
        "{s:I, s:I, s:s, s:b, s:o, s:o, s:o, s:b, s:s?, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
        "pid", (json_int_t)p->pid, "ppid", (json_int_t)p->ppid, "cmdline", p->cmdline, "forked",
        p->forked, "events", json_u64(p->events), "threads", json_u64(p->threads), "threads_exited",
        p->thread_exits ? json_u64(p->threads_exited) : json_null(), "ended_cleanly",
        p->ended_cleanly, "end_reason", end_name(p), "cut", p->cut, "cut_bytes",
        json_u64(p->cut_bytes), "peak_live_bytes", json_u64(p->peak_live_bytes), "leaked_bytes",
        json_u64(p->leaked_bytes), "leaked_blocks", json_u64(p->leaked_blocks), "rss_samples",
        json_u64(p->rss_samples), "peak_rss_bytes", json_u64(p->peak_rss_bytes), "trace_bytes",
        json_u64(p->trace_bytes));
}

json_t *mallet_stats_json(const mallet_stats_t *st)
{
    json_t *kinds = json_object(), *procs = json_array();
    for (unsigned op = 1; kinds && op < MALLET_OP_COUNT_; op++)
        if (op != MALLET_OP_RSS &&
            json_object_set_new(kinds, mallet_op_name(op), json_u64(st->by_kind[op])))
            json_decref(kinds), kinds = NULL;
    for (unsigned i = 0; procs && i < st->nprocs; i++) {
        json_t *o = proc_json(&st->procs[i]);
        if (!o || json_array_append_new(procs, o)) json_decref(procs), procs = NULL;
    }
    /* json_pack steals the "o" values even when it fails, so nothing leaks on the error path. */
    json_t *root = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
        " s:o, s:o, s:f, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
        "events", json_u64(st->events), "alloc_calls", json_u64(st->alloc_calls), "failed_calls",
        json_u64(st->failed_calls), "free_calls", json_u64(st->free_calls), "null_frees",
        json_u64(st->null_frees), "unknown_frees", json_u64(st->unknown_frees), "unknown_reallocs",
        json_u64(st->unknown_reallocs), "inherited_frees", json_u64(st->inherited_frees),
        "missed_frees", json_u64(st->missed_frees), "threads", json_u64(st->threads), "processes",
        json_u64(st->processes), "by_kind", kinds, "bytes_requested", json_u64(st->bytes_requested),
        "peak_live_bytes", json_u64(st->peak_live_bytes), "peak_live_blocks",
        json_u64(st->peak_live_blocks), "peak_live_time_ns", json_u64(st->peak_live_time_ns),
        "leaked_bytes", json_u64(st->leaked_bytes), "leaked_blocks", json_u64(st->leaked_blocks),
        "cross_thread_frees", json_u64(st->cross_thread_frees), "cross_thread_free_fraction",
        fraction(st->cross_thread_frees, st->blocks_freed), "blocks_freed",
        json_u64(st->blocks_freed), "temporary_allocs", json_u64(st->temporary_allocs),
        "size_histogram", hist_json(&st->size_hist), "lifetime_histogram",
        hist_json(&st->lifetime_hist), "rss_samples", json_u64(st->rss_samples), "peak_rss_bytes",
        json_u64(st->peak_rss_bytes), "duration_ns", json_u64(st->duration_ns), "trace_bytes",
        json_u64(st->trace_bytes));
    if (root && json_object_set_new(root, "per_process", procs))
        json_decref(root), root = NULL;
    else if (!root)
        json_decref(procs);
    json_t *sites = json_array();
    for (size_t i = 0; sites && i < st->ntop_sites; i++) {
        const mallet_site_t *t = &st->top_sites[i];
        char addr[32];
        snprintf(addr, sizeof addr, "0x%" PRIx64, t->callsite);
        json_t *o =
            json_pack("{s:s, s:I, s:o, s:o, s:o, s:o, s:o}", "site", t->name ? t->name : addr,
                      "process", (json_int_t)t->file, "calls", json_u64(t->calls), "bytes",
                      json_u64(t->bytes), "peak_bytes", json_u64(t->peak_bytes), "peak_blocks",
                      json_u64(t->peak_blocks), "temporary", json_u64(t->temporary));
        if (!o || json_array_append_new(sites, o)) json_decref(sites), sites = NULL;
    }
    if (root && (!sites || json_object_set_new(root, "sites", json_u64(st->sites)) ||
                 json_object_set_new(root, "top_sites", sites)))
        json_decref(root), root = NULL;
    else if (!root)
        json_decref(sites);
    return root;
}

const char *mallet_human_bytes(uint64_t v, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double d = (double)v;
    unsigned u = 0;
    while (d >= 1024 && u < 6)
        d /= 1024, u++;
    if (u == 0)
        snprintf(buf, len, "%" PRIu64 " B", v);
    else
        snprintf(buf, len, "%.1f %s", d, unit[u]);
    return buf;
}

/* "4514 bytes (4.4 KiB)": the exact count, and a readable one when they differ. */
static const char *bytes_text(uint64_t v, char *buf, size_t len)
{
    char h[32];
    if (v < 1024)
        snprintf(buf, len, "%" PRIu64 " bytes", v);
    else
        snprintf(buf, len, "%" PRIu64 " bytes (%s)", v, mallet_human_bytes(v, h, sizeof h));
    return buf;
}

static const char *human_ns(uint64_t ns, char *buf, size_t len)
{
    if (ns < 1000)
        snprintf(buf, len, "%" PRIu64 " ns", ns);
    else if (ns < 1000000)
        snprintf(buf, len, "%.3f us", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, len, "%.3f ms", (double)ns / 1e6);
    else
        snprintf(buf, len, "%.3f s", (double)ns / 1e9);
    return buf;
}

static void hist_text(FILE *out, const char *title, const mallet_hist_t *h, int is_time)
{
    unsigned lo, hi;
    uint64_t max = 0;
    hist_range(h, &lo, &hi);
    fprintf(out, "\n%s:%s\n", title, hi ? "" : " (none)");
    for (unsigned i = lo; i < hi; i++)
        if (h->count[i] > max) max = h->count[i];
    for (unsigned i = lo; i < hi; i++) {
        char b[32], bar[41];
        uint64_t le = mallet_hist_le(i);
        size_t w = max ? (size_t)((double)h->count[i] * 40.0 / (double)max + 0.999) : 0;
        memset(bar, '#', w);
        bar[w] = 0;
        if (i == 64)
            snprintf(b, sizeof b, "%s", "2^64");
        else if (is_time)
            human_ns(le, b, sizeof b);
        else
            mallet_human_bytes(le, b, sizeof b);
        fprintf(out, "  <= %-11s %12" PRIu64 "  %s\n", b, h->count[i], bar);
    }
}

static void site_text(const mallet_stats_t *st, const mallet_site_t *t, FILE *out)
{
    if (t->name)
        fputs(t->name, out);
    else
        fprintf(out, "0x%" PRIx64, t->callsite);
    if (st->nprocs > 1) fprintf(out, "  [pid %" PRId64 "]", st->procs[t->file].pid);
    fputc('\n', out);
}

static int by_peak_bytes(const void *a, const void *b)
{
    const mallet_site_t *x = *(const mallet_site_t *const *)a,
                        *y = *(const mallet_site_t *const *)b;
    if (x->peak_bytes != y->peak_bytes) return x->peak_bytes > y->peak_bytes ? -1 : 1;
    return x < y ? -1 : x > y; /* the table's order (by calls) among equals */
}

/* heaptrack's "peak memory consumers": the top sites by what they had live at the peak. */
static void peak_text(const mallet_stats_t *st, FILE *out)
{
    const mallet_site_t **v = malloc(st->ntop_sites * sizeof *v);
    if (!v) return;
    size_t n = 0;
    for (size_t i = 0; i < st->ntop_sites; i++)
        if (st->top_sites[i].peak_bytes) v[n++] = &st->top_sites[i];
    qsort(v, n, sizeof *v, by_peak_bytes);
    if (n)
        fprintf(out, "\nlive at the peak, by site:\n  %14s %10s  %s\n", "bytes", "blocks", "site");
    for (size_t i = 0; i < n && i < MALLET_TOP_SITES; i++) {
        fprintf(out, "  %14" PRIu64 " %10" PRIu64 "  ", v[i]->peak_bytes, v[i]->peak_blocks);
        site_text(st, v[i], out);
    }
    free(v);
}

int mallet_stats_write_text(const mallet_stats_t *st, FILE *out)
{
    char a[64], b[32];
    fprintf(out, "processes            %" PRIu64 "\n", st->processes);
    fprintf(out, "threads              %" PRIu64 "\n", st->threads);
    fprintf(out, "duration             %s\n", human_ns(st->duration_ns, a, sizeof a));
    fprintf(out, "trace size           %" PRIu64 " bytes (%.2f an event)\n", st->trace_bytes,
            st->events ? (double)st->trace_bytes / (double)st->events : 0.0);
    fprintf(out, "events               %" PRIu64 " allocation calls\n", st->events);
    for (unsigned op = 1; op < MALLET_OP_COUNT_; op++)
        if (st->by_kind[op])
            fprintf(out, "  %-18s %" PRIu64 "\n", mallet_op_name(op), st->by_kind[op]);
    fprintf(out, "alloc calls          %" PRIu64 " (%" PRIu64 " failed)\n", st->alloc_calls,
            st->failed_calls);
    fprintf(out,
            "free calls           %" PRIu64 " (%" PRIu64 " of NULL, %" PRIu64
            " of a pointer not live)\n",
            st->free_calls, st->null_frees, st->unknown_frees);
    if (st->unknown_reallocs)
        fprintf(out, "reallocs of a pointer not live  %" PRIu64 "\n", st->unknown_reallocs);
    if (st->inherited_frees)
        fprintf(out, "frees of blocks inherited across fork  %" PRIu64 "\n", st->inherited_frees);
    if (st->missed_frees)
        fprintf(out, "allocations of a still-live pointer (free not recorded)  %" PRIu64 "\n",
                st->missed_frees);
    fprintf(out, "bytes requested      %s\n", bytes_text(st->bytes_requested, a, sizeof a));
    fprintf(out, "peak live            %s in %" PRIu64 " blocks at %s\n",
            bytes_text(st->peak_live_bytes, a, sizeof a), st->peak_live_blocks,
            human_ns(st->peak_live_time_ns, b, sizeof b));
    fprintf(out, "cross-thread frees   %" PRIu64 " of %" PRIu64 " blocks freed (%.1f%%)\n",
            st->cross_thread_frees, st->blocks_freed,
            100.0 * fraction(st->cross_thread_frees, st->blocks_freed));
    fprintf(out,
            "temporary allocs     %" PRIu64 " of %" PRIu64
            " blocks freed (%.1f%%): by the thread's next call\n",
            st->temporary_allocs, st->blocks_freed,
            100.0 * fraction(st->temporary_allocs, st->blocks_freed));
    fprintf(out, "live at end          %s in %" PRIu64 " blocks\n",
            bytes_text(st->leaked_bytes, a, sizeof a), st->leaked_blocks);
    if (st->rss_samples)
        fprintf(out, "rss                  peak %s, %" PRIu64 " samples\n",
                bytes_text(st->peak_rss_bytes, a, sizeof a), st->rss_samples);
    if (st->ntop_sites) {
        fprintf(out, "\ntop allocation sites (of %" PRIu64 "), by calls:\n", st->sites);
        fprintf(out, "  %12s %14s %14s %10s  %s\n", "calls", "bytes", "live at peak", "temporary",
                "site");
        for (size_t i = 0; i < st->ntop_sites; i++) {
            const mallet_site_t *t = &st->top_sites[i];
            fprintf(out, "  %12" PRIu64 " %14" PRIu64 " %14" PRIu64 " %10" PRIu64 "  ", t->calls,
                    t->bytes, t->peak_bytes, t->temporary);
            site_text(st, t, out);
        }
        peak_text(st, out);
    }
    hist_text(out, "request sizes", &st->size_hist, 0);
    hist_text(out, "lifetimes", &st->lifetime_hist, 1);
    fprintf(out, "\nper process:\n");
    for (unsigned i = 0; i < st->nprocs; i++) {
        const mallet_proc_stats_t *p = &st->procs[i];
        fprintf(out, "  pid %" PRId64 " (ppid %" PRId64 "%s) %s\n", p->pid, p->ppid,
                p->forked ? ", forked" : "", p->cmdline[0] ? p->cmdline : "(no command line)");
        fprintf(out,
                "    %" PRIu64 " events, %" PRIu64 " threads, peak live %" PRIu64 " bytes, %" PRIu64
                " bytes in %" PRIu64 " blocks live at end\n",
                p->events, p->threads, p->peak_live_bytes, p->leaked_bytes, p->leaked_blocks);
        if (p->threads_exited)
            fprintf(out, "    %" PRIu64 " threads ended before the process\n", p->threads_exited);
        if (p->rss_samples)
            fprintf(out, "    peak rss %" PRIu64 " bytes (%" PRIu64 " samples)\n",
                    p->peak_rss_bytes, p->rss_samples);
        if (!p->ended_cleanly)
            fprintf(out, "    did not end cleanly (no END chunk: killed, crashed or still "
                         "running)\n");
        else if (p->end_reason != MALLET_END_EXIT)
            fprintf(out, "    ended by %s\n", end_name(p));
        if (p->cut)
            fprintf(out, "    trace was cut (%" PRIu64 " bytes of an incomplete chunk ignored)\n",
                    p->cut_bytes);
    }
    return ferror(out) ? -1 : 0;
}
