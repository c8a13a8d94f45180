/* mallet-worker: the process a replay runs in, one per backend and run, started by `mallet
 * replay` with the backend preloaded. A program of its own, small and never sanitized, so that
 * nothing but the allocator under test and the replay itself runs in it.
 * usage: mallet-worker PREPARED_FILE TOUCH_MODE [count]
 * ("count": a counting run, see mallet_replay_run). Prints its results on stdout, a line each:
 *   ops=N failed=N wall_ns=N user_ns=N sys_ns=N minflt=N majflt=N latency_every=N
 *   rss baseline=BYTES peak=BYTES process_peak=BYTES
 *   rss_timeline INTERVAL_NS T_NS:BYTES...     (the whole process's resident set)
 *   sys mmap=N munmap=N mremap=N brk=N madvise=N mprotect=N     (counting runs only)
 *   lat KIND SAMPLES P50 P90 P99 P999 MAX      (per op kind timed, and "all") */
#include "worker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int put(const char *line, int n)
{
    return n > 0 && write(1, line, (size_t)n) == n ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "count"))) {
        static const char usage[] = "usage: mallet-worker PREPARED_FILE TOUCH_MODE [count]\n";
        return write(2, usage, sizeof usage - 1) < 0 ? 2 : 2;
    }
    mallet_replay_result_t res;
    char err[4352];
    if (mallet_replay_run(argv[1], atoi(argv[2]), argc == 4, &res, err, sizeof err)) {
        char line[4400];
        int n = snprintf(line, sizeof line, "mallet-worker: %s\n", err);
        return write(2, line, (size_t)n) < 0 ? 1 : 1;
    }
    char line[512];
    int bad = put(line, snprintf(line, sizeof line,
                                 "ops=%" PRIu64 " failed=%" PRIu64 " wall_ns=%" PRIu64
                                 " user_ns=%" PRIu64 " sys_ns=%" PRIu64 " minflt=%" PRIu64
                                 " majflt=%" PRIu64 " latency_every=%u\n",
                                 res.ops, res.failed, res.wall_ns, res.user_ns, res.sys_ns,
                                 res.minor_faults, res.major_faults, res.latency_every));
    bad |= put(line, snprintf(line, sizeof line,
                              "rss baseline=%" PRIu64 " peak=%" PRIu64 " process_peak=%" PRIu64
                              "\n",
                              res.baseline_rss_bytes, res.peak_rss_bytes,
                              res.process_peak_rss_bytes));
    const mallet_rss_timeline_t *tl = res.timeline;
    bad |= put(line, snprintf(line, sizeof line, "rss_timeline %" PRIu64, tl->interval_ns));
    for (uint32_t i = 0; i < tl->n; i++)
        bad |= put(line, snprintf(line, sizeof line, " %" PRIu64 ":%" PRIu64, tl->t_ns[i],
                                  tl->bytes[i]));
    bad |= put("\n", 1);
    if (res.syscalls_counted) {
        bad |= put("sys", 3);
        for (unsigned k = 0; k < MALLET_SC_COUNT_; k++)
            bad |= put(line, snprintf(line, sizeof line, " %s=%" PRIu64, mallet_sc_name(k),
                                      res.syscalls[k]));
        bad |= put("\n", 1);
    }
    for (unsigned k = 0; k <= MALLET_OP_COUNT_; k++) {
        const mallet_latency_t *l = k < MALLET_OP_COUNT_ ? &res.latency_by_op[k] : &res.latency;
        if (!l->samples) continue;
        bad |= put(line, snprintf(line, sizeof line,
                                  "lat %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                                  " %" PRIu64 " %" PRIu64 "\n",
                                  k < MALLET_OP_COUNT_ ? mallet_op_name(k) : "all", l->samples,
                                  l->p50_ns, l->p90_ns, l->p99_ns, l->p999_ns, l->max_ns));
    }
    return bad ? 1 : 0;
}
