/* The hooked allocation entry points. Each one calls the real function (found with
 * dlsym(RTLD_NEXT)) and appends one event to the calling thread's buffer: after the call for an
 * allocation, before it for a free, both for realloc. A thread-local guard keeps nested calls (an
 * allocator implementing one entry point with another, or dlsym itself) out of the trace, so each
 * call the program makes is recorded once. */
#define _GNU_SOURCE
#include "hook.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

mallet_real_t mallet_real;

/* ---- bootstrap pool: serves dlsym's own allocations before the real allocator is known ------ */

#define BOOT_POOL_SIZE (256u << 10)
static _Alignas(64) uint8_t boot_pool[BOOT_POOL_SIZE];
static _Atomic size_t boot_used;

static int boot_owns(const void *p)
{
    return (const uint8_t *)p >= boot_pool && (const uint8_t *)p < boot_pool + BOOT_POOL_SIZE;
}

/* 16-byte header holding the size, so realloc of a pool block can copy it out. */
static void *boot_alloc(size_t n, size_t align)
{
    if (align < 16) align = 16;
    if (n > BOOT_POOL_SIZE || align > 4096) return NULL;
    size_t need = (n + 16 + align - 1 + 15) & ~(size_t)15;
    size_t start = atomic_fetch_add(&boot_used, need);
    if (start + need > BOOT_POOL_SIZE) return NULL;
    uintptr_t base = (uintptr_t)(boot_pool + start + 16);
    uintptr_t p = (base + align - 1) & ~(uintptr_t)(align - 1);
    ((size_t *)p)[-1] = n;
    return (void *)p; /* static storage is zeroed, and never reused: calloc-ready */
}

static size_t boot_size(const void *p)
{
    return ((const size_t *)p)[-1];
}

void mallet_resolve_real(void)
{
#define RESOLVE(field, name)                                                                       \
    mallet_real.field = (__typeof__(mallet_real.field))dlsym(RTLD_NEXT, name)
    RESOLVE(malloc, "malloc");
    RESOLVE(calloc, "calloc");
    RESOLVE(realloc, "realloc");
    RESOLVE(reallocarray, "reallocarray");
    RESOLVE(free, "free");
    RESOLVE(posix_memalign, "posix_memalign");
    RESOLVE(aligned_alloc, "aligned_alloc");
    RESOLVE(memalign, "memalign");
    RESOLVE(valloc, "valloc");
    RESOLVE(pvalloc, "pvalloc");
    RESOLVE(exit_, "_exit");
    RESOLVE(Exit_, "_Exit");
#undef RESOLVE
    /* Whose malloc the program's calls reach: an executable that defines malloc (a statically
     * linked allocator: Firefox's, Chrome's, a Rust program's unprefixed jemalloc) comes before
     * any preloaded library. A definition, not dlsym(RTLD_DEFAULT): an executable that takes
     * malloc's address has a symbol for its PLT entry (node does), whose calls still reach ours. */
    mallet_real.first_malloc =
        (void *(*)(size_t))mallet_find_function("malloc", (const void *)mallet_resolve_real, 0);
}

const char *mallet_malloc_owner(void)
{
    Dl_info theirs;
    if (!mallet_real.first_malloc) return NULL;
    return dladdr((void *)mallet_real.first_malloc, &theirs) && theirs.dli_fname &&
                   *theirs.dli_fname
               ? theirs.dli_fname
               : "the program";
}

/* Before the real allocator is known (inside dlsym) every request comes from the pool. The hooks
 * of malloc, calloc, realloc and free ask only for a call enter() turned down (a recording
 * recorder knows them all); the others ask first, their functions may be missing from the libc. */
static inline int early(void *fn)
{
    if (MALLET_LIKELY(fn != NULL)) return 0;
    mallet_init();
    return 1;
}

/* malloc, recorded as made at site. */
__attribute__((always_inline)) static inline void *malloc_at(size_t n, uint64_t site)
{
    mallet_tstate_t *t = enter();
    if (MALLET_UNLIKELY(!t)) {
        if (early((void *)mallet_real.malloc) && !mallet_real.malloc) return boot_alloc(n, 16);
        return mallet_real.malloc(n);
    }
    void *p = mallet_real.malloc(n);
    rec_alloc(t, MALLET_OP_MALLOC, p, n, 0, site);
    leave(t);
    return p;
}

EXPORT void *malloc(size_t n)
{
    return malloc_at(n, CALLSITE());
}

/* strdup and strndup allocate inside the C library: their blocks' site was libc's strdup,
 * whatever code duplicated the string (every strdup leak of a program read as libc's). They are
 * done here as glibc does them, recorded as a malloc made by their caller; the C library's own
 * calls of them (setlocale's) do not come here and stay libc's. */
/* The block for strdup's copy: the C library's would come from whichever malloc the program's
 * calls reach, so it does here: one the program defines itself is freed by its own free. */
__attribute__((always_inline)) static inline void *dup_alloc(size_t n, uint64_t site)
{
    if (MALLET_UNLIKELY(mallet_real.first_malloc != NULL)) return mallet_real.first_malloc(n);
    return malloc_at(n, site);
}

EXPORT char *strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = dup_alloc(n, CALLSITE());
    return p ? memcpy(p, s, n) : NULL;
}

EXPORT char *strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *p = dup_alloc(n + 1, CALLSITE());
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

EXPORT void *calloc(size_t nmemb, size_t size)
{
    mallet_tstate_t *t = enter();
    if (MALLET_UNLIKELY(!t)) {
        if (early((void *)mallet_real.calloc) && !mallet_real.calloc) {
            if (size && nmemb > SIZE_MAX / size) return NULL;
            return boot_alloc(nmemb * size, 16);
        }
        return mallet_real.calloc(nmemb, size);
    }
    void *p = mallet_real.calloc(nmemb, size);
    EVENT(MALLET_OP_CALLOC, !p);
    ev.cycles = mallet_stamp(t, (uintptr_t)p, 0);
    ev.nmemb = nmemb;
    ev.size = size;
    ev.ptr = (uintptr_t)p;
    mallet_rec_event(t, &ev);
    leave(t);
    return p;
}

EXPORT void free(void *p)
{
    if (MALLET_UNLIKELY(boot_owns(p))) return; /* pool memory is never reused */
    mallet_tstate_t *t = enter();
    if (MALLET_UNLIKELY(!t)) {
        if (early((void *)mallet_real.free) && !mallet_real.free) return;
        mallet_real.free(p);
        return;
    }
    EVENT(MALLET_OP_FREE, 0);
    ev.cycles = mallet_stamp(t, (uintptr_t)p, 1);
    ev.ptr = (uintptr_t)p;
    mallet_rec_event(t, &ev);
    mallet_real.free(p);
    leave(t);
}

/* realloc of a pool block: move it to the real allocator (recorded as the malloc it becomes). */
static void *boot_realloc(void *old, size_t n)
{
    void *p = malloc(n);
    if (p) memcpy(p, old, boot_size(old) < n ? boot_size(old) : n);
    return p;
}

EXPORT void *realloc(void *old, size_t n)
{
    if (MALLET_UNLIKELY(boot_owns(old))) return boot_realloc(old, n);
    mallet_tstate_t *t = enter();
    if (MALLET_UNLIKELY(!t)) {
        if (early((void *)mallet_real.realloc) && !mallet_real.realloc) return boot_alloc(n, 16);
        return mallet_real.realloc(old, n);
    }
    uint64_t before = mallet_stamp(t, (uintptr_t)old, 1);
    void *p = mallet_real.realloc(old, n);
    EVENT(MALLET_OP_REALLOC, !p && n);
    ev.cycles = mallet_stamp(t, (uintptr_t)p, 0);
    ev.free_cycles = before;
    ev.old_ptr = (uintptr_t)old;
    ev.size = n;
    ev.ptr = (uintptr_t)p;
    mallet_rec_event(t, &ev);
    leave(t);
    return p;
}

EXPORT void *reallocarray(void *old, size_t nmemb, size_t size)
{
    if (MALLET_UNLIKELY(boot_owns(old))) {
        if (size && nmemb > SIZE_MAX / size) return errno = ENOMEM, NULL;
        return boot_realloc(old, nmemb * size);
    }
    if (early((void *)mallet_real.reallocarray) && !mallet_real.reallocarray) return NULL;
    mallet_tstate_t *t = enter();
    if (!t) return mallet_real.reallocarray(old, nmemb, size);
    uint64_t before = mallet_stamp(t, (uintptr_t)old, 1);
    void *p = mallet_real.reallocarray(old, nmemb, size);
    EVENT(MALLET_OP_REALLOCARRAY, !p && nmemb && size);
    ev.cycles = mallet_stamp(t, (uintptr_t)p, 0);
    ev.free_cycles = before;
    ev.old_ptr = (uintptr_t)old;
    ev.nmemb = nmemb;
    ev.size = size;
    ev.ptr = (uintptr_t)p;
    mallet_rec_event(t, &ev);
    leave(t);
    return p;
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (early((void *)mallet_real.posix_memalign) && !mallet_real.posix_memalign) {
        void *p = boot_alloc(n, align);
        if (!p) return ENOMEM;
        *out = p;
        return 0;
    }
    mallet_tstate_t *t = enter();
    if (!t) return mallet_real.posix_memalign(out, align, n);
    int r = mallet_real.posix_memalign(out, align, n);
    EVENT(MALLET_OP_POSIX_MEMALIGN, r != 0);
    ev.ptr = r == 0 ? (uintptr_t)*out : 0;
    ev.cycles = mallet_stamp(t, ev.ptr, 0);
    ev.align = align;
    ev.size = n;
    ev.ret = r;
    mallet_rec_event(t, &ev);
    leave(t);
    return r;
}

#define ALIGNED_HOOK(name, opcode)                                                                 \
    EXPORT void *name(size_t align, size_t n)                                                      \
    {                                                                                              \
        if (early((void *)mallet_real.name) && !mallet_real.name) return boot_alloc(n, align);     \
        mallet_tstate_t *t = enter();                                                              \
        if (!t) return mallet_real.name(align, n);                                                 \
        void *p = mallet_real.name(align, n);                                                      \
        rec_alloc(t, opcode, p, n, align, CALLSITE());                                             \
        leave(t);                                                                                  \
        return p;                                                                                  \
    }
ALIGNED_HOOK(aligned_alloc, MALLET_OP_ALIGNED_ALLOC)
ALIGNED_HOOK(memalign, MALLET_OP_MEMALIGN)

#define PAGE_HOOK(name, opcode)                                                                    \
    EXPORT void *name(size_t n)                                                                    \
    {                                                                                              \
        if (early((void *)mallet_real.name) && !mallet_real.name)                                  \
            return boot_alloc(n, mallet_page_size());                                              \
        mallet_tstate_t *t = enter();                                                              \
        if (!t) return mallet_real.name(n);                                                        \
        void *p = mallet_real.name(n);                                                             \
        rec_alloc(t, opcode, p, n, 0, CALLSITE());                                                 \
        leave(t);                                                                                  \
        return p;                                                                                  \
    }
PAGE_HOOK(valloc, MALLET_OP_VALLOC)
PAGE_HOOK(pvalloc, MALLET_OP_PVALLOC)
