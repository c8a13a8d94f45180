/* How small could a trace of this recording be, and still say which block each free releases (what
 * a faithful replay needs)? Estimates (docs/PERFORMANCE.md, "How small a trace can be"): the
 * events of TRACE re-encoded with a model of the allocator, off line, as columns, each compressed
 * by zstd at level 19, and each column's order-0 entropy (what an arithmetic coder of its values
 * would take) -- with no time, no thread and no callsite at all, which a real trace needs on top.
 * - op: per event, a byte: a free, or an allocation and how its address was predicted: the block
 *   freed last by this thread in the same size class (glibc's chunk size), or the one before it
 *   ... (8 deep: allocators reuse a class's blocks last-in first-out), or not predicted;
 * - size: an allocation's size, as a LEB128 varint;
 * - free: which of the thread's live blocks a free releases, as its rank among them by age (0:
 *   the newest), a varint; a block the thread did not allocate escapes to the address column;
 * - addr: the address of an allocation not predicted (or a free escaped), as a varint of the
 *   zigzag difference to the previous one.
 * heaptrack's trace stores for each free only the (size, backtrace) index of the block, not which
 * block (`zstd -dc heaptrack.*.zst`: lines "+ IDX" and "- IDX"): less than this.
 * usage: pack_bound TRACE... */
#define _GNU_SOURCE
#include "trace/reader.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* A column: its values as LEB128 varints, and how often each value below HIST_MAX came (for
 * its order-0 entropy: what an arithmetic coder of the same values, each coded alone with its
 * frequency, would take; larger values count as their varint's bits). */
#define HIST_MAX (1u << 20)
typedef struct col {
    uint8_t *p;
    size_t len, cap;
    uint32_t *hist;
    uint64_t counted, escape_bits;
} col_t;

static void col_put(col_t *c, uint64_t v) /* LEB128 */
{
    if (!c->hist && !(c->hist = calloc(HIST_MAX, sizeof *c->hist))) abort();
    if (v < HIST_MAX) {
        c->hist[v]++;
        c->counted++;
    } else {
        for (uint64_t w = v; w; w >>= 7)
            c->escape_bits += 8;
    }
    if (c->cap - c->len < 10) {
        c->cap = c->cap ? c->cap * 2 : 1 << 20;
        if (!(c->p = realloc(c->p, c->cap))) abort();
    }
    do {
        c->p[c->len++] = (uint8_t)((v & 127) | (v > 127 ? 128 : 0));
        v >>= 7;
    } while (v);
}

/* A live block of a thread: its allocation number (for its rank) and size class. */
typedef struct live {
    uint64_t ptr, seq;
    uint32_t cls;
    uint32_t used; /* 0 empty, 1 live, 2 deleted */
} live_t;

#define DEPTH 8
#define CLASSES 4096 /* classes of 16 bytes: blocks up to 64 KiB are predicted */

typedef struct thread {
    uint32_t serial;
    live_t *tab; /* open addressing by pointer */
    size_t tab_cap, tab_used;
    uint32_t *fen; /* Fenwick tree over allocation numbers: 1 while that block lives */
    uint64_t seq, fen_cap, nlive;
    uint64_t freed[CLASSES][DEPTH]; /* per class, the last blocks freed, newest first */
} thread_t;

static col_t ops, sizes, frees, addrs;
static uint64_t last_addr;

static void put_addr(uint64_t a)
{
    int64_t d = (int64_t)(a - last_addr);
    col_put(&addrs, ((uint64_t)d << 1) ^ (uint64_t)(d >> 63));
    last_addr = a;
}

static live_t *find(thread_t *t, uint64_t ptr, int insert)
{
    if (insert && (t->tab_used + 1) * 2 > t->tab_cap) { /* grow, dropping deleted entries */
        size_t old_cap = t->tab_cap;
        live_t *old = t->tab;
        t->tab_cap = old_cap ? old_cap * 2 : 1 << 16;
        if (!(t->tab = calloc(t->tab_cap, sizeof *t->tab))) abort();
        t->tab_used = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].used == 1) *find(t, old[i].ptr, 1) = old[i], t->tab_used++;
        free(old);
    }
    if (!t->tab_cap) return NULL;
    size_t i = (size_t)((ptr >> 4) * 0x9E3779B97F4A7C15ull) & (t->tab_cap - 1);
    live_t *tomb = NULL;
    for (;; i = (i + 1) & (t->tab_cap - 1)) {
        live_t *e = &t->tab[i];
        if (e->used == 1 && e->ptr == ptr) return e;
        if (e->used == 2 && !tomb) tomb = e;
        if (e->used == 0) return insert ? (tomb ? tomb : e) : NULL;
    }
}

static void fen_add(thread_t *t, uint64_t i, int v)
{
    for (i++; i <= t->fen_cap; i += i & -i)
        t->fen[i - 1] += (uint32_t)v;
}

static uint64_t fen_sum(const thread_t *t, uint64_t i) /* live blocks numbered below i */
{
    uint64_t s = 0;
    for (; i; i -= i & -i)
        s += t->fen[i - 1];
    return s;
}

static uint32_t size_class(uint64_t n)
{
    uint64_t c = (n + 8 + 15) >> 4;
    return c < 2 ? 2 : c >= CLASSES ? 0 : (uint32_t)c; /* 0: not predicted */
}

static void on_alloc(thread_t *t, uint64_t ptr, uint64_t size)
{
    uint32_t cls = size_class(size);
    unsigned sym = DEPTH + 1; /* not predicted */
    if (cls)
        for (unsigned d = 0; d < DEPTH; d++)
            if (t->freed[cls][d] == ptr) {
                sym = 1 + d;
                memmove(&t->freed[cls][d], &t->freed[cls][d + 1], (DEPTH - 1 - d) * 8);
                t->freed[cls][DEPTH - 1] = 0;
                break;
            }
    col_put(&ops, sym);
    col_put(&sizes, size);
    if (sym == DEPTH + 1) put_addr(ptr);
    if (t->seq == t->fen_cap) { /* a Fenwick tree doubles by rebuilding from its own prefix sums */
        uint64_t cap = t->fen_cap ? t->fen_cap * 2 : 1 << 16;
        uint32_t *f = calloc(cap, sizeof *f);
        if (!f) abort();
        thread_t grown = {.fen = f, .fen_cap = cap};
        for (uint64_t i = 0; i < t->seq; i++)
            if (fen_sum(t, i + 1) - fen_sum(t, i)) fen_add(&grown, i, 1);
        free(t->fen);
        t->fen = f;
        t->fen_cap = cap;
    }
    live_t *e = find(t, ptr, 1);
    if (e->used == 1) { /* live here already: another thread freed it */
        fen_add(t, e->seq, -1);
        t->nlive--;
    }
    t->tab_used += e->used == 0;
    *e = (live_t){.ptr = ptr, .seq = t->seq, .cls = cls, .used = 1};
    fen_add(t, t->seq++, 1);
    t->nlive++;
}

static void on_free(thread_t *t, uint64_t ptr)
{
    col_put(&ops, 0);
    live_t *e = find(t, ptr, 0);
    if (!e) { /* another thread's block, or none: its address */
        col_put(&frees, 0);
        put_addr(ptr);
        return;
    }
    col_put(&frees, 1 + (t->nlive - fen_sum(t, e->seq + 1))); /* rank by age, newest 0 */
    fen_add(t, e->seq, -1);
    t->nlive--;
    if (e->cls) {
        memmove(&t->freed[e->cls][1], &t->freed[e->cls][0], (DEPTH - 1) * 8);
        t->freed[e->cls][0] = ptr;
    }
    e->used = 2;
}

/* The column's order-0 entropy, in bytes. */
static double entropy(const col_t *c)
{
    double bits = (double)c->escape_bits;
    for (uint32_t v = 0; c->hist && v < HIST_MAX; v++)
        if (c->hist[v]) bits -= c->hist[v] * log2((double)c->hist[v] / (double)c->counted);
    return bits / 8;
}

static size_t packed(const col_t *c)
{
    if (!c->len) return 0;
    size_t cap = ZSTD_compressBound(c->len);
    void *out = malloc(cap);
    size_t n = out ? ZSTD_compress(out, cap, c->p, c->len, 19) : 0;
    free(out);
    return ZSTD_isError(n) ? 0 : n;
}

int main(int argc, char **argv)
{
    if (argc < 2) return fprintf(stderr, "usage: pack_bound TRACE...\n"), 2;
    char err[1024];
    mallet_reader_t *r =
        mallet_reader_open((const char *const *)argv + 1, (unsigned)argc - 1, err, sizeof err);
    if (!r) return fprintf(stderr, "pack_bound: %s\n", err), 1;
    thread_t **threads = NULL;
    size_t nthreads = 0;
    uint64_t events = 0;
    mallet_rec_t rec;
    int k;
    while ((k = mallet_reader_next(r, &rec)) > 0) {
        const mallet_event_t *ev = &rec.ev;
        if (ev->op == MALLET_OP_RSS) continue;
        thread_t *t = NULL;
        uint32_t key = ev->thread ^ rec.file << 20;
        for (size_t i = 0; i < nthreads && !t; i++)
            if (threads[i]->serial == key) t = threads[i];
        if (!t) {
            if (!(threads = realloc(threads, (nthreads + 1) * sizeof *threads))) abort();
            if (!(t = threads[nthreads++] = calloc(1, sizeof *t))) abort();
            t->serial = key;
        }
        if (rec.part != MALLET_PART_ALLOC) events++;
        uint64_t size = ev->op == MALLET_OP_CALLOC || ev->op == MALLET_OP_REALLOCARRAY
                            ? ev->nmemb * ev->size
                            : ev->size;
        if (ev->op == MALLET_OP_FREE) {
            if (ev->ptr) on_free(t, ev->ptr);
        } else if (rec.part == MALLET_PART_RELEASE) {
            on_free(t, ev->old_ptr);
        } else if (ev->ptr && !ev->failed) {
            on_alloc(t, ev->ptr, size);
        }
    }
    if (k < 0) return fprintf(stderr, "pack_bound: %s\n", mallet_reader_error(r)), 1;
    const col_t *cols[] = {&ops, &sizes, &frees, &addrs};
    const char *names[] = {"op", "size", "free", "addr"};
    size_t total = 0;
    double coded = 0, per = 1.0 / (double)(events ? events : 1);
    for (int i = 0; i < 4; i++) {
        size_t n = packed(cols[i]);
        double h = entropy(cols[i]);
        total += n;
        coded += i < 3 ? h : (double)n; /* addresses: no symbols to count, zstd's size */
        printf("%-5s %10zu bytes raw, %10zu packed, %.3f bytes/event; order-0 entropy %.3f "
               "bytes/event\n",
               names[i], cols[i]->len, n, (double)n * per, h * per);
    }
    printf("events %" PRIu64 ", threads %zu: %zu bytes packed, %.3f bytes/event (no time, thread "
           "or callsite)\n",
           events, nthreads, total, (double)total * per);
    printf("entropy-coded op, size and free, packed addr: %.0f bytes, %.3f bytes/event\n", coded,
           coded * per);
    mallet_reader_close(r);
    return 0;
}
