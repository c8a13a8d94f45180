/* The floor under a replay's time: the same calls, from the same replay file, made by the least
 * code that can make them. One thread per stream (the first on the main thread, as in the
 * worker), every stream read whole before the clock starts, then a loop that only calls: no
 * latency sampling, no touching of memory, no failure counting. A wait spins on the other
 * thread's count of ops done, which every thread publishes after every op (a store the worker
 * avoids; it is free when no thread waits).
 *
 * bench/replay_overhead.sh runs it beside `mallet replay --touch none` on the same backend: the
 * difference, per op, is what the harness adds to the calls.
 *
 * usage: call_floor REPLAY_FILE    (run with the backend preloaded; prints "ops=N wall_ns=N") */
#define _GNU_SOURCE
#include "platform/platform.h"
#include "replay/rfile.h"

#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

typedef struct stream {
    mallet_rop_t *ops;
    mallet_rop_ext_t *exts; /* behind the ops, in the same mapping */
    uint64_t n;
    _Alignas(64) _Atomic uint64_t done;
} stream_t;

static stream_t *streams;
static void **slots;
static _Atomic int go;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *run(void *arg)
{
    stream_t *st = arg;
    const mallet_rop_ext_t *x = st->exts;
    while (!atomic_load_explicit(&go, memory_order_acquire)) {
    }
    for (uint64_t i = 0; i < st->n; i++) {
        const mallet_rop_t *o = &st->ops[i];
        uint64_t size, aux;
        switch (o->kind) {
        case MALLET_OP_MALLOC: slots[o->slot] = malloc(o->size); break;
        case MALLET_OP_FREE: free(o->slot != MALLET_NO_SLOT ? slots[o->slot] : NULL); break;
        case MALLET_ROP_WAIT | MALLET_ROP_EXT:
            while (atomic_load_explicit(&streams[x->aux].done, memory_order_acquire) <= o->slot) {
            }
            x++;
            break;
        default: { /* an op with EXT */
            uint8_t kind = mallet_rop_kind(o);
            mallet_rop_args(o, x, &size, &aux);
            uint32_t old_slot = mallet_rop_old_slot(o, x++);
            void *old = old_slot != MALLET_NO_SLOT ? slots[old_slot] : NULL;
            void *p = NULL;
            if (kind == MALLET_OP_MALLOC) p = malloc(size);
            else if (kind == MALLET_OP_CALLOC) p = calloc(aux, size);
            else if (mallet_rop_resizes(kind)) p = realloc(old, size * aux);
            else if (mallet_rop_aligns(kind) && posix_memalign(&p, aux, size)) p = NULL;
            else if (kind == MALLET_OP_VALLOC || kind == MALLET_OP_PVALLOC) p = valloc(size);
            if (o->slot != MALLET_NO_SLOT) slots[o->slot] = p;
            break;
        }
        }
        atomic_store_explicit(&st->done, i + 1, memory_order_release);
    }
    return NULL;
}

/* Zeroed anonymous memory, like the worker's (never from the allocator under test). */
static void *map(size_t len)
{
    void *p = mallet_map(len);
    return p ? memset(p, 0, len ? len : 1) : NULL;
}

int main(int argc, char **argv)
{
    char err[4352];
    mallet_rfile_t rf;
    if (argc != 2) {
        fprintf(stderr, "usage: call_floor REPLAY_FILE\n");
        return 2;
    }
    if (mallet_rfile_open(argv[1], &rf, err, sizeof err)) {
        fprintf(stderr, "call_floor: %s\n", err);
        return 1;
    }
    streams = map((rf.nthreads + 1) * sizeof *streams);
    slots = map((size_t)rf.nslots * sizeof *slots);
    pthread_t *tids = map((rf.nthreads + 1) * sizeof *tids);
    if (!streams || !slots || !tids) return 1;
    for (uint32_t t = 0; t < rf.nthreads; t++) {
        const mallet_rfile_thread_t *th = &rf.threads[t];
        streams[t].n = th->nops;
        if (!(streams[t].ops = map(th->nops * sizeof(mallet_rop_t) +
                                   th->nexts * sizeof(mallet_rop_ext_t))))
            return 1;
        streams[t].exts = (mallet_rop_ext_t *)(streams[t].ops + th->nops);
        for (uint64_t k = 0; k < th->nchunks; k++)
            if (mallet_rfile_read_chunk(&rf, t, k, streams[t].ops + th->chunks[k].first,
                                        streams[t].exts + th->chunks[k].xfirst, err,
                                        sizeof err) < 0) {
                fprintf(stderr, "call_floor: %s\n", err);
                return 1;
            }
    }
    for (uint32_t t = 1; t < rf.nthreads; t++)
        if (pthread_create(&tids[t], NULL, run, &streams[t])) return 1;
    uint64_t t0 = now_ns();
    atomic_store_explicit(&go, 1, memory_order_release);
    if (rf.nthreads) run(&streams[0]);
    for (uint32_t t = 1; t < rf.nthreads; t++) pthread_join(tids[t], NULL);
    uint64_t t1 = now_ns();
    printf("ops=%" PRIu64 " wall_ns=%" PRIu64 "\n", rf.info.ops, t1 - t0);
    return 0;
}
