/* The C allocation API built on three primitives, so an allocator in this folder is only its
 * policy. Include this from one .c file that defines, before the include:
 *
 *   static void *a_alloc(size_t size, size_t align); // align: a power of two >= 16; NULL if out
 *   static void a_free(void *p);                       // p from a_alloc, never NULL
 *   static size_t a_usable(const void *p);             // bytes usable at p
 *   static int a_zeroed;                               // 1 if a_alloc's memory is always zeroed
 *
 * and it gets malloc, free, calloc, realloc, reallocarray, posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc and malloc_usable_size, exported, for LD_PRELOAD. */
#ifndef MALLET_ALLOC_API_H
#define MALLET_ALLOC_API_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define A_EXPORT __attribute__((visibility("default")))
#define A_MIN_ALIGN 16

static size_t a_page(void)
{
    static size_t page;
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

A_EXPORT void *malloc(size_t size)
{
    void *p = a_alloc(size, A_MIN_ALIGN);
    if (!p) errno = ENOMEM;
    return p;
}

A_EXPORT void free(void *p)
{
    if (p) a_free(p);
}

A_EXPORT void *calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = malloc(n * size);
    if (p && !a_zeroed) memset(p, 0, n * size);
    return p;
}

A_EXPORT void *realloc(void *old, size_t size)
{
    if (!old) return malloc(size);
    if (size == 0) {
        free(old);
        return NULL;
    }
    size_t have = a_usable(old);
    if (size <= have && size >= have / 2) return old; /* fits, and not wastefully */
    void *p = malloc(size);
    if (!p) return NULL;
    memcpy(p, old, have < size ? have : size);
    free(old);
    return p;
}

A_EXPORT void *reallocarray(void *old, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, n * size);
}

static int a_valid_align(size_t align)
{
    return align && !(align & (align - 1));
}

A_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (!a_valid_align(align) || align % sizeof(void *)) return EINVAL;
    void *p = a_alloc(size, align < A_MIN_ALIGN ? A_MIN_ALIGN : align);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

A_EXPORT void *aligned_alloc(size_t align, size_t size)
{
    if (!a_valid_align(align)) {
        errno = EINVAL;
        return NULL;
    }
    void *p = a_alloc(size, align < A_MIN_ALIGN ? A_MIN_ALIGN : align);
    if (!p) errno = ENOMEM;
    return p;
}

A_EXPORT void *memalign(size_t align, size_t size)
{
    return aligned_alloc(align, size);
}

A_EXPORT void *valloc(size_t size)
{
    return aligned_alloc(a_page(), size);
}

A_EXPORT void *pvalloc(size_t size)
{
    size_t pg = a_page();
    if (size > SIZE_MAX - pg) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned_alloc(pg, (size + pg - 1) & ~(pg - 1));
}

A_EXPORT size_t malloc_usable_size(void *p)
{
    return p ? a_usable(p) : 0;
}

#endif
