/* The replay worker: runs a prepared trace (prepare.h) against whatever allocator its process
 * has (the CLI starts one process per backend, with the backend preloaded), one thread per traced
 * thread, and reports what it measured. Its own memory comes from mmap, never from the allocator
 * under test.
 *
 * The prepared form travels in a replay file (rfile.h). Before the timed part each thread's ops are
 * read into anonymous memory, whole if they fit the budget (MALLET_REPLAY_OPS_MEM), else a chunk
 * at a time as the thread runs; every op is checked before it is used. */
#ifndef MALLET_REPLAY_WORKER_H
#define MALLET_REPLAY_WORKER_H

#include "rfile.h"

enum mallet_touch {
    MALLET_TOUCH_NONE = 0,  /* only the allocator calls */
    MALLET_TOUCH_FIRST = 1, /* write the first 8 bytes of each new block */
    MALLET_TOUCH_PAGES = 2, /* write a byte in every page of each new block (the default) */
    MALLET_TOUCH_ALL = 3,   /* write every byte of each new block */
};

/* Latency is timed on one op in MALLET_LATENCY_EVERY of each thread (two cycle-counter reads cost
 * about as much as a fast malloc; timing all would double what is measured). */
#define MALLET_LATENCY_EVERY 8
#define MALLET_LAT_BUCKETS 512

typedef struct mallet_latency {
    uint64_t samples;
    uint64_t p50_ns, p90_ns, p99_ns, p999_ns, max_ns;
} mallet_latency_t;

typedef struct mallet_replay_result {
    uint64_t ops;       /* calls made */
    uint64_t failed;    /* allocations that returned NULL (the recorded ones did not) */
    uint64_t wall_ns;   /* from the start barrier to the last thread's end */
    uint64_t user_ns, sys_ns;
    uint64_t minor_faults, major_faults; /* during the replay */
    uint64_t max_rss_bytes; /* the worker's peak resident set (its own tables included) */
    mallet_latency_t latency;                   /* all ops */
    mallet_latency_t latency_by_op[MALLET_OP_COUNT_]; /* by MALLET_OP_* */
} mallet_replay_result_t;

/* Replays the replay file at path with the given touch mode. Returns 0, or -1 with err set. */
int mallet_replay_run(const char *path, int touch, mallet_replay_result_t *res, char *err,
                      size_t errlen);

#endif
