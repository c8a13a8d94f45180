/* What `mallet replay` reports: one table row per allocator and trace, and the JSON results
 * (docs/RESULTS_SCHEMA.md). cmd_replay.c runs the workers and fills the runs. */
#ifndef MALLET_CLI_REPLAY_REPORT_H
#define MALLET_CLI_REPLAY_REPORT_H

#include "backend/backend.h"
#include "replay/worker.h"

#include <jansson.h>

/* docs/RESULTS_SCHEMA.md: 1 added the allocator's share of peak RSS, its timeline and syscalls */
#define MALLET_RESULTS_VERSION 1

/* One run of one backend on one trace (a timed run, or the counting run). */
typedef struct mallet_cli_run {
    const char *allocator, *trace;
    int repetition;
    int ok;
    uint64_t peak_live_bytes; /* of the trace: what the program asked to hold at most */
    char problem[256];
    mallet_replay_result_t res;
    mallet_rss_timeline_t timeline; /* res.timeline points here */
    const struct mallet_cli_run
        *counted; /* the counting run of its backend and trace, if it worked */
} mallet_cli_run_t;

/* What a trace's replay file says of the traced process: its own RSS samples, and its threads
 * (how many, and the most alive at once: the most the replay runs at once). */
typedef struct mallet_replay_trace {
    uint32_t n;
    mallet_rss_sample_t s[MALLET_RFILE_RSS_MAX];
    uint32_t threads, at_once;
    uint64_t gap_ns; /* the resume gap it was prepared with, 0: none */
} mallet_replay_trace_t;

/* Prints the table; returns how many runs failed. */
int mallet_replay_print_table(const mallet_cli_run_t *runs, size_t nruns, int repeat);

/* The results document: every run, and where the numbers come from. NULL on failure. */
json_t *mallet_replay_results(const mallet_cli_run_t *runs, size_t nruns,
                              const mallet_backend_t *bs, size_t nb, char **traces, int ntraces,
                              const mallet_replay_trace_t *tinfo, const char *touch, int syscalls);

#endif
