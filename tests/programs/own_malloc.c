/* Test program with an allocator of its own: it defines malloc, free, calloc and realloc (each
 * block with a header its free checks, over glibc's __libc_malloc), as a program with a
 * statically linked allocator does. The loader finds these before any preloaded library's, so
 * the recorder sees none of its calls; and the C library's strdup and strndup must take their
 * blocks from this malloc, or this free aborts ("free of a block not mine"). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

#define MAGIC 0x6d616c6c6574ull

void *malloc(size_t n)
{
    unsigned long long *p = __libc_malloc(n + 16);
    if (!p) return NULL;
    p[0] = MAGIC;
    return p + 2;
}

void free(void *q)
{
    if (!q) return;
    unsigned long long *p = (unsigned long long *)q - 2;
    if (p[0] != MAGIC) {
        fputs("free of a block not mine\n", stderr);
        abort();
    }
    __libc_free(p);
}

void *calloc(size_t a, size_t b)
{
    if (b && a > (size_t)-1 / b) return NULL;
    void *p = malloc(a * b);
    if (p) memset(p, 0, a * b);
    return p;
}

void *realloc(void *q, size_t n)
{
    void *p = malloc(n);
    if (q && p) {
        memcpy(p, q, n); /* a test: the old block is at least n bytes in its uses here */
        free(q);
    }
    return p;
}

int main(void)
{
    char *s = strdup("hello"), *t = strndup("world", 3);
    printf("%s %s\n", s, t);
    free(s);
    free(t);
    return 0;
}
