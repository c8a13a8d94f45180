/* The replay worker: runs a prepared trace (prepare.h) against whatever allocator its process
 * has (the CLI starts one process per backend, with the backend preloaded), one thread per traced
 * thread, no more at once than the trace had (rfile.h: concurrency), and reports what it
 * measured. Its own memory comes from mmap, never from the allocator
 * under test.
 *
 * The prepared form travels in a replay file (rfile.h). Before the timed part each thread's ops are
 * read into anonymous memory, whole if they fit the budget (MALLET_REPLAY_OPS_MEM), else a chunk
 * at a time as the thread runs; every op is checked before it is used. */
#ifndef MALLET_REPLAY_WORKER_H
#define MALLET_REPLAY_WORKER_H

#include "platform/platform.h"
#include "rfile.h"
#include "rss_sampler.h"

enum mallet_touch {
    MALLET_TOUCH_NONE = 0,  /* only the allocator calls */
    MALLET_TOUCH_FIRST = 1, /* write the first 8 bytes of each new block */
    MALLET_TOUCH_PAGES = 2, /* write a byte in every page of each new block (the default) */
    MALLET_TOUCH_ALL = 3,   /* write every byte of each new block */
};

/* Latency is timed on one call in `every` of each thread, on average, a random gap apart. Two
 * cycle-counter reads cost about as much as a fast malloc (on a VM, rdtsc alone takes ~9 ns), so
 * timing all would double what is measured. `every` is the smallest power of two from
 * MALLET_LATENCY_EVERY_MIN that leaves at most MALLET_LATENCY_SAMPLES samples (up to
 * MALLET_LATENCY_EVERY_MAX): short replays are timed densely, long ones pay ~0.3 ns a call. */
#define MALLET_LATENCY_EVERY_MIN 8u
#define MALLET_LATENCY_EVERY_MAX 1024u
#define MALLET_LATENCY_SAMPLES 262144u
#define MALLET_LAT_BUCKETS 512

typedef struct mallet_latency {
    uint64_t samples;
    uint64_t p50_ns, p90_ns, p99_ns, p999_ns, max_ns;
} mallet_latency_t;

typedef struct mallet_replay_result {
    uint64_t ops;       /* calls made */
    uint32_t latency_every; /* one call in this many was timed */
    uint64_t failed;    /* allocations that returned NULL (the recorded ones did not) */
    uint64_t wall_ns;   /* from the start barrier to the last thread's end */
    uint64_t user_ns, sys_ns;
    uint64_t minor_faults, major_faults; /* during the replay */
    /* Resident set: the process's at the start of the timed part (the harness's tables, all
     * written before, and the program's baseline), its peak during it (the kernel's high-water
     * mark, reset at the start, or the highest sample), and the difference: the allocator's. */
    uint64_t baseline_rss_bytes, process_peak_rss_bytes, peak_rss_bytes;
    const mallet_rss_timeline_t *timeline; /* the whole process's RSS while replaying */
    int syscalls_counted;                  /* a counting run: syscalls[] is filled */
    uint64_t syscalls[MALLET_SC_COUNT_];   /* MALLET_SC_*, made during the timed part */
    mallet_latency_t latency;                   /* all ops */
    mallet_latency_t latency_by_op[MALLET_OP_COUNT_]; /* by MALLET_OP_* */
} mallet_replay_result_t;

/* Replays the replay file at path with the given touch mode. With count_syscalls, the run also
 * counts its memory-management syscalls (a counting run: each counted call is much slower, so its
 * times are not the allocator's). Returns 0, or -1 with err set. */
int mallet_replay_run(const char *path, int touch, int count_syscalls,
                      mallet_replay_result_t *res, char *err, size_t errlen);

#endif
