/* Test program: leaks from two known functions, then frees one block twice, which glibc
 * detects and aborts on. mallet check must name make_leak, make_other_leak and the double free.
 * `leaky --late LIB` also loads LIB (late_lib.c) with dlopen and leaks a block from it. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static void *keep[16];

__attribute__((noinline)) void make_leak(int i)
{
    keep[i] = malloc(100); /* 3 blocks, 300 bytes */
    memset(keep[i], 0, 100);
}

__attribute__((noinline)) void make_other_leak(void)
{
    keep[10] = calloc(1, 4000); /* 1 block, 4000 bytes */
}

__attribute__((noinline)) void release_twice(void *p)
{
    free(p);
    free(p); /* the double free */
}

int main(int argc, char **argv)
{
    for (int i = 0; i < 3; i++) make_leak(i);
    make_other_leak();
    void *fine = malloc(50);
    free(fine);
    if (argc > 1 && strcmp(argv[1], "--double-free") == 0) {
        /* a size that bypasses tcache double-free detection only through the fastbin check */
        void *p = malloc(64);
        release_twice(p);
    }
    if (argc > 2 && strcmp(argv[1], "--late") == 0) {
        void *lib = dlopen(argv[2], RTLD_NOW);
        void *(*late_leak)(void) = lib ? (void *(*)(void))dlsym(lib, "late_leak") : NULL;
        if (!late_leak || !(keep[11] = late_leak())) return 1;
    }
    return 0;
}
