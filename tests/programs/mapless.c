/* Test shim, preloaded after the recorder: mmap refuses (ENOMEM) anonymous mappings of 4-8 KiB,
 * the size of the recorder's thread buffers with MALLET_BUFFER_KB=4, after the first
 * MAPLESS_AFTER of them, as a process out of memory (or of mappings) would. Lets the tests check
 * that a recorder that cannot get a buffer says so and stops, the program running on. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    static void *(*real)(void *, size_t, int, int, int, off_t);
    static atomic_long seen;
    if (!real) real = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
    const char *after = getenv("MAPLESS_AFTER");
    if (after && (flags & MAP_ANONYMOUS) && len > 4096 && len <= 8192 &&
        ++seen > atol(after)) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return real(addr, len, prot, flags, fd, off);
}
