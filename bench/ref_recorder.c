/* The recorder issue's two reference points, as preload libraries, so that bench/record_overhead.sh
 * measures them on this machine in the same rounds as `mallet record`:
 * - REF_RECORD 0 (libref_interpose.so): pure interposition, every call forwarded and nothing else;
 * - REF_RECORD 1 (libref_record16.so): also a 16-byte record per call (op and size, pointer)
 *   stored into a thread-local buffer that wraps around: no clock, no callsite, no encoding, no
 *   file. The cheapest thing that could be called recording: the floor under any recorder.
 * Both forward to glibc's __libc_* entry points, which need no dlsym (and so no bootstrap pool).
 * Only malloc, calloc, realloc and free: the calls of the benchmarks (sqlite3 and malloc_bench
 * make no other). */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

#define EXPORT __attribute__((visibility("default")))

#if REF_RECORD
#define RING 4096 /* records: 64 KiB, the recorder's buffer size */
/* Not static: the stores must happen, as a recorder's would (nothing in this library reads them,
 * and the compiler drops stores to a static that nothing reads). */
__thread uint64_t ref_ring[RING][2] __attribute__((tls_model("initial-exec")));
__thread unsigned ref_ring_pos __attribute__((tls_model("initial-exec")));

static inline void put(uint64_t op, uint64_t size, const void *p)
{
    unsigned i = ref_ring_pos;
    ref_ring[i][0] = op << 56 | size;
    ref_ring[i][1] = (uint64_t)(uintptr_t)p;
    ref_ring_pos = (i + 1) & (RING - 1);
}
#else
#define put(op, size, p) ((void)0)
#endif

EXPORT void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    put(1, n, p);
    return p;
}

EXPORT void *calloc(size_t m, size_t n)
{
    void *p = __libc_calloc(m, n);
    put(2, m * n, p);
    return p;
}

EXPORT void *realloc(void *old, size_t n)
{
    put(5, 0, old);
    void *p = __libc_realloc(old, n);
    put(3, n, p);
    return p;
}

EXPORT void free(void *p)
{
    put(5, 0, p);
    __libc_free(p);
}
