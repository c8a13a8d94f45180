/* See prepare.h. One pass over the merged events of one process: a table of live pointers gives
 * each freed block its slot and the op that made it; per-thread slot pools hand out slots. */
#include "prepare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct live {
    uint64_t ptr; /* 0: empty */
    uint32_t slot, thread;
    uint64_t op;   /* index of the op that made the block, in its thread */
    uint64_t size; /* requested bytes */
} live_t;

/* Per traced thread: its slot pool, and the realloc it has in flight (between the RELEASE and
 * the ALLOC halves, other threads' events come in between). */
typedef struct pool {
    uint32_t *free;
    size_t n, cap;
    uint32_t pending_old; /* the old block's slot, given back at the ALLOC half */
    uint32_t pending_dep_thread;
    uint64_t pending_dep_op;
} pool_t;

typedef struct state {
    mallet_prepared_t *p;
    live_t *live;
    size_t cap, used;
    pool_t *pools;       /* per thread index */
    uint32_t *index_of;  /* thread serial -> index + 1 (0: not seen) */
    size_t nserials;
    uint64_t live_blocks, live_bytes;
    int64_t pid;    /* the process's: its main thread's tid */
    int main_taken; /* thread index 0 is the main thread's, once it shows up */
} state_t;

static size_t home(const state_t *s, uint64_t ptr)
{
    return (size_t)((ptr * 0x9e3779b97f4a7c15ull) >> 20) & (s->cap - 1);
}

static live_t *live_find(state_t *s, uint64_t ptr)
{
    if (!s->cap) return NULL;
    for (size_t i = home(s, ptr);; i = (i + 1) & (s->cap - 1)) {
        if (s->live[i].ptr == ptr) return &s->live[i];
        if (!s->live[i].ptr) return NULL;
    }
}

static int live_grow(state_t *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    live_t *old = s->live, *n = calloc(cap, sizeof *n);
    if (!n) return -1;
    size_t ocap = s->cap;
    s->live = n;
    s->cap = cap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].ptr) continue;
        size_t j = home(s, old[i].ptr);
        while (n[j].ptr) j = (j + 1) & (cap - 1);
        n[j] = old[i];
    }
    free(old);
    return 0;
}

/* Inserts or replaces ptr's entry. */
static live_t *live_put(state_t *s, uint64_t ptr)
{
    if (2 * (s->used + 1) > s->cap && live_grow(s)) return NULL;
    size_t i = home(s, ptr);
    while (s->live[i].ptr && s->live[i].ptr != ptr) i = (i + 1) & (s->cap - 1);
    if (!s->live[i].ptr) s->used++;
    s->live[i].ptr = ptr;
    return &s->live[i];
}

/* Removes e, shifting the entries after it back so that lookups stay correct. */
static void live_remove(state_t *s, live_t *e)
{
    size_t i = (size_t)(e - s->live), j = i;
    s->live[i].ptr = 0;
    s->used--;
    for (;;) {
        j = (j + 1) & (s->cap - 1);
        if (!s->live[j].ptr) return;
        size_t h = home(s, s->live[j].ptr);
        /* can entry j move to the hole at i? (h not cyclically in (i, j]) */
        if ((i <= j) ? (h <= i || h > j) : (h <= i && h > j)) {
            s->live[i] = s->live[j];
            s->live[j].ptr = 0;
            i = j;
        }
    }
}

static int add_thread(state_t *s, uint32_t tid)
{
    mallet_prepared_t *p = s->p;
    mallet_rthread_t *t = realloc(p->threads, (p->nthreads + 1) * sizeof *t);
    pool_t *pl = realloc(s->pools, (p->nthreads + 1) * sizeof *pl);
    if (t) p->threads = t;
    if (pl) s->pools = pl;
    if (!t || !pl) return -1;
    memset(&p->threads[p->nthreads], 0, sizeof *t);
    memset(&s->pools[p->nthreads], 0, sizeof *pl);
    s->pools[p->nthreads].pending_old = MALLET_NO_SLOT;
    p->threads[p->nthreads++].tid = tid;
    return 0;
}

static int thread_index(state_t *s, const mallet_event_t *ev, uint32_t *out)
{
    if (ev->thread >= s->nserials) {
        size_t n = ev->thread + 64;
        uint32_t *m = realloc(s->index_of, n * sizeof *m);
        if (!m) return -1;
        memset(m + s->nserials, 0, (n - s->nserials) * sizeof *m);
        s->index_of = m;
        s->nserials = n;
    }
    if (!s->index_of[ev->thread] && !s->main_taken && ev->tid == s->pid) {
        s->main_taken = 1;
        s->index_of[ev->thread] = 1;
    }
    if (!s->index_of[ev->thread]) {
        if (add_thread(s, ev->tid)) return -1;
        s->index_of[ev->thread] = s->p->nthreads;
    }
    *out = s->index_of[ev->thread] - 1;
    return 0;
}

static int slot_take(state_t *s, uint32_t t, uint32_t *slot)
{
    pool_t *pl = &s->pools[t];
    if (pl->n) {
        *slot = pl->free[--pl->n];
        return 0;
    }
    if (s->p->nslots == MALLET_NO_SLOT - 1) return -1;
    *slot = s->p->nslots++;
    return 0;
}

static int slot_give(state_t *s, uint32_t t, uint32_t slot)
{
    pool_t *pl = &s->pools[t];
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? 2 * pl->cap : 64;
        uint32_t *f = realloc(pl->free, cap * sizeof *f);
        if (!f) return -1;
        pl->free = f;
        pl->cap = cap;
    }
    pl->free[pl->n++] = slot;
    return 0;
}

static mallet_rop_t *emit(state_t *s, uint32_t t, uint8_t kind)
{
    mallet_rthread_t *th = &s->p->threads[t];
    if (th->nops == th->cap) {
        uint64_t cap = th->cap ? 2 * th->cap : 256;
        mallet_rop_t *o = realloc(th->ops, cap * sizeof *o);
        if (!o) return NULL;
        th->ops = o;
        th->cap = cap;
    }
    mallet_rop_t *op = &th->ops[th->nops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->slot = op->old_slot = MALLET_NO_SLOT;
    op->dep_thread = MALLET_NO_DEP;
    s->p->ops++;
    return op;
}

/* The block at ptr dies in thread t: returns its slot (MALLET_NO_SLOT if it was not live) and the
 * dependency on the op that made it when another thread did. */
static uint32_t block_dies(state_t *s, uint32_t t, uint64_t ptr, uint32_t *dep_thread,
                           uint64_t *dep_op)
{
    live_t *e = live_find(s, ptr);
    *dep_thread = MALLET_NO_DEP;
    if (!e) return MALLET_NO_SLOT;
    uint32_t slot = e->slot;
    s->live_bytes -= e->size;
    if (e->thread != t) {
        *dep_thread = e->thread;
        *dep_op = e->op;
        s->p->threads[e->thread].ops[e->op].flags |= MALLET_ROP_AWAITED;
        s->p->deps++;
    }
    live_remove(s, e);
    s->live_blocks--;
    return slot;
}

/* A block is born at ptr by the op just emitted in thread t. */
static int block_born(state_t *s, uint32_t t, uint64_t ptr, mallet_rop_t *op)
{
    live_t *old = live_find(s, ptr);
    if (old) { /* its free was not recorded: forget the old block (its slot stays taken) */
        s->live_bytes -= old->size;
        live_remove(s, old);
        s->live_blocks--;
    }
    if (slot_take(s, t, &op->slot)) return -1;
    live_t *e = live_put(s, ptr);
    if (!e) return -1;
    e->slot = op->slot;
    e->thread = t;
    e->op = s->p->threads[t].nops - 1;
    e->size = op->kind == MALLET_OP_CALLOC || op->kind == MALLET_OP_REALLOCARRAY
                  ? (op->arg && op->size > UINT64_MAX / op->arg ? UINT64_MAX : op->arg * op->size)
                  : op->size;
    s->live_bytes += e->size;
    if (s->live_bytes > s->p->peak_live_bytes) s->p->peak_live_bytes = s->live_bytes;
    if (++s->live_blocks > s->p->peak_live_blocks) s->p->peak_live_blocks = s->live_blocks;
    return 0;
}

static int is_realloc(uint8_t op)
{
    return op == MALLET_OP_REALLOC || op == MALLET_OP_REALLOCARRAY;
}

static int prepare_event(state_t *s, const mallet_rec_t *rec)
{
    const mallet_event_t *ev = &rec->ev;
    uint32_t t;
    if (ev->op == MALLET_OP_RSS) return 0;
    if (thread_index(s, ev, &t)) return -1;
    /* A realloc that failed left its block alive, and cannot be replayed faithfully. */
    int failed_realloc = is_realloc(ev->op) && ev->failed;
    pool_t *me = &s->pools[t];
    if (rec->part == MALLET_PART_RELEASE) {
        me->pending_old = MALLET_NO_SLOT;
        me->pending_dep_thread = MALLET_NO_DEP;
        if (!failed_realloc)
            me->pending_old = block_dies(s, t, ev->old_ptr, &me->pending_dep_thread,
                                         &me->pending_dep_op);
        return 0;
    }
    if (ev->failed && ev->op != MALLET_OP_FREE) {
        s->p->failed_allocs++;
        return 0;
    }
    if (ev->op == MALLET_OP_FREE) {
        mallet_rop_t *op;
        if (!ev->ptr) return (op = emit(s, t, MALLET_OP_FREE)) ? 0 : -1; /* free(NULL) is a call */
        uint32_t dep_thread;
        uint64_t dep_op = 0;
        uint32_t slot = block_dies(s, t, ev->ptr, &dep_thread, &dep_op);
        if (slot == MALLET_NO_SLOT) {
            s->p->skipped++; /* double free, or a pointer the trace never allocated */
            return 0;
        }
        if (!(op = emit(s, t, MALLET_OP_FREE))) return -1;
        op->slot = slot;
        op->dep_thread = dep_thread;
        op->dep_op = dep_op;
        return slot_give(s, t, slot);
    }
    uint8_t kind = ev->op;
    uint32_t old_slot = MALLET_NO_SLOT, dep_thread = MALLET_NO_DEP;
    uint64_t dep_op = 0;
    if (is_realloc(kind) && ev->old_ptr) {
        /* the RELEASE half came first (the reader guarantees it) */
        old_slot = me->pending_old;
        dep_thread = me->pending_dep_thread;
        dep_op = me->pending_dep_op;
        me->pending_old = MALLET_NO_SLOT;
        if (old_slot == MALLET_NO_SLOT) { /* resizing a block that is not live: allocate anew */
            s->p->skipped++;
            kind = kind == MALLET_OP_REALLOC ? MALLET_OP_MALLOC : MALLET_OP_CALLOC;
        }
    }
    mallet_rop_t *op = emit(s, t, kind);
    if (!op) return -1;
    op->old_slot = old_slot;
    op->dep_thread = dep_thread;
    op->dep_op = dep_op;
    op->size = ev->size;
    op->arg = ev->nmemb ? ev->nmemb : ev->align;
    if (kind == MALLET_OP_CALLOC && ev->op == MALLET_OP_REALLOCARRAY) op->arg = ev->nmemb;
    if (ev->ptr && block_born(s, t, ev->ptr, op)) return -1;
    if (old_slot != MALLET_NO_SLOT && slot_give(s, t, old_slot)) return -1;
    return 0;
}

int mallet_prepare(mallet_reader_t *r, unsigned file, mallet_prepared_t *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    state_t s;
    memset(&s, 0, sizeof s);
    s.p = out;
    if (file >= mallet_reader_nfiles(r)) return mallet_errorf(err, errlen, "no trace file %u", file);
    /* Index 0 is kept for the main thread, which the worker replays on its own main thread. */
    s.pid = mallet_reader_info(r, file)->pid;
    if (add_thread(&s, (uint32_t)s.pid)) return mallet_errorf(err, errlen, "out of memory");
    mallet_rec_t rec;
    int n, rc = 0;
    while ((n = mallet_reader_next(r, &rec)) > 0) {
        if (rec.file != file) continue;
        if (prepare_event(&s, &rec)) {
            rc = mallet_errorf(err, errlen, "%s: out of memory preparing the replay",
                      mallet_reader_info(r, file)->path);
            break;
        }
    }
    if (!rc && n < 0) rc = mallet_errorf(err, errlen, "%s", mallet_reader_error(r));
    for (uint32_t i = 0; s.pools && i < out->nthreads; i++) free(s.pools[i].free);
    free(s.pools);
    free(s.live);
    free(s.index_of);
    if (rc) mallet_prepared_free(out);
    return rc;
}

void mallet_prepared_free(mallet_prepared_t *p)
{
    for (uint32_t i = 0; p->threads && i < p->nthreads; i++) free(p->threads[i].ops);
    free(p->threads);
    memset(p, 0, sizeof *p);
}
