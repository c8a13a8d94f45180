/* Test program: checks the C allocation API's promises on whatever allocator is loaded (run it
 * under LD_PRELOAD=an allocator): alignments, calloc zeroing (also of reused memory), realloc
 * keeping contents, usable sizes, free(NULL), large blocks, and blocks freed by another thread.
 * Prints "ok" and exits 0, or names the first broken promise and exits 1. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPECT(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            printf("broken: %s (line %d)\n", #c, __LINE__);                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void *freer(void *p)
{
    free(p);
    return NULL;
}

int main(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    free(NULL);
    for (size_t n = 0; n < 5000; n += 7) {
        unsigned char *p = malloc(n);
        EXPECT(p && (uintptr_t)p % 16 == 0);
        EXPECT(malloc_usable_size(p) >= n);
        memset(p, 0xab, n);
        free(p);
        unsigned char *z = calloc(1, n); /* likely the block just freed, dirty */
        EXPECT(z);
        for (size_t i = 0; i < n; i++) EXPECT(z[i] == 0);
        free(z);
    }
    for (size_t a = sizeof(void *); a <= 65536; a *= 2) {
        void *p = NULL;
        EXPECT(posix_memalign(&p, a, 100) == 0 && (uintptr_t)p % a == 0);
        free(p);
        p = aligned_alloc(a, 3 * a);
        EXPECT(p && (uintptr_t)p % a == 0 && malloc_usable_size(p) >= 3 * a);
        free(p);
        p = memalign(a, 1);
        EXPECT(p && (uintptr_t)p % a == 0);
        free(p);
    }
    void *v = valloc(10), *pv = pvalloc(10);
    EXPECT(v && (uintptr_t)v % page == 0 && pv && (uintptr_t)pv % page == 0);
    EXPECT(malloc_usable_size(pv) >= page);
    free(v);
    free(pv);
    void *bad = NULL;
    EXPECT(posix_memalign(&bad, 24, 8) != 0);
    /* realloc keeps the contents through growth and shrinking, small to large and back */
    unsigned char *r = malloc(10);
    for (int i = 0; i < 10; i++) r[i] = (unsigned char)i;
    for (size_t n = 20; n < 1 << 22; n *= 3) {
        r = realloc(r, n);
        EXPECT(r);
        for (int i = 0; i < 10; i++) EXPECT(r[i] == i);
    }
    r = realloc(r, 5);
    EXPECT(r && r[4] == 4);
    r = reallocarray(r, 4, 100);
    EXPECT(r && r[4] == 4);
    volatile size_t half = SIZE_MAX / 2, huge = SIZE_MAX - 10; /* opaque to the compiler */
    EXPECT(reallocarray(r, half, 4) == NULL);
    free(r);
    EXPECT(malloc(huge) == NULL);
    EXPECT(calloc(half, 4) == NULL);
    /* big blocks */
    unsigned char *big = malloc(64u << 20);
    EXPECT(big);
    big[0] = 1, big[(64u << 20) - 1] = 2;
    free(big);
    /* blocks freed by other threads */
    for (int round = 0; round < 100; round++) {
        pthread_t t;
        void *p = malloc((size_t)round * 13 + 1);
        EXPECT(p && pthread_create(&t, NULL, freer, p) == 0 && pthread_join(t, NULL) == 0);
    }
    printf("ok\n");
    return 0;
}
