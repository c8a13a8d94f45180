/* Event encoder: turns one event into its EVENTS-chunk bytes (format.h). Inline because it runs
 * inside every hooked allocation call of the recorder; the trace writer used by tools and tests
 * shares it, so there is exactly one encoder. No allocation, no libc calls. */
#ifndef MALLET_TRACE_ENCODE_H
#define MALLET_TRACE_ENCODE_H

#include "format.h"

/* Per-chunk delta state; zero it at the start of every chunk. */
typedef struct mallet_enc_state {
    uint64_t cycles;
    uint64_t mark;                       /* decoding: the last mark's time, 0 once taken */
    uint64_t ptr;                        /* the last pointer field written, of any event */
    uint64_t callsite[MALLET_OP_COUNT_]; /* the last callsite of each op */
} mallet_enc_state_t;

static inline uint8_t *mallet_put_ptr(uint8_t *p, mallet_enc_state_t *st, uint64_t v)
{
    /* Blocks of one thread cluster in a few arenas: the difference to the previous pointer
     * usually fits in 2-3 bytes where the pointer needs 6. */
    p = mallet_put_varint(p, mallet_zigzag((int64_t)(v - st->ptr)));
    st->ptr = v;
    return p;
}

/* The earliest timestamp of ev: a realloc that gives up a block does so at free_cycles, before
 * its call returns. A chunk's first_cycles is this value for its first event, so that the reader
 * (which never lets a chunk's events go before first_cycles) keeps the release time. */
static inline uint64_t mallet_event_start(const mallet_event_t *ev)
{
    if ((ev->op == MALLET_OP_REALLOC || ev->op == MALLET_OP_REALLOCARRAY) && ev->old_ptr &&
        ev->free_cycles < ev->cycles)
        return ev->free_cycles;
    return ev->cycles;
}

/* Encodes a mark (format.h, MALLET_MARK) of time cycles, no earlier than the last event's, at p
 * (at least 16 bytes free) and returns the end. */
static inline uint8_t *mallet_encode_mark(uint8_t *p, mallet_enc_state_t *st, uint64_t cycles)
{
    *p++ = MALLET_MARK;
    p = mallet_put_short(p, mallet_zigzag((int64_t)(cycles - st->cycles)));
    st->cycles = cycles;
    return p;
}

/* Encodes ev at p (which must have MALLET_EVENT_MAX_SIZE bytes free) and returns the end. */
__attribute__((always_inline)) static inline uint8_t *mallet_encode_event(uint8_t *p, mallet_enc_state_t *st,
                                           const mallet_event_t *ev)
{
    const unsigned op = ev->op < MALLET_OP_COUNT_ ? ev->op : 0;
    const int same_site = ev->callsite == st->callsite[op];
    const int same_time = ev->cycles == st->cycles;
    *p++ = (uint8_t)(op | (ev->failed ? MALLET_EV_FAIL : 0) | (same_site ? MALLET_EV_SAME_SITE : 0) |
                     (same_time ? MALLET_EV_SAME_TIME : 0));
    if (!same_time) p = mallet_put_short(p, mallet_zigzag((int64_t)(ev->cycles - st->cycles)));
    st->cycles = ev->cycles;
    switch (op) {
    case MALLET_OP_MALLOC:
    case MALLET_OP_VALLOC:
    case MALLET_OP_PVALLOC:
        p = mallet_put_short(p, ev->size);
        p = mallet_put_ptr(p, st, ev->ptr);
        break;
    case MALLET_OP_CALLOC:
        p = mallet_put_short(p, ev->nmemb);
        p = mallet_put_short(p, ev->size);
        p = mallet_put_ptr(p, st, ev->ptr);
        break;
    case MALLET_OP_REALLOC:
        p = mallet_put_ptr(p, st, ev->old_ptr);
        p = mallet_put_short(p, ev->size);
        p = mallet_put_ptr(p, st, ev->ptr);
        p = mallet_put_short(p, ev->cycles - ev->free_cycles);
        break;
    case MALLET_OP_REALLOCARRAY:
        p = mallet_put_ptr(p, st, ev->old_ptr);
        p = mallet_put_short(p, ev->nmemb);
        p = mallet_put_short(p, ev->size);
        p = mallet_put_ptr(p, st, ev->ptr);
        p = mallet_put_short(p, ev->cycles - ev->free_cycles);
        break;
    case MALLET_OP_FREE:
        p = mallet_put_ptr(p, st, ev->ptr);
        break;
    case MALLET_OP_POSIX_MEMALIGN:
    case MALLET_OP_ALIGNED_ALLOC:
    case MALLET_OP_MEMALIGN:
        p = mallet_put_short(p, ev->align);
        p = mallet_put_short(p, ev->size);
        p = mallet_put_ptr(p, st, ev->ptr);
        if (op == MALLET_OP_POSIX_MEMALIGN && ev->failed)
            p = mallet_put_short(p, (uint64_t)(uint32_t)ev->ret);
        break;
    case MALLET_OP_RSS:
        p = mallet_put_short(p, ev->size);
        break;
    default:
        break;
    }
    if (!same_site) {
        p = mallet_put_short(p, mallet_zigzag((int64_t)(ev->callsite - st->callsite[op])));
        st->callsite[op] = ev->callsite;
    }
    return p;
}

#endif
