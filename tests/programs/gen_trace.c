/* Writes synthetic traces through the trace writer, with answers known by construction, for the
 * replay tests and the benchmarks. Prints the answers as JSON on stdout.
 *
 *   gen_trace prodcons OUT   a main thread, 4 producers and 4 consumers: every block a producer
 *                            makes is freed by a consumer (all frees cross-thread), in waves
 *   gen_trace big OUT        the main thread alone holds 49 MiB at its peak (blocks of 64 B to
 *                            256 KiB), then reallocs and frees everything; an RSS sample (the
 *                            live bytes) every 128 allocations on the way up
 *   gen_trace random OUT EVENTS [THREADS [CROSS]]
 *                            THREADS threads (default 8) each toggle blocks in their own 4096
 *                            slots at random (a slot's block is freed on the next visit, else one
 *                            of 8-520 bytes is made), and CROSS percent (default 10) of the frees
 *                            are done by another thread, which makes a replay wait for the thread
 *                            that made the block; deterministic for given arguments (the
 *                            benchmarks' large traces: bench/prepare_scale.sh)
 *
 * Answers: "recorded_rss" (the bytes of the RSS samples it wrote), "ops" (calls), "alloc_calls", "free_calls", "cross_thread_frees", "peak_live_bytes",
 * "live_at_end", "threads". */
#include "trace/writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PID 7000u

static mallet_writer_t *w;
static uint64_t now = 1000000, ops, allocs, frees, cross, live, peak;

static void emit(mallet_event_t e)
{
    e.cycles = (now += 100);
    if (e.op == MALLET_OP_REALLOC) e.free_cycles = e.cycles - 50;
    if (mallet_writer_event(w, &e)) {
        fprintf(stderr, "gen_trace: write failed\n");
        exit(1);
    }
    ops++;
}

/* An RSS sample of the traced process (not a call): `big` writes the live bytes as its RSS, so
 * the samples a replay reports as the original run's are known. */
static uint64_t rss_bytes[64];
static unsigned nrss;

static void rss(uint64_t bytes)
{
    mallet_event_t e = {.tid = PID, .op = MALLET_OP_RSS, .size = bytes, .cycles = (now += 100)};
    if (mallet_writer_event(w, &e)) {
        fprintf(stderr, "gen_trace: write failed\n");
        exit(1);
    }
    rss_bytes[nrss++] = bytes;
}

static void born(uint64_t size)
{
    allocs++;
    if ((live += size) > peak) peak = live;
}

static void prodcons(void)
{
    enum { PRODUCERS = 4, WAVES = 50, PER = 200 };
    uint64_t addr[PRODUCERS][PER], size[PRODUCERS][PER];
    /* the main thread starts with a block of its own, freed at the end */
    emit((mallet_event_t){.tid = PID, .op = MALLET_OP_MALLOC, .size = 4096, .ptr = 0x10000});
    born(4096);
    for (unsigned wave = 0; wave < WAVES; wave++) {
        for (unsigned i = 0; i < PER; i++)
            for (unsigned p = 0; p < PRODUCERS; p++) {
                /* addresses repeat from wave to wave, as a real heap reuses them */
                addr[p][i] = 0x7f0000000000ull + ((uint64_t)p << 24) + (uint64_t)i * 4096;
                size[p][i] = 16 + (wave * 7 + i * 13 + p) % 2000;
                emit((mallet_event_t){.tid = PID + 1 + p, .op = MALLET_OP_MALLOC,
                                      .size = size[p][i], .ptr = addr[p][i]});
                born(size[p][i]);
            }
        for (unsigned i = 0; i < PER; i++)
            for (unsigned p = 0; p < PRODUCERS; p++) {
                /* consumer c frees what producer (c + 1) % 4 made */
                emit((mallet_event_t){.tid = PID + 1 + PRODUCERS + (p + 3) % PRODUCERS,
                                      .op = MALLET_OP_FREE, .ptr = addr[p][i]});
                frees++, cross++;
                live -= size[p][i];
            }
    }
    emit((mallet_event_t){.tid = PID, .op = MALLET_OP_FREE, .ptr = 0x10000});
    frees++;
    live -= 4096;
}

static void big(void)
{
    enum { N = 1536 };
    static uint64_t addr[N], size[N];
    uint64_t next = 0x600000000000ull;
    for (unsigned i = 0; i < N; i++) { /* 64 B .. 64 KiB, and every 16th 256 KiB */
        size[i] = i % 16 == 15 ? 262144 : 64u << (i % 11);
        addr[i] = next;
        next += (size[i] + 4095) & ~4095ull;
        emit((mallet_event_t){.tid = PID, .op = i % 5 == 0 ? MALLET_OP_CALLOC : MALLET_OP_MALLOC,
                              .nmemb = i % 5 == 0 ? 1 : 0, .size = size[i], .ptr = addr[i]});
        born(size[i]);
        if (i % 128 == 127) rss(live);
    }
    for (unsigned i = 0; i < N; i += 2) { /* half the blocks grow to a new place */
        uint64_t to = next, grown = size[i] * 2;
        next += (grown + 4095) & ~4095ull;
        emit((mallet_event_t){.tid = PID, .op = MALLET_OP_REALLOC, .old_ptr = addr[i],
                              .size = grown, .ptr = to});
        allocs++; /* a realloc returns a block: an alloc call, not a free call (as in stats) */
        live -= size[i];
        if ((live += grown) > peak) peak = live;
        addr[i] = to, size[i] = grown;
    }
    for (unsigned i = 0; i < N; i++) {
        emit((mallet_event_t){.tid = PID, .op = MALLET_OP_FREE, .ptr = addr[i]});
        frees++;
        live -= size[i];
    }
}

static void random_toggles(uint64_t events, unsigned nt, unsigned cross_pct)
{
    enum { SLOTS = 4096 };
    uint64_t *slot = calloc((size_t)nt * SLOTS * 2, sizeof *slot); /* address, size */
    if (!slot) {
        fprintf(stderr, "gen_trace: out of memory\n");
        exit(1);
    }
    uint64_t x = 0x9e3779b97f4a7c15ull, next = 0x10000000;
    for (uint64_t i = 0; i < events; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned t = (unsigned)(x % nt), s = (unsigned)((x >> 20) % SLOTS);
        uint64_t *p = &slot[((size_t)t * SLOTS + s) * 2];
        if (p[0]) {
            unsigned by = t;
            if (nt > 1 && (x >> 40) % 100 < cross_pct)
                by = (t + 1 + (unsigned)((x >> 48) % (nt - 1))) % nt, cross++;
            emit((mallet_event_t){.tid = PID + by, .op = MALLET_OP_FREE, .ptr = p[0]});
            frees++;
            live -= p[1];
            p[0] = 0;
        } else {
            uint64_t size = 8 + (x >> 32) % 513;
            emit((mallet_event_t){.tid = PID + t, .op = MALLET_OP_MALLOC, .size = size,
                                  .ptr = next});
            born(size);
            p[0] = next, p[1] = size;
            next += (size + 15) & ~15ull;
        }
    }
    free(slot);
}

int main(int argc, char **argv)
{
    int is_random = argc >= 4 && argc <= 6 && !strcmp(argv[1], "random");
    if (!is_random && (argc != 3 || (strcmp(argv[1], "prodcons") && strcmp(argv[1], "big")))) {
        fprintf(stderr, "usage: gen_trace prodcons|big OUT\n"
                        "       gen_trace random OUT EVENTS [THREADS [CROSS]]\n");
        return 2;
    }
    uint64_t events = is_random ? strtoull(argv[3], NULL, 0) : 0;
    unsigned nt = is_random && argc > 4 ? (unsigned)atoi(argv[4]) : 8;
    unsigned cross_pct = is_random && argc > 5 ? (unsigned)atoi(argv[5]) : 10;
    if (nt < 1 || nt > 1024) {
        fprintf(stderr, "gen_trace: THREADS must be 1..1024\n");
        return 2;
    }
    char err[512];
    mallet_meta_t meta = {.pid = PID, .ppid = 1, .cycles_per_sec = 1000000000u};
    w = mallet_writer_open(argv[2], &meta, 0, err, sizeof err);
    if (!w) {
        fprintf(stderr, "gen_trace: %s\n", err);
        return 1;
    }
    int threads = 1;
    if (is_random)
        random_toggles(events, nt, cross_pct), threads = (int)nt;
    else if (!strcmp(argv[1], "prodcons"))
        prodcons(), threads = 9;
    else
        big();
    if (mallet_writer_close(w, 1)) {
        fprintf(stderr, "gen_trace: %s: cannot finish the file\n", argv[2]);
        return 1;
    }
    printf("{\"recorded_rss\": [");
    for (unsigned i = 0; i < nrss; i++) printf("%s%" PRIu64, i ? ", " : "", rss_bytes[i]);
    printf("], \"ops\": %" PRIu64 ", \"alloc_calls\": %" PRIu64 ", \"free_calls\": %" PRIu64
           ", \"cross_thread_frees\": %" PRIu64 ", \"peak_live_bytes\": %" PRIu64
           ", \"live_at_end\": %" PRIu64 ", \"threads\": %d}\n",
           ops, allocs, frees, cross, peak, live, threads);
    return 0;
}
