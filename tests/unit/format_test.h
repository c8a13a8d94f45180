/* Helpers shared by the format unit tests: a per-run scratch directory whose files are removed
 * at exit, a small deterministic random generator (xorshift64*) whose seed a test prints so a
 * failure can be replayed, and event equality. Failures here end the test at once: nothing after
 * them could run. */
#ifndef MALLET_TEST_FORMAT_TEST_H
#define MALLET_TEST_FORMAT_TEST_H

#include "trace/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Not check.h's CHECK: these stop at the first failure (later steps use what earlier checks
 * verified, such as an open reader). A test may define MALLET_TEST_CONTEXT() before including
 * this header to add context (a seed) to the message. */
#ifndef MALLET_TEST_CONTEXT
#define MALLET_TEST_CONTEXT() ((void)0)
#endif
#define CHECK(cond) CHECKF(cond, "%s", #cond)
#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL: %s:%d: ", __FILE__, __LINE__);                                  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            MALLET_TEST_CONTEXT();                                                                 \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static char scratch_dir[256];
static char scratch_made[32][300]; /* every path handed out, removed by scratch_cleanup() */
static unsigned scratch_nmade;

static void scratch_cleanup(void)
{
    for (unsigned i = 0; i < scratch_nmade; i++)
        if (rmdir(scratch_made[i]) && errno == ENOTDIR) unlink(scratch_made[i]);
    if (scratch_dir[0]) rmdir(scratch_dir);
}

/* DIR/name in this run's scratch directory (created on first use); the same name gives the same
 * path. */
static const char *tmp_path(const char *name)
{
    if (!scratch_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(scratch_dir, sizeof scratch_dir, "%s/mallet-test-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(scratch_dir)) {
            fprintf(stderr, "FAIL: mkdtemp %s: %s\n", scratch_dir, strerror(errno));
            exit(1);
        }
        atexit(scratch_cleanup);
    }
    for (unsigned i = 0; i < scratch_nmade; i++)
        if (!strcmp(strrchr(scratch_made[i], '/') + 1, name)) return scratch_made[i];
    if (scratch_nmade == sizeof scratch_made / sizeof scratch_made[0]) {
        fprintf(stderr, "FAIL: more than %u scratch files\n", scratch_nmade);
        exit(1);
    }
    snprintf(scratch_made[scratch_nmade], sizeof scratch_made[0], "%s/%s", scratch_dir, name);
    return scratch_made[scratch_nmade++];
}

/* Whole files, for tests that build or damage one byte by byte. */
static void put_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECKF(fd >= 0, "%s: %s", path, strerror(errno));
    CHECK(len == 0 || write(fd, data, len) == (ssize_t)len);
    CHECK(close(fd) == 0);
}

static uint8_t *get_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECKF(f, "%s: %s", path, strerror(errno));
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    CHECK(n >= 0);
    rewind(f);
    uint8_t *b = malloc((size_t)n + 1);
    CHECK(b && fread(b, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Every field of two decoded events is the same. */
static int ev_equal(const mallet_event_t *a, const mallet_event_t *b)
{
    return a->op == b->op && a->failed == b->failed && a->tid == b->tid && a->thread == b->thread &&
           a->seq == b->seq && a->cycles == b->cycles && a->free_cycles == b->free_cycles &&
           a->ptr == b->ptr && a->old_ptr == b->old_ptr && a->size == b->size &&
           a->nmemb == b->nmemb && a->align == b->align && a->callsite == b->callsite &&
           a->ret == b->ret;
}

/* mallet_reader_next_run (prepare's entry point: runs of one thread's records, the merge skipped
 * within a run) yields what mallet_reader_next does, record by record, parts included, and ends
 * the same way: 0 at the end, or -1 with the same message (next_run may yield the record before
 * the corrupt batch, which next drops: the error comes when the merge moves past it). Returns the
 * records read. */
static uint64_t check_next_run(const char *const *paths, unsigned npaths)
{
    char err[512] = "";
    mallet_reader_t *a = mallet_reader_open(paths, npaths, err, sizeof err);
    CHECKF(a, "%s", err);
    mallet_reader_t *b = mallet_reader_open(paths, npaths, err, sizeof err);
    CHECKF(b, "%s", err);
    mallet_rec_t rec;
    const mallet_rec_t *run = NULL;
    uint64_t n = 0;
    int ka, kb = 0, at = 0; /* run[at..kb) not compared yet */
    while ((ka = mallet_reader_next(a, &rec)) == 1) {
        if (at == kb) {
            at = 0;
            CHECKF((kb = mallet_reader_next_run(b, &run)) >= 1,
                   "record %" PRIu64 ": next_run ended (%d)", n, kb);
        }
        const mallet_rec_t *ref = &run[at++];
        CHECKF(ev_equal(&ref->ev, &rec.ev) && ref->part == rec.part && ref->file == rec.file,
               "record %" PRIu64 " (thread %u seq %" PRIu64 ") differs in next_run", n,
               rec.ev.thread, rec.ev.seq);
        CHECKF(ref->ev.thread == run->ev.thread && ref->file == run->file,
               "record %" PRIu64 ": a run of two threads", n);
        n++;
    }
    /* next's end, and next_run's after at most the one record next dropped */
    int extra = kb - at;
    if (!extra && (kb = mallet_reader_next_run(b, &run)) > 0) extra = kb;
    if (extra) kb = mallet_reader_next_run(b, &run);
    CHECKF(ka == kb && extra <= (ka < 0),
           "next ends with %d after %" PRIu64 ", next_run with %d after %d more", ka, n, kb, extra);
    if (ka < 0) CHECK(!strcmp(mallet_reader_error(a), mallet_reader_error(b)));
    mallet_reader_close(a);
    mallet_reader_close(b);
    return n;
}

#endif
