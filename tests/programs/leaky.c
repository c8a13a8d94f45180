/* Test program: leaks from two known functions, then frees one block twice, which glibc
 * detects and aborts on. mallet check must name make_leak, make_other_leak and the double free. */
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
    return 0;
}
