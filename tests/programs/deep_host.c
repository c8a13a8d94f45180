/* A plugin host: loads the library argv[1] (tests/programs/late_lib.c), with RTLD_DEEPBIND when
 * argv[2] is "deep", takes three blocks from its late_leak() and frees them. A library loaded
 * with RTLD_DEEPBIND looks in its own dependencies first, so its malloc is the C library's, not
 * the recorder's: the host's frees of its blocks are of pointers the trace never saw made. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    int deep = argc > 2 && !strcmp(argv[2], "deep");
    void *h = dlopen(argv[1], RTLD_NOW | (deep ? RTLD_DEEPBIND : 0));
    if (!h) return fprintf(stderr, "dlopen: %s\n", dlerror()), 1;
    void *(*make)(void) = (void *(*)(void))dlsym(h, "late_leak");
    if (!make) return 1;
    for (int i = 0; i < 3; i++)
        free(make());
    printf("freed 3 blocks of %s\n", deep ? "a deep-bound library" : "a library");
    return 0;
}
