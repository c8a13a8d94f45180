/* See prepare.h. One pass over the merged events of one process: a table of live pointers gives
 * each freed block its slot and the op that made it; per-thread slot pools hand out slots; each
 * thread's ops gather in a buffer that is written to the replay file as a chunk when full. */
#include "prepare.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The live table maps a pointer to all that prepare knows of the block: one entry, so that a
 * free reads one line (the table is probed at random, a cache miss per event when it outgrows
 * the cache, and its buckets are prefetched ahead; with the size and op kept per slot, the slot's
 * line was a second miss that depended on the first). */
typedef struct live {
    uint64_t ptr;   /* 0: empty */
    uint64_t bytes; /* requested */
    uint32_t slot, thread;
    uint32_t op; /* index of the op that made the block, in its thread's stream (emit keeps it
                  * below 2^32 - 1) */
} live_t;

/* Per traced thread: its ops not yet written, its slot pool, and the realloc it has in flight
 * (between the RELEASE and the ALLOC halves, other threads' events come in between). */
typedef struct thr {
    mallet_rop_t *buf; /* buf[i] is op base + i of the thread's stream; then room for cap
                        * extensions (exts()), nx of them used: an op has at most one */
    uint32_t *free;
    uint64_t last; /* the time of its last event, as the merge orders it (concurrency()) */
    uint32_t n, cap;
    uint32_t lim; /* emit takes the slow path (emit_room) once n reaches it (set_lim) */
    uint32_t nx;
    uint32_t base;           /* ops of a thread are below 2^32 (emit) */
    uint32_t nfree, capfree; /* below 2^32: slots are */
    uint32_t pending_old; /* the old block's slot, given back at the ALLOC half */
    uint32_t pending_dep_thread, pending_dep_op;
} thr_t;
_Static_assert(sizeof(thr_t) == 64, "thr_t is indexed on every event: a shift, not a multiply");

static mallet_rop_ext_t *exts(const thr_t *th)
{
    return (mallet_rop_ext_t *)(th->buf + th->cap);
}

typedef struct state {
    mallet_prepared_t p; /* the counts, copied out at the end (a field: no pointer to follow) */
    mallet_rfile_writer_t *w;
    live_t *live;
    size_t cap;
    size_t room; /* entries the table holds before it grows (a quarter or half of cap) */
    live_t spare;  /* live_shift's target for an entry that stays */
    unsigned shift; /* 64 - log2(cap) */
    thr_t *thr;         /* per thread index */
    uint32_t *tids;     /* per thread index */
    /* per thread index: the time of its first event, as the merge orders it (the main thread's
     * is 0, before every event: it runs from the start), for concurrency() */
    uint64_t *first;
    /* thread serial -> index: open addressing, a slot (serial << 32 | index + 1), 0 empty. Not an
     * array indexed by the serial: a damaged file's serial can be any 32-bit number. */
    uint64_t *serials;
    size_t serials_cap, nserials; /* cap: a power of two, at most half full */
    uint64_t live_blocks, live_bytes; /* live_blocks: also the table's entries */
    int64_t pid;    /* the process's: its main thread's tid */
    uint64_t t0_ns; /* the process's first event (| 1: 0 means not yet seen) */
    uint64_t t0_cycles; /* the same in cycles: a thread's time before its first event */
    /* resume(): the gap, in cycles, after which a thread waits for the others; the thread of
     * the last event (MALLET_NO_SLOT: none yet); the file's thread ends by time, the next one
     * not passed yet and its time (UINT64_MAX: none) */
    uint64_t gap;
    uint32_t prev_t;
    const mallet_thread_end_t *ends; /* the reader's, in time order */
    size_t nends, next_end;
    uint64_t next_end_cycles;
    int main_taken; /* thread index 0 is the main thread's, once it shows up */
    uint32_t chunk_ops;
    uint64_t buffer_ops, buffered; /* ops in all buffers: kept at most buffer_ops */
    uint64_t caps;                 /* all buffers' room: buffered <= caps */
    int err;                       /* -errno of what failed */
} state_t;

static int fail(state_t *s, int e)
{
    if (!s->err) s->err = e;
    return -1;
}

/* ---- the live blocks: open addressing, linear probing, deletion by shifting back ------------ */

/* Fibonacci hashing: the top bits of the product mix every bit of the pointer. */
static size_t home(const state_t *s, uint64_t ptr)
{
    return (size_t)((ptr * 0x9e3779b97f4a7c15ull) >> s->shift);
}

static live_t *live_find(state_t *s, uint64_t ptr)
{
    if (!s->cap) return NULL;
    for (size_t i = home(s, ptr);; i = (i + 1) & (s->cap - 1)) {
        if (s->live[i].ptr == ptr) return &s->live[i];
        if (!s->live[i].ptr) return NULL;
    }
}

/* The reader's look-ahead (mallet_reader_set_ahead): the home buckets of the pointers the
 * coming events free or allocate are fetched while earlier events are prepared. A lookup's miss
 * was a quarter of prepare's time; the table may grow before an event comes, which only wastes
 * its prefetch. */
static void live_prefetch(const state_t *s, uint64_t ptr)
{
    __builtin_prefetch(&s->live[home(s, ptr)]);
}

static void live_ahead(void *arg, const mallet_rec_t *recs, unsigned n)
{
    const state_t *s = arg;
    if (!s->cap) return;
    for (unsigned i = 0; i < n; i++) {
        live_prefetch(s, recs[i].ev.ptr);
        if (recs[i].ev.old_ptr) live_prefetch(s, recs[i].ev.old_ptr);
    }
}

/* The table is kept at most a quarter full while it is small (32 MiB), half full beyond: linear
 * probing at a quarter walks fewer entries per lookup and moves fewer back per removal, whose
 * loop exits mispredict (9% faster on recorded malloc_bench than at a half); past the bound,
 * memory matters more (64-128 bytes per live block instead of 128-256). */
#define LIVE_SPARSE_MAX (1u << 20)

static int live_grow(state_t *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    live_t *old = s->live, *n = calloc(cap, sizeof *n);
    if (!n) return fail(s, -ENOMEM);
    size_t ocap = s->cap;
    s->live = n;
    s->cap = cap;
    s->room = cap < LIVE_SPARSE_MAX ? cap / 4 : cap / 2;
    s->shift = 64u - (unsigned)__builtin_ctzll(cap);
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].ptr) continue;
        size_t j = home(s, old[i].ptr);
        while (n[j].ptr) j = (j + 1) & (cap - 1);
        n[j] = old[i];
    }
    free(old);
    return 0;
}


/* ptr's entry, made if there was none (*was_live 0: its other fields are stale). */
static live_t *live_put(state_t *s, uint64_t ptr, int *was_live)
{
    if (s->live_blocks >= s->room && live_grow(s)) return NULL;
    size_t i = home(s, ptr);
    while (s->live[i].ptr && s->live[i].ptr != ptr) i = (i + 1) & (s->cap - 1);
    *was_live = s->live[i].ptr != 0;
    s->live[i].ptr = ptr;
    return &s->live[i];
}

/* Shifts the entries after the hole at i (an entry just emptied) back so that lookups stay
 * correct. Whether an entry moves is a coin toss to a branch predictor: it is moved with masks
 * (into a spare entry when it stays). */
static void live_shift(state_t *s, size_t i)
{
    size_t mask = s->cap - 1;
    for (size_t j = (i + 1) & mask; s->live[j].ptr; j = (j + 1) & mask) {
        /* entry j moves to the hole unless its home is cyclically in (i, j] */
        size_t h = home(s, s->live[j].ptr);
        size_t moves = ((j - h) & mask) >= ((j - i) & mask), m = -moves;
        live_t *to = (live_t *)(((uintptr_t)&s->live[i] & m) | ((uintptr_t)&s->spare & ~m));
        *to = s->live[j];
        s->live[j].ptr &= ~(uint64_t)m;
        i = (j & m) | (i & ~m);
    }
}

/* Removes e. */
static void live_remove(state_t *s, live_t *e)
{
    e->ptr = 0;
    live_shift(s, (size_t)(e - s->live));
}

/* ---- threads, slots, ops ------------------------------------------------------------------- */

/* A new thread index for the traced thread tid. */
static int add_thread(state_t *s, uint32_t tid)
{
    uint32_t nt = s->p.nthreads;
    if (nt == MALLET_NO_SLOT - 1) return fail(s, -E2BIG);
    thr_t *t = realloc(s->thr, (nt + 1) * sizeof *t);
    if (t) s->thr = t;
    uint32_t *tids = realloc(s->tids, (nt + 1) * sizeof *tids);
    if (tids) s->tids = tids;
    uint64_t *first = realloc(s->first, (nt + 1) * sizeof *first);
    if (first) s->first = first;
    if (!t || !tids || !first) return fail(s, -ENOMEM);
    s->first[nt] = 0;
    memset(&s->thr[nt], 0, sizeof *t);
    s->thr[nt].pending_old = MALLET_NO_SLOT;
    s->tids[nt] = tid;
    s->p.nthreads++;
    return 0;
}

/* The slot of serial in s->serials: its own, or the empty one where it would go. */
static inline uint64_t *serial_slot(const state_t *s, uint32_t serial)
{
    size_t mask = s->serials_cap - 1, i = (serial * 0x9e3779b1u) & mask;
    while (s->serials[i] && (uint32_t)(s->serials[i] >> 32) != serial) i = (i + 1) & mask;
    return &s->serials[i];
}

/* The thread index of a thread serial, or UINT32_MAX for a thread not seen yet. prepare looks
 * it up once a run (mallet_reader_next_run: a run is one thread's), and again after
 * prepare_event, which may add the thread. */
static inline uint32_t thread_seen(const state_t *s, uint32_t serial)
{
    return s->serials_cap ? (uint32_t)*serial_slot(s, serial) - 1 : UINT32_MAX;
}

/* thread_index for a thread serial not seen yet. Index 0 is the process's main thread (the worker
 * replays it on its own main thread: allocators treat the main thread apart, glibc's main arena
 * grows with brk where other threads' arenas use mmap). */
static __attribute__((noinline)) int thread_new(state_t *s, const mallet_event_t *ev, uint32_t *out)
{
    if (2 * (s->nserials + 1) > s->serials_cap) {
        size_t old_cap = s->serials_cap, cap = old_cap ? 2 * old_cap : 64;
        uint64_t *old = s->serials, *m = calloc(cap, sizeof *m);
        if (!m) return fail(s, -ENOMEM);
        s->serials = m;
        s->serials_cap = cap;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i]) *serial_slot(s, (uint32_t)(old[i] >> 32)) = old[i];
        free(old);
    }
    uint32_t index;
    if (!s->main_taken && ev->tid == s->pid) {
        s->main_taken = 1; /* index 0 was kept for it */
        index = 0;
    } else {
        if (add_thread(s, ev->tid)) return -1;
        index = s->p.nthreads - 1;
    }
    *serial_slot(s, ev->thread) = (uint64_t)ev->thread << 32 | (index + 1);
    s->nserials++;
    *out = index;
    return 0;
}

/* The thread index of ev's thread. */
static inline int thread_index(state_t *s, const mallet_event_t *ev, uint32_t *out)
{
    uint32_t t = thread_seen(s, ev->thread);
    if (t != UINT32_MAX) {
        *out = t;
        return 0;
    }
    return thread_new(s, ev, out);
}

static __attribute__((noinline)) int pool_grow(state_t *s, thr_t *th)
{
    size_t cap = th->capfree ? 2 * (size_t)th->capfree : 64;
    if (cap > UINT32_MAX) cap = UINT32_MAX; /* a pool never holds more: there are fewer slots */
    uint32_t *f = realloc(th->free, cap * sizeof *f);
    if (!f) return fail(s, -ENOMEM);
    th->free = f;
    th->capfree = (uint32_t)cap;
    return 0;
}

static inline int slot_give(state_t *s, uint32_t t, uint32_t slot)
{
    thr_t *th = &s->thr[t];
    if (th->nfree == th->capfree && pool_grow(s, th)) return -1;
    th->free[th->nfree++] = slot;
    return 0;
}

/* New slots go to a thread a cache line at a time (8 pointers in the worker's slot table), so
 * that two threads writing their own slots never write the same line (false sharing made frees
 * wait on the other core's cache: a third of the harness's time per op). */
#define SLOT_LINE 8u

static __attribute__((noinline)) int slot_line(state_t *s, uint32_t t, uint32_t *slot)
{
    if (s->p.nslots >= MALLET_NO_SLOT - SLOT_LINE) return fail(s, -E2BIG);
    uint32_t first = s->p.nslots;
    s->p.nslots += SLOT_LINE;
    for (uint32_t k = SLOT_LINE - 1; k > 0; k--)
        if (slot_give(s, t, first + k)) return -1;
    *slot = first;
    return 0;
}

static inline int slot_take(state_t *s, uint32_t t, uint32_t *slot)
{
    thr_t *th = &s->thr[t];
    if (!th->nfree) return slot_line(s, t, slot);
    *slot = th->free[--th->nfree];
    return 0;
}

/* Thread t's bound for emit's fast path: its buffer's room and its stream's (the replay counts a
 * thread's ops in 32 bits); 0, so that every emit checks the bound on all buffers, once all
 * buffers together could hold more than it. */
static void set_lim(state_t *s, thr_t *th)
{
    uint64_t left = UINT32_MAX - th->base;
    th->lim = s->caps > s->buffer_ops ? 0 : th->cap < left ? th->cap : (uint32_t)left;
}

static int flush(state_t *s, uint32_t t)
{
    thr_t *th = &s->thr[t];
    if (!th->n) return 0;
    int rc = mallet_rfile_append(s->w, t, th->buf, th->n, exts(th), th->nx);
    if (rc) return fail(s, rc);
    th->base += th->n;
    s->buffered -= th->n;
    th->n = 0;
    th->nx = 0;
    set_lim(s, th);
    return 0;
}

/* All buffers together reached their bound: write them all, and give their memory back (a
 * thread that has gone quiet should not keep a full chunk's buffer). */
static int flush_all(state_t *s)
{
    for (uint32_t t = 0; t < s->p.nthreads; t++) {
        if (flush(s, t)) return -1;
        free(s->thr[t].buf);
        s->thr[t].buf = NULL;
        s->thr[t].cap = 0;
        s->thr[t].lim = 0;
    }
    s->caps = 0;
    return 0;
}

/* Makes room for thread t's next op: writes buffers out, or grows t's. 0, or -1 (s->err). */
static __attribute__((noinline)) int emit_room(state_t *s, uint32_t t)
{
    /* the replay counts a thread's ops in 32 bits */
    if ((uint64_t)s->thr[t].base + s->thr[t].n == UINT32_MAX) return fail(s, -EFBIG);
    if (s->buffered >= s->buffer_ops && flush_all(s)) return -1;
    thr_t *th = &s->thr[t];
    if (th->n == th->cap) {
        if (th->cap >= s->chunk_ops) {
            if (flush(s, t)) return -1;
        } else {
            uint32_t cap = th->cap ? 2 * th->cap : 256;
            if (cap > s->chunk_ops) cap = s->chunk_ops;
            mallet_rop_t *b = realloc(th->buf, cap * (sizeof *b + sizeof(mallet_rop_ext_t)));
            if (!b) return fail(s, -ENOMEM);
            /* the extensions move up behind the ops' new room */
            memmove(b + cap, b + th->cap, th->nx * sizeof(mallet_rop_ext_t));
            th->buf = b;
            s->caps += cap - th->cap;
            th->cap = cap;
            if (s->caps > s->buffer_ops) /* from now on every emit checks the bound */
                for (uint32_t k = 0; k < s->p.nthreads; k++) s->thr[k].lim = 0;
        }
    }
    set_lim(s, th);
    return 0;
}

/* A new op at the end of thread t's stream, to be filled in; valid until the next emit. Inline,
 * with every check but one out of line: it runs once an op. */
static inline mallet_rop_t *emit(state_t *s, uint32_t t)
{
    thr_t *th = &s->thr[t];
    if (th->n >= th->lim && emit_room(s, t)) return NULL;
    s->buffered++;
    return &th->buf[th->n++];
}

/* The same for an op with EXT: *x is its extension. */
static inline mallet_rop_t *emit_ext(state_t *s, uint32_t t, mallet_rop_ext_t **x)
{
    mallet_rop_t *o = emit(s, t);
    if (o) *x = &exts(&s->thr[t])[s->thr[t].nx++]; /* after emit: it may write the buffer out */
    return o;
}

static uint64_t stream_len(const state_t *s, uint32_t t)
{
    return (uint64_t)s->thr[t].base + s->thr[t].n;
}

/* Thread t waits until thread dep has done its op `op`. */
static int emit_wait(state_t *s, uint32_t t, uint32_t dep, uint64_t op)
{
    mallet_rop_ext_t *x;
    mallet_rop_t *o = emit_ext(s, t, &x);
    if (!o) return -1;
    /* slot: below 2^32 - 1, as emit keeps every stream shorter */
    *o = (mallet_rop_t){.kind = MALLET_ROP_WAIT | MALLET_ROP_EXT, .slot = (uint32_t)op};
    *x = (mallet_rop_ext_t){.aux = dep};
    s->p.waits++;
    return 0;
}

/* The op that made a block another thread now frees: it must publish its completion. Still in
 * its thread's buffer, it is flagged there; already written, the file is patched (rfile.c). */
static int mark_awaited(state_t *s, uint32_t t, uint64_t op)
{
    thr_t *th = &s->thr[t];
    if (op >= th->base) {
        th->buf[op - th->base].flags |= MALLET_ROP_AWAITED;
        return 0;
    }
    int rc = mallet_rfile_mark_awaited(s->w, t, op);
    return rc ? fail(s, rc) : 0;
}

/* The block at ptr dies in thread t: returns its slot (MALLET_NO_SLOT if it was not live) and,
 * when another thread made it, that thread and the op that made it (else *dep_thread is
 * MALLET_NO_SLOT). */
static inline uint32_t block_dies(state_t *s, uint32_t t, uint64_t ptr, uint32_t *dep_thread,
                                  uint32_t *dep_op)
{
    live_t *e = live_find(s, ptr);
    *dep_thread = MALLET_NO_SLOT;
    if (!e) return MALLET_NO_SLOT;
    uint32_t slot = e->slot;
    s->live_bytes -= e->bytes;
    if (e->thread != t) {
        *dep_thread = e->thread;
        *dep_op = e->op;
    }
    live_remove(s, e);
    s->live_blocks--;
    return slot;
}

/* A block of `bytes` is born at ptr by op `op` of thread t (about to be emitted): *slot is the
 * slot it takes. */
static int block_born(state_t *s, uint32_t t, uint64_t ptr, uint64_t bytes, uint64_t op,
                      uint32_t *slot)
{
    int was_live;
    live_t *e = live_put(s, ptr, &was_live); /* one probe: a find and a put walked it twice */
    if (!e) return -1;
    if (was_live) { /* its free was not recorded: forget the old block (its slot stays taken) */
        s->live_bytes -= e->bytes;
        s->live_blocks--; /* its entry is the new block's */
    }
    if (slot_take(s, t, slot)) return -1;
    e->slot = *slot;
    e->thread = t;
    e->op = (uint32_t)op;
    e->bytes = bytes;
    s->live_bytes += bytes;
    if (s->live_bytes > s->p.peak_live_bytes) s->p.peak_live_bytes = s->live_bytes;
    if (++s->live_blocks > s->p.peak_live_blocks) s->p.peak_live_blocks = s->live_blocks;
    return 0;
}

static int is_realloc(uint8_t op)
{
    return op == MALLET_OP_REALLOC || op == MALLET_OP_REALLOCARRAY;
}

/* Sets op's kind (with EXT unless it is a malloc of few bytes) and size, and its extension's
 * size and aux, for the call's numbers (rfile.h); -1 if they cannot be those of a successful call
 * (more than 2^47 - 1 bytes, count x size past 64 bits, an alignment past 2^63). *bytes: what
 * the block holds. A realloc's aux (the old block) is set by the caller. */
static int encode_args(const mallet_event_t *ev, uint8_t kind, mallet_rop_t *op,
                       mallet_rop_ext_t *x, uint64_t *bytes)
{
    uint64_t size = ev->size;
    int alt = 0;
    *bytes = size;
    if (kind == MALLET_OP_CALLOC || kind == MALLET_OP_REALLOCARRAY) {
        uint64_t n = ev->nmemb;
        if (n && size > UINT64_MAX / n) return -1;
        *bytes = n * size;
        if (kind == MALLET_OP_REALLOCARRAY) { /* replayed as realloc of the product */
            size = *bytes;
        } else if (n <= UINT32_MAX && size <= MALLET_ROP_SIZE_MAX) {
            x->aux = (uint32_t)n;
        } else if (size <= UINT32_MAX && n <= MALLET_ROP_SIZE_MAX) {
            x->aux = (uint32_t)size;
            size = n;
            alt = 1;
        } else {
            return -1;
        }
    } else if (mallet_rop_aligns(kind)) {
        if (ev->align <= UINT32_MAX) {
            x->aux = (uint32_t)ev->align;
        } else { /* a power of two, or memalign rounds it up to one */
            unsigned lg = 64u - (unsigned)__builtin_clzll(ev->align - 1);
            if (lg > 63) return -1;
            x->aux = lg;
            alt = 1;
        }
    }
    if (size > MALLET_ROP_SIZE_MAX) return -1;
    if (kind == MALLET_OP_MALLOC && size <= MALLET_ROP_SHORT_MAX) {
        op->kind = kind;
        op->size = (uint16_t)size;
    } else {
        op->kind = kind | MALLET_ROP_EXT;
        mallet_rop_set_size(op, x, size, alt);
    }
    return 0;
}

/* A malloc, or a free of a block its own thread made, as most events are: done with masks where
 * the two differ, for which of them comes next is a coin toss to the branch predictor (in
 * recorded malloc_bench, the branch between them mispredicted on half of the events; so did the
 * probe's exit, which looks here at the home entry and the next with a mask: at a quarter full, the
 * entry sought, or the empty one a malloc takes, is one of them but for a few percent). Returns 1
 * if it did the event, 0 if prepare_event must (nothing changed): anything else, or a case of
 * these that needs more (a table to grow, a pool to fill, a buffer to write out, a longer probe,
 * an address born again while live). */
static inline int prepare_common(state_t *s, const mallet_rec_t *rec, uint32_t t)
{
    const mallet_event_t *ev = &rec->ev;
    uint64_t ptr = ev->ptr;
    uint8_t kind = ev->op;
    /* malloc (1) or free (5), tested at once: a test of either alone would mispredict; and
     * every test one branch (each was one, taken or not as predicted, but they were 5 branches
     * of the 39 an event) */
    if ((rec->part != MALLET_PART_WHOLE) | ((((unsigned)kind - 1) & ~4u) != 0) | ev->failed | !ptr |
        (t >= s->p.nthreads) | !s->cap)
        return 0;
    thr_t *th = &s->thr[t];
    uint64_t is_free = kind == MALLET_OP_FREE, f = -is_free;
    uint64_t want = ptr & f; /* the entry a free finds; a malloc takes an empty one */
    size_t mask = s->cap - 1, h = home(s, ptr);
    uint64_t at = s->live[h].ptr;
    size_t i = (h + !((at == ptr) | (at == want))) & mask;
    live_t *e = &s->live[i];
    /* a free gives its slot back to the pool, a malloc takes the last one given: the same room */
    uint32_t top = th->nfree - 1 + (uint32_t)is_free;
    if ((e->ptr != want) | (top >= th->capfree) | (((e->thread ^ t) & (uint32_t)f) != 0) |
        (s->live_blocks >= s->room) | (ev->size > MALLET_ROP_SHORT_MAX) | (th->n >= th->lim) |
        (ev->cycles - th->last > s->gap) | (ev->cycles > s->next_end_cycles))
        return 0;
    uint32_t slot = (uint32_t)((e->slot & f) | (th->free[top] & ~f));
    uint64_t bytes = (e->bytes & f) | (ev->size & ~f);
    th->free[top] = slot;
    th->nfree = top + (uint32_t)is_free;
    s->live_bytes += (bytes ^ f) - f; /* minus bytes for a free */
    s->live_blocks += 1 - 2 * is_free;
    s->p.peak_live_bytes =
        s->live_bytes > s->p.peak_live_bytes ? s->live_bytes : s->p.peak_live_bytes;
    s->p.peak_live_blocks =
        s->live_blocks > s->p.peak_live_blocks ? s->live_blocks : s->p.peak_live_blocks;
    /* a malloc's entry; a free's is emptied (its other fields are then stale) */
    e->ptr = ptr & ~f;
    e->slot = slot;
    e->thread = t;
    e->op = (uint32_t)(th->base + th->n);
    e->bytes = bytes;
    /* a free's hole, when the next entry is taken, is filled by shifting back (one test: one on
     * the kind would mispredict) */
    if (s->live[(i + 1) & mask].ptr & f) live_shift(s, i);
    s->buffered++;
    /* one op, no extension (a free's size is 0, the reader's) */
    th->buf[th->n++] = (mallet_rop_t){.kind = kind, .size = (uint16_t)ev->size, .slot = slot};
    th->last = ev->cycles;
    s->prev_t = t;
    return 1;
}

/* Thread t resumes (or ends) at `now`, its last event at `since`: after more than the gap, with
 * another thread's event last, it first waits for that thread's last op. The wait points back
 * in the trace's time order, as every wait must (concurrency()). */
static int resume(state_t *s, uint32_t t, uint64_t since, uint64_t now)
{
    uint32_t u = s->prev_t;
    if (now <= since || now - since <= s->gap || u == MALLET_NO_SLOT || u == t) return 0;
    uint64_t len = stream_len(s, u);
    if (!len) return 0;
    return mark_awaited(s, u, len - 1) || emit_wait(s, t, u, len - 1) ? -1 : 0;
}

/* The threads that ended before `now`: one that sat idle before it ended waits, at the end of its
 * stream, for the last op another thread made before it ended (resume()), so that the replay
 * ends it there, not as soon as its last call is made. */
static __attribute__((noinline)) int ends_before(state_t *s, uint64_t now)
{
    for (; s->next_end < s->nends && s->ends[s->next_end].cycles < now; s->next_end++) {
        const mallet_thread_end_t *e = &s->ends[s->next_end];
        uint32_t t = thread_seen(s, e->thread);
        if (t == UINT32_MAX) continue; /* no events */
        if (resume(s, t, s->thr[t].last, e->cycles)) return -1;
        s->prev_t = t;
    }
    s->next_end_cycles = s->next_end < s->nends ? s->ends[s->next_end].cycles : UINT64_MAX;
    return 0;
}

static __attribute__((noinline)) int prepare_event(state_t *s, const mallet_rec_t *rec)
{
    const mallet_event_t *ev = &rec->ev;
    uint32_t t, known = s->p.nthreads;
    if (thread_index(s, ev, &t)) return -1;
    const uint64_t now = rec->part == MALLET_PART_RELEASE ? ev->free_cycles : ev->cycles;
    if (s->p.nthreads != known) /* a new thread: its first event, at the merge's time for it */
        s->first[t] = now;
    if (now > s->next_end_cycles && ends_before(s, now)) return -1;
    /* a realloc's ALLOC half follows its RELEASE half: one call, no gap in between */
    if (rec->part != MALLET_PART_ALLOC &&
        resume(s, t, s->thr[t].last ? s->thr[t].last : s->t0_cycles, now))
        return -1;
    s->prev_t = t;
    s->thr[t].last = ev->cycles;
    /* A realloc that failed left its block alive, and cannot be replayed faithfully. */
    int failed_realloc = is_realloc(ev->op) && ev->failed;
    thr_t *me = &s->thr[t];
    if (rec->part == MALLET_PART_RELEASE) {
        me->pending_old = MALLET_NO_SLOT;
        me->pending_dep_thread = MALLET_NO_SLOT;
        if (!failed_realloc) {
            me->pending_old = block_dies(s, t, ev->old_ptr, &me->pending_dep_thread,
                                         &me->pending_dep_op);
            /* flagged now: the op may leave the buffer before the ALLOC half comes */
            if (me->pending_dep_thread != MALLET_NO_SLOT &&
                mark_awaited(s, me->pending_dep_thread, me->pending_dep_op))
                return -1;
        }
        return 0;
    }
    if (ev->failed && ev->op != MALLET_OP_FREE) {
        s->p.failed_allocs++;
        return 0;
    }
    mallet_rop_t *op;
    if (ev->op == MALLET_OP_FREE) {
        if (!ev->ptr) { /* free(NULL) is a call */
            if (!(op = emit(s, t))) return -1;
            *op = (mallet_rop_t){.kind = MALLET_OP_FREE, .slot = MALLET_NO_SLOT};
            return 0;
        }
        uint32_t dep_thread;
        uint32_t dep_op = 0;
        uint32_t slot = block_dies(s, t, ev->ptr, &dep_thread, &dep_op);
        if (slot == MALLET_NO_SLOT) {
            s->p.skipped++; /* double free, or a pointer the trace never allocated */
            return 0;
        }
        if (dep_thread != MALLET_NO_SLOT &&
            (mark_awaited(s, dep_thread, dep_op) || emit_wait(s, t, dep_thread, dep_op)))
            return -1;
        if (slot_give(s, t, slot) || !(op = emit(s, t))) return -1;
        *op = (mallet_rop_t){.kind = MALLET_OP_FREE, .slot = slot};
        return 0;
    }
    uint8_t kind = ev->op;
    uint32_t old_slot = MALLET_NO_SLOT, dep_thread = MALLET_NO_SLOT;
    uint64_t dep_op = 0;
    if (is_realloc(kind) && ev->old_ptr) {
        /* the RELEASE half came first (the reader guarantees it) */
        old_slot = me->pending_old;
        dep_thread = me->pending_dep_thread;
        dep_op = me->pending_dep_op;
        me->pending_old = MALLET_NO_SLOT;
        if (old_slot == MALLET_NO_SLOT) { /* resizing a block that is not live: allocate anew */
            s->p.skipped++;
            kind = kind == MALLET_OP_REALLOC ? MALLET_OP_MALLOC : MALLET_OP_CALLOC;
        }
    }
    mallet_rop_t args = {0};
    mallet_rop_ext_t xargs = {0}, *x = NULL;
    uint64_t bytes;
    if (encode_args(ev, kind, &args, &xargs, &bytes)) { /* no successful call has these numbers */
        s->p.failed_allocs++;
        return old_slot != MALLET_NO_SLOT ? slot_give(s, t, old_slot) : 0;
    }
    if (dep_thread != MALLET_NO_SLOT && emit_wait(s, t, dep_thread, dep_op)) return -1;
    uint32_t slot = MALLET_NO_SLOT;
    if (ev->ptr && block_born(s, t, ev->ptr, bytes, stream_len(s, t), &slot)) return -1;
    /* the new block takes its slot before the old one is given back: they differ */
    if (old_slot != MALLET_NO_SLOT && slot_give(s, t, old_slot)) return -1;
    /* the op stream_len gave its block (emit keeps it) */
    if (!(op = args.kind & MALLET_ROP_EXT ? emit_ext(s, t, &x) : emit(s, t))) return -1;
    args.slot = slot;
    *op = args;
    if (mallet_rop_resizes(kind)) xargs.aux = old_slot;
    if (x) *x = xargs;
    return 0;
}

/* How each thread ended, from the trace's marks (TRACE_FORMAT.md, THREAD_EXIT) into flags (the
 * replay file's thread table) and into its span for concurrency(): a thread that ended before
 * its process is alive up to its end, idle or not after its last event; one that did not lives
 * to the end of the process. A trace whose recorder did not mark thread ends says nothing: there
 * a thread's span ends at its last event. NULL, or the flags by thread index (s->err if memory
 * runs out). */
static uint32_t *thread_ends(state_t *s, const mallet_reader_t *r, unsigned file)
{
    uint32_t n = s->p.nthreads;
    uint32_t *flags = calloc(n ? n : 1, sizeof *flags);
    if (!flags) {
        fail(s, -ENOMEM);
        return NULL;
    }
    if (!mallet_reader_info(r, file)->thread_exits) return flags;
    for (size_t i = 0; i < s->nends; i++) { /* by time: a thread marked twice ends last */
        const mallet_thread_end_t *e = &s->ends[i];
        uint32_t t = thread_seen(s, e->thread);
        if (t == UINT32_MAX) continue; /* no events */
        flags[t] = MALLET_RFILE_T_EXITS;
        if (e->cycles > s->thr[t].last) s->thr[t].last = e->cycles;
    }
    for (uint32_t t = 0; t < n; t++)
        if (!flags[t]) flags[t] = MALLET_RFILE_T_STAYS, s->thr[t].last = UINT64_MAX;
    return flags;
}

/* The most threads alive at once, a thread alive from the time of its first event to that of its
 * end (thread_ends(); spans: a thread that ends at the time another starts counts as alive
 * then). The worker runs at most this many, starting them in index order (the order of their
 * first events) as others end (but not one that stays to the end), and that cannot deadlock: a
 * wait points back in the merged order, so if every slot were held by a thread that stays or
 * waits (through other waits) for one not started yet, X, whose first op is the earliest op not
 * run, each of them would have started before X and be alive at X's first op (one that waits
 * still has an op after it): with X, more threads alive at X's start than this count. A sweep in
 * index order, with a min-heap of the ends of the threads still alive. 0 if memory runs out (the
 * caller fails). */
static uint32_t concurrency(state_t *s)
{
    uint32_t n = s->p.nthreads, len = 0, most = 0;
    uint64_t *heap = malloc((n ? n : 1) * sizeof *heap);
    if (!heap) {
        fail(s, -ENOMEM);
        return 0;
    }
    for (uint32_t t = 0; t < n; t++) {
        const uint64_t start = s->first[t], end = s->thr[t].last;
        while (len && heap[0] < start) { /* ended before t started: out of the heap */
            uint64_t last = heap[--len];
            uint32_t i = 0;
            for (;;) {
                uint32_t c = 2 * i + 1;
                if (c >= len) break;
                if (c + 1 < len && heap[c + 1] < heap[c]) c++;
                if (heap[c] >= last) break;
                heap[i] = heap[c];
                i = c;
            }
            if (len) heap[i] = last;
        }
        uint32_t i = len++;
        for (; i && heap[(i - 1) / 2] > end; i = (i - 1) / 2)
            heap[i] = heap[(i - 1) / 2];
        heap[i] = end;
        if (len > most) most = len;
    }
    free(heap);
    return most;
}

uint64_t mallet_prepare_gap_ns(const mallet_prepare_opts_t *opts)
{
    uint64_t gap_ns = opts && opts->gap_ns ? opts->gap_ns : MALLET_PREPARE_GAP_NS;
    return gap_ns == MALLET_PREPARE_NO_GAP ? 0 : gap_ns;
}

int mallet_prepare(mallet_reader_t *r, unsigned file, mallet_rfile_writer_t *w,
                   const mallet_prepare_opts_t *opts, mallet_prepared_t *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (file >= mallet_reader_nfiles(r)) {
        mallet_rfile_discard(w);
        return mallet_errorf(err, errlen, "no trace file %u", file);
    }
    state_t s;
    memset(&s, 0, sizeof s);
    s.w = w;
    s.chunk_ops = opts && opts->chunk_ops ? opts->chunk_ops : MALLET_PREPARE_CHUNK_OPS;
    if (s.chunk_ops > MALLET_RFILE_CHUNK_MAX) s.chunk_ops = MALLET_RFILE_CHUNK_MAX;
    s.buffer_ops = opts && opts->buffer_ops ? opts->buffer_ops : MALLET_PREPARE_BUFFER_OPS;
    if (opts && opts->patch_cap) mallet_rfile_set_patch_cap(w, opts->patch_cap);
    const char *path = mallet_reader_info(r, file)->path;
    s.pid = mallet_reader_info(r, file)->pid;
    s.prev_t = MALLET_NO_SLOT;
    double ns_per_cycle = mallet_reader_info(r, file)->ns_per_cycle;
    s.p.gap_ns = mallet_prepare_gap_ns(opts);
    double gap = (double)s.p.gap_ns / (ns_per_cycle > 0 ? ns_per_cycle : 1.0);
    s.gap = s.p.gap_ns && gap < 1.8e19 ? (uint64_t)gap : UINT64_MAX;
    const mallet_rec_t *run;
    int n = 0, rc = 0;
    mallet_reader_set_ahead(r, live_ahead, &s);
    s.ends = mallet_reader_thread_ends(r, file, &s.nends);
    s.next_end_cycles = s.nends ? s.ends[0].cycles : UINT64_MAX;
    if (add_thread(&s, (uint32_t)s.pid) == 0) /* index 0: the main thread (else s.err says) */
        while ((n = mallet_reader_next_run(r, &run)) > 0) {
            if (run->file != file) continue; /* a run is one thread's */
            if (!s.t0_ns) {
                s.t0_ns = mallet_reader_time_ns(r, run->ev.cycles) | 1;
                s.t0_cycles = run->ev.cycles;
            }
            const mallet_rec_t *rec = run, *end = run + n;
            uint32_t t = thread_seen(&s, run->ev.thread);
            for (; rec < end; rec++) {
                if (rec->ev.op == MALLET_OP_RSS) { /* the process's RSS: kept beside the ops */
                    uint64_t ns = mallet_reader_time_ns(r, rec->ev.cycles);
                    mallet_rfile_add_rss(w, ns > s.t0_ns ? ns - s.t0_ns : 0, rec->ev.size);
                    continue;
                }
                if (prepare_common(&s, rec, t)) continue;
                if (prepare_event(&s, rec)) break;
                t = thread_seen(&s, run->ev.thread);
            }
            if (rec < end) break;
        }
    uint32_t *tflags = NULL;
    if (!s.err && n >= 0 && !ends_before(&s, UINT64_MAX) && (tflags = thread_ends(&s, r, file)))
        s.p.concurrency = concurrency(&s);
    /* the calls: every op of the streams but the waits (counted once here, not on every event) */
    for (uint32_t t = 0; t < s.p.nthreads; t++) s.p.ops += stream_len(&s, t);
    s.p.ops -= s.p.waits;
    *out = s.p;
    if (s.err == -EFBIG)
        rc = mallet_errorf(err, errlen, "%s: a thread has more ops than a replay holds (2^32 - 1)",
                           path);
    else if (s.err)
        rc = mallet_errorf(err, errlen, "%s: preparing the replay: %s", path, strerror(-s.err));
    else if (n < 0)
        rc = mallet_errorf(err, errlen, "%s", mallet_reader_error(r));
    for (uint32_t t = 0; !rc && t < out->nthreads; t++)
        if (flush(&s, t))
            rc = mallet_errorf(err, errlen, "%s: preparing the replay: %s", path, strerror(-s.err));
    if (!rc) {
        out->chunks = 0; /* the writer counts them */
        out->patches = mallet_rfile_patches(w);
        int c = mallet_rfile_commit(w, out, s.tids, tflags);
        if (c) rc = mallet_errorf(err, errlen, "%s: writing the replay: %s", path, strerror(-c));
    } else {
        mallet_rfile_discard(w);
    }
    for (uint32_t t = 0; s.thr && t < out->nthreads; t++) {
        free(s.thr[t].buf);
        free(s.thr[t].free);
    }
    mallet_reader_set_ahead(r, NULL, NULL); /* s is about to go */
    free(s.thr);
    free(s.tids);
    free(tflags);
    free(s.first);
    free(s.live);
    free(s.serials);
    return rc;
}
