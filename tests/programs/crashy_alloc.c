/* Test allocator: glibc's malloc for a while, then a crash, as a broken allocator would. Lets the
 * tests check that a backend which crashes is reported as such and the others still run. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stddef.h>

void *malloc(size_t n)
{
    static void *(*real)(size_t);
    static long calls;
    if (!real) real = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    if (++calls == 2000) raise(SIGSEGV);
    return real(n);
}
