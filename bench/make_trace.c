/* A large trace without recording anything: THREADS threads (default 8) each toggle blocks in
 * their own 4096 slots at random (a slot's block is freed on the next visit, else one of 8-520
 * bytes is made), and CROSS percent (default 10) of the frees are done by another thread, which
 * makes the replay wait for the thread that made the block. Written with the trace writer, raw
 * chunks; deterministic for given arguments.
 * usage: make_trace OUT EVENTS [THREADS [CROSS]] */
#include "trace/writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define SLOTS 4096

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: make_trace OUT EVENTS [THREADS [CROSS]]\n");
        return 2;
    }
    uint64_t events = strtoull(argv[2], NULL, 0);
    unsigned nt = argc > 3 ? (unsigned)atoi(argv[3]) : 8, cross = argc > 4 ? (unsigned)atoi(argv[4]) : 10;
    if (nt < 1 || nt > 1024) return 2;
    char err[512];
    mallet_writer_t *w = mallet_writer_open(argv[1], NULL, 0, err, sizeof err);
    if (!w) return fprintf(stderr, "make_trace: %s\n", err), 1;
    uint64_t *slot = calloc((size_t)nt * SLOTS, sizeof *slot);
    if (!slot) return 1;
    uint64_t x = 0x9e3779b97f4a7c15ull, clock = 1000000, next = 0x10000000;
    for (uint64_t i = 0; i < events; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned t = (unsigned)(x % nt), s = (unsigned)((x >> 20) % SLOTS);
        uint64_t *p = &slot[(size_t)t * SLOTS + s];
        mallet_event_t e = {.callsite = 0x401000, .cycles = clock += 50};
        if (*p) {
            unsigned by = nt > 1 && (x >> 40) % 100 < cross ? (t + 1 + (unsigned)((x >> 48) % (nt - 1))) % nt : t;
            e.op = MALLET_OP_FREE, e.tid = 1000 + by, e.ptr = *p;
            *p = 0;
        } else {
            e.op = MALLET_OP_MALLOC, e.tid = 1000 + t, e.size = 8 + (x >> 32) % 513, e.ptr = next;
            *p = next;
            next += (e.size + 15) & ~15ull;
        }
        if (mallet_writer_event(w, &e)) return fprintf(stderr, "make_trace: write failed\n"), 1;
    }
    free(slot);
    return mallet_writer_close(w, 1) ? 1 : 0;
}
