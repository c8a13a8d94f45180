/* Seed traces for the standalone runners that start from a trace (fuzz_rfile, fuzz_prepare):
 * 400 calls made with the trace writer, on 64 slots taken at random, so blocks are freed and
 * reallocated by other threads than the ones that made them. kind 0: mallocs, frees and
 * reallocs on two threads; 1: the same on six; 2: every allocation call and argument form
 * (calloc and posix_memalign with values past 32 bits, mallocs of both replay-op forms); 3: as 2,
 * with frees of pointers never allocated and double frees. RSS samples every 50 calls. Kinds 1-3
 * mark thread ends (a thread ends after one call in 40; its tid's next call is a new thread's).
 * One call in 30 comes after a pause longer than prepare's gap (MALLET_PREPARE_GAP_NS). */
#ifndef MALLET_FUZZ_TRACE_H
#define MALLET_FUZZ_TRACE_H

#include "fuzz.h"
#include "trace/writer.h"

static inline void fuzz_write_trace(const char *path, int kind)
{
    char err[512];
    mallet_meta_t meta = {.pid = 1, .thread_exits = kind >= 1};
    mallet_writer_t *w = mallet_writer_open(path, &meta, 0, err, sizeof err);
    if (!w) {
        fprintf(stderr, "%s\n", err);
        exit(2);
    }
    uint64_t clock = 1000, live[64] = {0};
    for (int i = 0; i < 400; i++) {
        /* sizes of both malloc forms (MALLET_ROP_SHORT_MAX) */
        mallet_event_t e = {.tid = 1 + (uint32_t)below(kind ? 6 : 2),
                            .size = below(8) ? 1 + below(100) : 65500 + below(100)};
        size_t j = below(64);
        clock += below(30) ? 100 : 2000000; /* now and then a pause: a thread resumes after it */
        e.cycles = clock, e.free_cycles = clock - 10;
        if (kind == 3 && below(20) == 0) { /* a pointer not live: never made, or freed already */
            e.op = MALLET_OP_FREE;
            e.ptr = below(2) ? 0x900000 + 16 * below(100) : 0x100000 + 64 * below(i + 1);
        } else if (live[j]) {
            e.op = below(3) ? MALLET_OP_FREE : MALLET_OP_REALLOC;
            e.old_ptr = e.op == MALLET_OP_REALLOC ? live[j] : 0;
            e.ptr = e.op == MALLET_OP_FREE ? live[j] : 0x100000 + 64 * (uint64_t)i;
            live[j] = e.op == MALLET_OP_FREE ? 0 : e.ptr;
        } else {
            static const uint8_t ops[] = {MALLET_OP_MALLOC, MALLET_OP_CALLOC,
                                          MALLET_OP_POSIX_MEMALIGN, MALLET_OP_VALLOC};
            e.op = kind >= 2 ? ops[below(4)] : MALLET_OP_MALLOC;
            e.nmemb = e.op == MALLET_OP_CALLOC ? (below(2) ? 3 : 5ull << 33) : 0;
            e.align = e.op == MALLET_OP_POSIX_MEMALIGN ? (below(2) ? 64 : 1ull << 36) : 0;
            e.ptr = live[j] = 0x100000 + 64 * (uint64_t)i;
        }
        if (mallet_writer_event(w, &e)) exit(2);
        if (kind >= 1 && below(40) == 0 && mallet_writer_thread_exit(w, e.tid, clock + 5)) exit(2);
        if (i % 50 == 0) { /* an RSS sample: the replay file keeps them after its index */
            mallet_event_t rss = {
                .tid = 1, .op = MALLET_OP_RSS, .cycles = clock, .size = 4096u * i};
            if (mallet_writer_event(w, &rss)) exit(2);
        }
    }
    if (mallet_writer_close(w, 1)) exit(2);
}

#endif
