/* What the fuzz targets share. FUZZ_ASSERT: a broken promise of the code under test aborts, so
 * libFuzzer saves the input (the standalone runners save it before they run it). */
#ifndef MALLET_FUZZ_H
#define MALLET_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL: %s:%d: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input as a file without touching the disk: a memfd, reachable as fuzz_path. */
static int fuzz_fd = -1;
static char fuzz_path[64];

static inline void fuzz_load(const uint8_t *data, size_t size)
{
    if (fuzz_fd < 0) {
        fuzz_fd = memfd_create("mallet-fuzz", MFD_CLOEXEC);
        if (fuzz_fd < 0) {
            perror("memfd_create");
            exit(2);
        }
        snprintf(fuzz_path, sizeof fuzz_path, "/proc/self/fd/%d", fuzz_fd);
    }
    if (ftruncate(fuzz_fd, 0)) abort();
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(fuzz_fd, data + done, size - done, (off_t)done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
}

#ifdef MALLET_FUZZ_STANDALONE
/* ---- what the standalone runners share -------------------------------------------------- */
#include <string.h>
#include <time.h>

/* True, on every 64th iteration, once SECONDS (if > 0) have passed since t0 (CLOCK_MONOTONIC). */
static inline int fuzz_time_up(unsigned long it, const struct timespec *t0, double seconds)
{
    if (seconds <= 0 || it % 64 != 63) return 0;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec) > seconds;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull; /* -s SEED sets it (| 1: never 0) */
static inline uint64_t rnd(void)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}
static inline size_t below(size_t n)
{
    return n ? (size_t)(rnd() >> 11) % n : 0;
}

typedef struct blob {
    uint8_t *b;
    size_t len;
} blob_t;

/* Mutates b[0, len) in place, up to cap bytes, and returns the new length: one to three of bit
 * flips, byte values, truncation, 32- and 64-bit fields (aligned as binary formats align them)
 * set to edge values, and a range copied over another (an offset pointing elsewhere). */
static inline size_t fuzz_mutate(uint8_t *b, size_t len, size_t cap)
{
    static const uint64_t interesting[] = {0,
                                           1,
                                           2,
                                           3,
                                           5,
                                           16,
                                           120,
                                           0xff,
                                           0xffff,
                                           0x7fffffff,
                                           0xffffffff,
                                           1ull << 20,
                                           (1ull << 20) + 1,
                                           UINT64_MAX};
    const size_t ninteresting = sizeof interesting / sizeof *interesting;
    unsigned k = 1 + (unsigned)below(3);
    while (k--) {
        switch (below(6)) {
        case 0:
            if (len) b[below(len)] ^= (uint8_t)(1u << below(8));
            break;
        case 1:
            if (len) b[below(len)] = (uint8_t)rnd();
            break;
        case 2:
            len = below(len + 1);
            break;
        case 3:
            if (len >= 4) {
                uint32_t v = (uint32_t)interesting[below(ninteresting)];
                memcpy(b + (below(len - 3) & ~(size_t)3), &v, 4);
            }
            break;
        case 4:
            if (len >= 8) {
                uint64_t v = interesting[below(ninteresting)];
                memcpy(b + (below(len - 7) & ~(size_t)7), &v, 8);
            }
            break;
        case 5: {
            if (!len) break;
            size_t from = below(len), n = 1 + below(len - from < 48 ? len - from : 48);
            size_t at = below(len);
            if (at + n > cap) break;
            memmove(b + at, b + from, n);
            if (at + n > len) len = at + n;
            break;
        }
        }
    }
    return len;
}

/* What a standalone runner is asked: -n ITERATIONS, -s SEED (sets rng), -t SECONDS, and, from
 * a runner that can write its seeds as a libFuzzer corpus, --seeds DIR. */
typedef struct fuzz_opts {
    unsigned long iters; /* 2000 unless -n */
    double seconds;      /* no limit unless -t */
    const char *seeds;   /* the folder given with --seeds, or NULL */
} fuzz_opts_t;

/* Parses the arguments into o. Returns 0, or prints the usage of `name` and returns 2. */
static inline int fuzz_args(int argc, char **argv, const char *name, int can_seed, fuzz_opts_t *o)
{
    *o = (fuzz_opts_t){2000, 0, NULL};
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 < argc && !strcmp(argv[i], "-n"))
            o->iters = strtoul(argv[i + 1], NULL, 0);
        else if (i + 1 < argc && !strcmp(argv[i], "-s"))
            rng = strtoull(argv[i + 1], NULL, 0) | 1;
        else if (i + 1 < argc && !strcmp(argv[i], "-t"))
            o->seconds = strtod(argv[i + 1], NULL);
        else if (i + 1 < argc && can_seed && !strcmp(argv[i], "--seeds"))
            o->seeds = argv[i + 1];
        else {
            fprintf(stderr, "usage: %s [-n ITERATIONS] [-s SEED] [-t SECONDS]%s\n", name,
                    can_seed ? " | --seeds DIR" : "");
            return 2;
        }
    }
    return 0;
}

/* Reads the file at path whole into *out (a seed made through a file); exits 2 if it cannot. */
static inline void fuzz_read_file(const char *path, blob_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END)) exit(2);
    out->len = (size_t)ftell(f);
    out->b = malloc(out->len ? out->len : 1);
    rewind(f);
    if (!out->b || fread(out->b, 1, out->len, f) != out->len) exit(2);
    fclose(f);
}

/* Writes the seeds into dir as seedN (a libFuzzer corpus to start from). Returns 0 or 2. */
static inline int fuzz_write_seeds(const char *dir, const blob_t *seeds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed%zu", dir, i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(seeds[i].b, 1, seeds[i].len, f) != seeds[i].len || fclose(f)) {
            perror(path);
            return 2;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs up to iters mutations of the seeds, picked at random, through the target (for at most
 * seconds, if > 0; an input grows by 64 bytes at most). Returns how many ran. */
static inline unsigned long fuzz_loop(const blob_t *seeds, size_t nseeds, unsigned long iters,
                                      double seconds)
{
    size_t cap = 64;
    for (size_t i = 0; i < nseeds; i++)
        if (seeds[i].len + 64 > cap) cap = seeds[i].len + 64;
    uint8_t *b = malloc(cap);
    FUZZ_ASSERT(b, "out of memory");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long it;
    for (it = 0; it < iters; it++) {
        const blob_t *s = &seeds[below(nseeds)];
        memcpy(b, s->b, s->len);
        LLVMFuzzerTestOneInput(b, fuzz_mutate(b, s->len, cap));
        if (fuzz_time_up(it, &t0, seconds)) break;
    }
    free(b);
    return it < iters ? it + 1 : it;
}
#endif

#endif
