/* mallet-worker: the process a replay runs in, one per backend and run, started by `mallet
 * replay` with the backend preloaded. A program of its own, small and never sanitized, so that
 * nothing but the allocator under test and the replay itself runs in it.
 * usage: mallet-worker PREPARED_FILE TOUCH_MODE; prints one line of results on stdout. */
#include "worker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        static const char usage[] = "usage: mallet-worker PREPARED_FILE TOUCH_MODE\n";
        return write(2, usage, sizeof usage - 1) < 0 ? 2 : 2;
    }
    mallet_replay_result_t res;
    char err[4352];
    if (mallet_replay_run(argv[1], atoi(argv[2]), &res, err, sizeof err)) {
        char line[4400];
        int n = snprintf(line, sizeof line, "mallet-worker: %s\n", err);
        return write(2, line, (size_t)n) < 0 ? 1 : 1;
    }
    char line[256];
    int n = snprintf(line, sizeof line,
                     "ops=%" PRIu64 " failed=%" PRIu64 " wall_ns=%" PRIu64 " user_ns=%" PRIu64
                     " sys_ns=%" PRIu64 " minflt=%" PRIu64 " majflt=%" PRIu64 " maxrss=%" PRIu64
                     "\n",
                     res.ops, res.failed, res.wall_ns, res.user_ns, res.sys_ns, res.minor_faults,
                     res.major_faults, res.max_rss_bytes);
    if (write(1, line, (size_t)n) != n) return 1;
    /* then one line per op kind that was timed, and one for all: samples and percentiles */
    for (unsigned k = 0; k <= MALLET_OP_COUNT_; k++) {
        const mallet_latency_t *l = k < MALLET_OP_COUNT_ ? &res.latency_by_op[k] : &res.latency;
        if (!l->samples) continue;
        n = snprintf(line, sizeof line,
                     "lat %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                     "\n",
                     k < MALLET_OP_COUNT_ ? mallet_op_name(k) : "all", l->samples, l->p50_ns,
                     l->p90_ns, l->p99_ns, l->p999_ns, l->max_ns);
        if (write(1, line, (size_t)n) != n) return 1;
    }
    return 0;
}
