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

#endif
