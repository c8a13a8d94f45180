/* bump: an allocator that never frees. Each thread carves blocks from its own 64 MiB region with
 * a pointer increment (no lock, no reuse); free does nothing. It is the floor of a replay's cost:
 * whatever an allocator adds above it, the harness did not.
 *
 * Every block has a 16-byte header just before it holding the usable size (for realloc and
 * malloc_usable_size). Regions come straight from mmap and are never reused, so memory is zero
 * on arrival and calloc needs no memset. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stddef.h>
#include <sys/mman.h>

#define REGION (64u << 20)

typedef struct header {
    size_t size;
    size_t pad;
} header_t;

static __thread __attribute__((tls_model("initial-exec"))) uintptr_t next, end;

static int a_zeroed = 1;

static void *map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void *a_alloc(size_t size, size_t align)
{
    if (size > REGION / 2) { /* large: a mapping of its own, never returned */
        if (size > SIZE_MAX - align - sizeof(header_t)) return NULL;
        uintptr_t base = (uintptr_t)map(size + align + sizeof(header_t));
        if (!base) return NULL;
        uintptr_t p = (base + sizeof(header_t) + align - 1) & ~(uintptr_t)(align - 1);
        ((header_t *)p)[-1].size = size;
        return (void *)p;
    }
    for (;;) {
        uintptr_t p = (next + sizeof(header_t) + align - 1) & ~(uintptr_t)(align - 1);
        if (next && p + size <= end) {
            next = p + size;
            ((header_t *)p)[-1].size = size;
            return (void *)p;
        }
        uintptr_t r = (uintptr_t)map(REGION);
        if (!r) return NULL;
        next = r;
        end = r + REGION;
    }
}

static void a_free(void *p)
{
    (void)p; /* never */
}

static size_t a_usable(const void *p)
{
    return ((const header_t *)p)[-1].size;
}

#include "../alloc_api.h"
