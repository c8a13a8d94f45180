/* Replay-ready form of one process's trace (issue 3): the events become one op stream per traced
 * thread, pointers become dense slot numbers, and an op that frees (or reallocs) a block another
 * thread made names the op it must wait for. Ops that cannot be replayed faithfully (a free of a
 * pointer that is not live: a double free, or one the trace never allocated) are skipped and
 * counted, never executed.
 *
 * Slots are reused as blocks die, so the slot table follows the peak live block count, not the
 * event count. A slot freed by a thread goes back to that thread's own pool, so no thread ever
 * writes a slot another thread may still read without a dependency between them.
 *
 * This first version builds the form in memory (malloc); the streaming, cached form the issue
 * asks for builds on the same op layout. */
#ifndef MALLET_REPLAY_PREPARE_H
#define MALLET_REPLAY_PREPARE_H

#include "trace/reader.h"

#define MALLET_NO_SLOT UINT32_MAX
#define MALLET_NO_DEP UINT32_MAX

/* One replayed call. kind is the trace's op (MALLET_OP_*). */
#define MALLET_ROP_AWAITED 0x1u /* another thread waits for this op: publish its completion */

typedef struct mallet_rop {
    uint8_t kind;
    uint8_t flags;       /* MALLET_ROP_* */
    uint32_t slot;       /* the block it makes (allocations, realloc's new block) or frees */
    uint32_t old_slot;   /* realloc/reallocarray: the block it resizes, or MALLET_NO_SLOT */
    uint64_t size;       /* bytes (calloc, reallocarray: element size) */
    uint64_t arg;        /* calloc/reallocarray: element count; memalign family: alignment */
    uint32_t dep_thread; /* wait until thread dep_thread has done op dep_op, or MALLET_NO_DEP */
    uint64_t dep_op;
} mallet_rop_t;

typedef struct mallet_rthread {
    uint32_t tid;     /* the traced thread's OS id, for reports */
    mallet_rop_t *ops;
    uint64_t nops, cap;
} mallet_rthread_t;

typedef struct mallet_prepared {
    mallet_rthread_t *threads;
    uint32_t nthreads;
    uint32_t nslots;        /* slots ever used: at most the peak of live blocks plus threads */
    uint64_t ops;           /* calls to replay */
    uint64_t deps;          /* ops that wait for another thread */
    uint64_t skipped;       /* frees/reallocs of pointers that were not live: not replayed */
    uint64_t failed_allocs; /* allocations that failed when recorded: not replayed */
    uint64_t peak_live_blocks;
    uint64_t peak_live_bytes; /* requested bytes (calloc, reallocarray: count x size) */
} mallet_prepared_t;

/* Prepares the events of trace file `file` of r (other files' events are passed over). The
 * reader must be fresh (nothing read yet). Returns 0, or -1 with a message in err. */
int mallet_prepare(mallet_reader_t *r, unsigned file, mallet_prepared_t *out, char *err,
                   size_t errlen);
void mallet_prepared_free(mallet_prepared_t *p);

#endif
