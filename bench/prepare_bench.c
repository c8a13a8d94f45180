/* Conversion speed and memory: prepares TRACE into OUT (the replay file), as `mallet replay`
 * does before its first run, and prints the events read, the time, the rate and the process's
 * peak resident memory. One core: prepare is single-threaded. With --read, only reads the
 * events in time order, as prepare does (the reader's share of the conversion).
 * usage: prepare_bench TRACE OUT | prepare_bench --read TRACE */
#define _GNU_SOURCE
#include "replay/prepare.h"

#include <inttypes.h>
#include <string.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: prepare_bench TRACE OUT\n");
        return 2;
    }
    char err[1024];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!strcmp(argv[1], "--read")) {
        const char *one[] = {argv[2]};
        mallet_reader_t *r = mallet_reader_open(one, 1, err, sizeof err);
        if (!r) return fprintf(stderr, "prepare_bench: %s\n", err), 1;
        const mallet_rec_t *rec;
        uint64_t n = 0, runs = 0;
        int k;
        while ((k = mallet_reader_next_run(r, &rec)) > 0) /* what prepare calls */
            n += (uint64_t)k, runs++;
        if (k < 0) fprintf(stderr, "prepare_bench: %s\n", mallet_reader_error(r));
        mallet_reader_close(r);
        if (k < 0) return 1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        printf("read %" PRIu64 " records in time order: %.3f s, %.1f M/s, %.1f ns each, in %" PRIu64
               " runs (%.1f records a run)\n",
               n, s, (double)n / s / 1e6, s * 1e9 / (double)n, runs,
               runs ? (double)n / (double)runs : 0.0);
        return 0;
    }
    const char *paths[] = {argv[1]};
    mallet_reader_t *r = mallet_reader_open(paths, 1, err, sizeof err);
    if (!r) return fprintf(stderr, "prepare_bench: %s\n", err), 1;
    uint64_t events = mallet_reader_info(r, 0)->events;
    mallet_rfile_writer_t *w;
    int rc = mallet_rfile_create(argv[2], 0, 0, &w);
    if (rc) return fprintf(stderr, "prepare_bench: %s: %s\n", argv[2], strerror(-rc)), 1;
    mallet_prepared_t p;
    rc = mallet_prepare(r, 0, w, NULL, &p, err, sizeof err);
    mallet_reader_close(r);
    if (rc) return fprintf(stderr, "prepare_bench: %s\n", err), 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("events %" PRIu64 " ops %" PRIu64 " waits %" PRIu64 " patches %" PRIu64
           " threads %u slots %u: %.3f s, %.1f M events/s, peak memory %ld MiB\n",
           events, p.ops, p.waits, p.patches, p.nthreads, p.nslots, s, (double)events / s / 1e6,
           ru.ru_maxrss / 1024);
    return 0;
}
