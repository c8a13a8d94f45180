/* bump: an allocator that never frees. It is the floor of a replay's cost: whatever an allocator
 * adds above it, the harness did not. So malloc is a pointer increment and writes nothing, not
 * even a header: with `mallet replay --touch none` the blocks' pages are never touched, and what
 * is measured is the harness alone, without page faults.
 *
 * Blocks come in size classes (16-byte steps to 256 bytes, then four classes per power of two),
 * each thread carving each class from 1 MiB regions of its own. A region holds one class, and a
 * table (one byte per region) says which, so the usable size of any block follows from its
 * address. Blocks above 256 KiB get whole regions and a 16-byte header with their size.
 *
 * Regions come from one reservation of address space made at load time (MAP_NORESERVE: memory is
 * only used where written), up to 1 TiB, smaller where the system allows less; when it is used up,
 * allocation fails. Nothing is ever unmapped, so a replay on bump makes no munmap, and memory is
 * zero on arrival (calloc needs no memset). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stddef.h>
#include <sys/mman.h>

#define REGION_SHIFT 20
#define REGION ((size_t)1 << REGION_SHIFT)
#define RESERVE_MAX ((size_t)1 << 40)
#define SMALL_MAX (REGION / 4)
#define NCLASSES 57 /* 1..16: 16..256 bytes; 17..56: four per power of two up to SMALL_MAX */
#define LARGE 0     /* the class of a large block's regions */

static uintptr_t base;
static size_t nregions, taken;
static uint8_t class_of_region[RESERVE_MAX >> REGION_SHIFT];

static __thread __attribute__((tls_model("initial-exec"))) struct {
    uintptr_t next, end;
} cur[NCLASSES];

static int a_zeroed = 1;

/* Before any thread can allocate: the reservation, as large as the system allows. */
__attribute__((constructor)) static void reserve(void)
{
    for (size_t len = RESERVE_MAX; len >= 64 * REGION && !base; len /= 2) {
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) base = (uintptr_t)p, nregions = len >> REGION_SHIFT;
    }
}

static unsigned size_class(size_t size)
{
    if (size <= 256) return size ? (unsigned)((size + 15) >> 4) : 1;
    unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
    return 17u + (lg - 8u) * 4u + (unsigned)(((size - 1) >> (lg - 2u)) & 3u);
}

static size_t class_size(unsigned c)
{
    if (c <= 16) return (size_t)c << 4;
    c -= 17;
    return (size_t)(4u + c % 4u + 1u) << (8u + c / 4u - 2u);
}

/* n consecutive regions of class c, or 0 when the reservation is used up. */
static uintptr_t take(size_t n, unsigned c)
{
    size_t first = __atomic_fetch_add(&taken, n, __ATOMIC_RELAXED);
    if (!base || first > nregions || n > nregions - first) return 0;
    for (size_t i = 0; i < n; i++) class_of_region[first + i] = (uint8_t)c;
    return base + (first << REGION_SHIFT);
}

static void *a_alloc(size_t size, size_t align)
{
    if (size > SMALL_MAX || align > REGION / 16) {
        if (size > (nregions << REGION_SHIFT)) return NULL;
        size_t need = size + align + 16;
        uintptr_t r = take((need + REGION - 1) >> REGION_SHIFT, LARGE);
        if (!r) return NULL;
        uintptr_t p = (r + 16 + align - 1) & ~(uintptr_t)(align - 1);
        ((size_t *)p)[-1] = size;
        return (void *)p;
    }
    unsigned c = size_class(size);
    size_t cs = class_size(c);
    uintptr_t p = (cur[c].next + align - 1) & ~(uintptr_t)(align - 1);
    if (!cur[c].next || p + cs > cur[c].end) {
        uintptr_t r = take(1, c);
        if (!r) return NULL;
        cur[c].end = r + REGION;
        p = (r + align - 1) & ~(uintptr_t)(align - 1);
    }
    cur[c].next = p + cs;
    return (void *)p;
}

static void a_free(void *p)
{
    (void)p; /* never */
}

static size_t a_usable(const void *p)
{
    if ((uintptr_t)p - base >= (nregions << REGION_SHIFT)) return 0; /* not ours */
    unsigned c = class_of_region[((uintptr_t)p - base) >> REGION_SHIFT];
    return c == LARGE ? ((const size_t *)p)[-1] : class_size(c);
}

#include "../alloc_api.h"
