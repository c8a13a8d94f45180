/* A small pool of zstd compression contexts shared by all threads. A thread borrows one only to
 * compress a full buffer (once per ~10k events), so contention is rare; contexts are static
 * (ZSTD_initStaticCCtx over mmap'd memory) because zstd must not call malloc inside a hook. */
#include "record.h"

#include "trace/chunk_write.h"

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_initStaticCCtx, ZSTD_estimateCCtxSize_usingCParams */
#include <zstd.h>

#define ZSLOTS 8

struct mallet_zslot {
    _Atomic int busy;
    _Atomic int ready;
    ZSTD_CCtx *cctx;
    uint8_t *scratch;
    size_t scratch_cap;
};

static mallet_zslot_t slots[ZSLOTS];
static _Atomic int creating;

static int zslot_create(mallet_zslot_t *z)
{
    size_t in = mallet_proc.opts.buffer_bytes + MALLET_EVENT_MAX_SIZE;
    int level = mallet_proc.opts.level;
    ZSTD_compressionParameters cp = ZSTD_getCParams(level, in, 0);
    size_t wsize = ZSTD_estimateCCtxSize_usingCParams(cp);
    void *work = mallet_map(wsize);
    size_t cap = mallet_chunk_scratch_size(in);
    uint8_t *scratch = mallet_map(cap);
    ZSTD_CCtx *cctx = work ? ZSTD_initStaticCCtx(work, wsize) : NULL;
    if (!cctx || !scratch) {
        mallet_unmap(work, wsize);
        mallet_unmap(scratch, cap);
        return -1;
    }
    z->cctx = cctx;
    z->scratch = scratch;
    z->scratch_cap = cap;
    atomic_store(&z->ready, 1);
    return 0;
}

/* A payload smaller than this (8 KiB) does not make a context, it only uses one that is there: a
 * process's first context costs ~70 us (its tables' page faults), more than a short-lived
 * process's whole trace is worth (`true` recorded took 72 us more when its 2.7 KB memory map made
 * one). So a process that never fills a buffer writes raw chunks. */
#define ZMIN (8u << 10)

/* A thread that runs a signal handler on its alternate signal stack (ours for a fatal signal,
 * flushing, or the program's that calls exit()) writes its chunks raw: that stack may be 8 KiB,
 * ~3.4 KiB of it the kernel's frame here (AT_MINSIGSTKSZ), and zstd's compressor has frames of
 * 4 KiB and more (its histograms; objdump of the recorder), where the rest of the recorder's
 * path there takes about 1 KiB (tests/programs/ender.c altstack). */
mallet_zslot_t *mallet_zslot_get(size_t len)
{
    if (mallet_proc.opts.level == 0 || mallet_on_signal_stack()) return NULL;
    int may_create = len >= ZMIN;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < ZSLOTS; i++) {
            mallet_zslot_t *z = &slots[i];
            if (!atomic_load(&z->ready)) {
                if (!may_create || atomic_exchange(&creating, 1)) continue;
                int ok = !atomic_load(&z->ready) ? zslot_create(z) == 0 : 1;
                atomic_store(&creating, 0);
                if (!ok) return NULL;
            }
            if (!atomic_exchange_explicit(&z->busy, 1, memory_order_acquire)) return z;
        }
    }
    return NULL; /* all busy: the caller writes this chunk uncompressed */
}

void mallet_zslot_put(mallet_zslot_t *z)
{
    atomic_store_explicit(&z->busy, 0, memory_order_release);
}

void mallet_zslot_after_fork_child(void)
{
    for (int i = 0; i < ZSLOTS; i++)
        atomic_store(&slots[i].busy, 0);
    atomic_store(&creating, 0);
}

int mallet_zslot_write(mallet_zslot_t *z, mallet_chunk_header_t *h, const uint8_t *raw, size_t len)
{
    /* from the descriptor's check on: a reopen, the memory map's read, the write */
    mallet_sigmask_t saved = mallet_output_guard_begin();
    int fd = mallet_output_fd(), r = fd;
    if (fd >= 0) {
        if (h->type == MALLET_CHUNK_EVENTS) mallet_output_maps(z, 0);
        r = z ? mallet_chunk_write(fd, h, raw, len, z->cctx, mallet_proc.opts.level, z->scratch,
                                   z->scratch_cap)
              : mallet_chunk_write(fd, h, raw, len, NULL, 0, NULL, 0);
    }
    mallet_output_guard_end(saved);
    return r;
}
