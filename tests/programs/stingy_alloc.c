/* Test allocator: glibc's malloc, except that it refuses (NULL, ENOMEM) every request above
 * 100 000 bytes, as an allocator with a size limit would. Lets the tests check that failed
 * allocations in a replay are counted and reported. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

void *malloc(size_t n)
{
    static void *(*real)(size_t);
    if (!real) real = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    if (n > 100000) {
        errno = ENOMEM;
        return NULL;
    }
    return real(n);
}
