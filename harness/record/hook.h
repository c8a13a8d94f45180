/* What every hooked entry point shares (preload.c: C's, cxx.c: C++'s operator new and delete):
 * the guard that keeps nested calls out of the trace, and the event a hook fills in. */
#ifndef MALLET_HOOK_H
#define MALLET_HOOK_H

#include "record.h"

#define EXPORT __attribute__((visibility("default")))
#define CALLSITE() ((uint64_t)(uintptr_t)__builtin_return_address(0))

/* Returns the thread state if this call is to be recorded (and marks the thread as inside a
 * hook), or NULL if it passes straight through. */
static inline mallet_tstate_t *enter(void)
{
    int ready = atomic_load_explicit(&mallet_ready, memory_order_relaxed);
    if (MALLET_UNLIKELY(ready != 1)) {
        /* 2 (off, failed, or another thread starting the recorder) passes through without the
         * call: mallet_init would return at once, and pass-through is all a disabled recorder
         * costs, on every call */
        if (ready == 0) mallet_init();
        if (atomic_load_explicit(&mallet_ready, memory_order_acquire) != 1) return NULL;
    }
    mallet_tstate_t *t = &mallet_tls;
    if (t->in_hook) return NULL;
    t->in_hook = 1;
    return t;
}

/* Declares ev, the fields its op does not use zero. It never lives in memory: nothing takes it
 * whole (mallet_rec_event passes its rare path the fields one by one), so the compiler keeps each
 * field in a register and the zeros cost nothing; an event in memory cost the hook a stack frame
 * and a store per field, and, zeroed, a `rep stos`. */
#define EVENT(opcode, fail) EVENT_AT(opcode, fail, CALLSITE())
#define EVENT_AT(opcode, fail, site)                                                               \
    mallet_event_t ev = {.op = (opcode), .failed = (uint8_t)(fail), .callsite = (site)}

/* Records a block of n bytes (aligned to align, 0: the default) that an allocation at site
 * returned (p; NULL: failed): the hooks that make one block share it, each passing its own
 * CALLSITE(), which must be taken in the hook itself. */
__attribute__((always_inline)) static inline void rec_alloc(mallet_tstate_t *t, uint8_t op, void *p,
                                                            size_t n, size_t align, uint64_t site)
{
    EVENT_AT(op, !p, site);
    ev.cycles = mallet_stamp(t, (uintptr_t)p, 0);
    ev.size = n;
    ev.align = align;
    ev.ptr = (uintptr_t)p;
    mallet_rec_event(t, &ev);
}

static inline void leave(mallet_tstate_t *t)
{
    t->in_hook = 0;
}

#endif
