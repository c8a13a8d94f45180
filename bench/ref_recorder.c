/* Reference recorders, as preload libraries, so that bench/record_overhead.sh measures them on
 * this machine in the same rounds as `mallet record`. The recorder issue's two reference points:
 * - REF_RECORD 0 (libref_interpose.so): pure interposition, every call forwarded and nothing else;
 * - REF_RECORD 1 (libref_record16.so): also a 16-byte record per call (op and size, pointer)
 *   stored into a thread-local buffer that wraps around: no clock, no callsite, no encoding, no
 *   file. The cheapest thing that could be called recording: the floor under any recorder.
 * And the hooks' part of a recorder that would move the encoding off the program's core: hooks
 * that store raw records into a ring in shared memory, and a consumer process on the other core
 * that encodes, compresses and writes them (as LTTng-UST does), here with nothing of the
 * consumer's work but reading (bench/offcore_launch.c): the floor under such a design.
 * - REF_RECORD 2 (libref_raw32.so): a 32-byte record per call (op and size, pointer, callsite,
 *   time) into a 256 KiB ring of the process's own memory, the clock read on one call in 16 (the
 *   recorder's rate while a process has one thread): what that recorder's hooks would keep;
 * - REF_RECORD 3 (libref_consumer32.so): the same ring in the memory offcore_launch shares
 *   (REF_RING_FD); the hooks wait while the consumer has not read it.
 * Their ring is the loading thread's: calls of other threads pass through unrecorded, so they
 * mean something for single-threaded programs only. (A consumer thread in the program instead of
 * a process would change what glibc's malloc does: with a second thread it takes its arena lock
 * on every call.)
 * All forward to glibc's __libc_* entry points, which need no dlsym (and so no bootstrap pool).
 * Only malloc, calloc, realloc and free: the calls of the benchmarks (sqlite3 and malloc_bench
 * make no other). */
#define _GNU_SOURCE
#include "ref_offcore.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <x86intrin.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))

#if REF_RECORD == 1
#define RING 4096 /* records: 64 KiB, the recorder's buffer size */
/* Not static: the stores must happen, as a recorder's would (nothing in this library reads them,
 * and the compiler drops stores to a static that nothing reads). */
TLS uint64_t ref_ring[RING][2];
TLS unsigned ref_ring_pos;

static inline void put(uint64_t op, uint64_t size, const void *p, const void *site)
{
    (void)site;
    unsigned i = ref_ring_pos;
    ref_ring[i][0] = op << 56 | size;
    ref_ring[i][1] = (uint64_t)(uintptr_t)p;
    ref_ring_pos = (i + 1) & (RING - 1);
}
#elif REF_RECORD >= 2
enum { STAMP_EVERY = 16 };
static ref_shared_t *shared;
static TLS int mine; /* the loading thread */
static TLS unsigned calls;
static TLS uint64_t last_time, head;
#if REF_RECORD == 3
static TLS uint64_t tail_seen; /* the consumer's tail as last read */
#endif

__attribute__((constructor)) static void start(void)
{
    void *m = MAP_FAILED;
#if REF_RECORD == 3
    const char *fd = getenv("REF_RING_FD");
    if (fd && *fd)
        m = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, atoi(fd),
                 0);
    unsetenv("REF_RING_FD"); /* the program's children are not the launcher's */
#else
    m = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
#endif
    if (m == MAP_FAILED) return;
    shared = m;
    mine = 1;
}

static inline void put(uint64_t op, uint64_t size, const void *p, const void *site)
{
    if (!mine) return;
    if (++calls % STAMP_EVERY == 0) last_time = __rdtsc();
    uint64_t h = head;
#if REF_RECORD == 3
    if (h - tail_seen >= REF_RING && !shared->unread)
        while (h - (tail_seen = atomic_load_explicit(&shared->tail, memory_order_acquire)) >=
               REF_RING)
            __builtin_ia32_pause();
#endif
    uint64_t *r = shared->ring[h % REF_RING];
    r[0] = op << 56 | size;
    r[1] = (uint64_t)(uintptr_t)p;
    r[2] = (uint64_t)(uintptr_t)site;
    r[3] = last_time;
    head = ++h;
    if (h % REF_BATCH == 0) atomic_store_explicit(&shared->head, h, memory_order_release);
}
#else
#define put(op, size, p, site) ((void)0)
#endif

EXPORT void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    put(1, n, p, __builtin_return_address(0));
    return p;
}

EXPORT void *calloc(size_t m, size_t n)
{
    void *p = __libc_calloc(m, n);
    put(2, m * n, p, __builtin_return_address(0));
    return p;
}

EXPORT void *realloc(void *old, size_t n)
{
    put(5, 0, old, __builtin_return_address(0));
    void *p = __libc_realloc(old, n);
    put(3, n, p, __builtin_return_address(0));
    return p;
}

EXPORT void free(void *p)
{
    put(5, 0, p, __builtin_return_address(0));
    __libc_free(p);
}
