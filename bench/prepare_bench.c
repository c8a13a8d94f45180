/* Conversion speed and memory: prepares TRACE into OUT (the replay file), as `mallet replay`
 * does before its first run, and prints the events read, the time, the rate and the process's
 * peak resident memory. One core: prepare is single-threaded.
 * usage: prepare_bench TRACE OUT */
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
