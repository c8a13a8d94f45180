/* pool: a small, clean size-class allocator, the example to copy when testing your own.
 *
 * Requests up to 1 KiB go to one of 64 classes, 16 bytes apart, and up to 64 KiB to one of six
 * power-of-two classes (2 KiB .. 64 KiB). Each class keeps a LIFO free list under its own mutex;
 * when it is empty, the next block is cut from the class's current 256 KiB slab (from mmap, cut
 * as needed, so untouched memory stays unused); freed blocks go back to their class's list,
 * whichever thread frees them. Larger requests get a mapping of their own, returned to the kernel
 * on free.
 *
 * Every block starts with a 16-byte header (class, offset, size). An over-aligned block puts a
 * second header just before the pointer it returns, whose offset leads back to the first. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/mman.h>

#define CLASS_STEP 16u
#define NSMALL 64u     /* classes 1..64: 16 .. 1024 bytes */
#define NCLASSES 70u   /* classes 65..70: 2, 4, 8, 16, 32, 64 KiB */
#define CLASS_MAX (64u << 10)
#define SLAB (256u << 10)

typedef struct header {
    uint32_t cls;    /* 1..NCLASSES, or 0 for a block with a mapping of its own */
    uint32_t offset; /* bytes from the block's first header to this one */
    size_t size;     /* class blocks: usable bytes; own mapping: the mapping's length */
} header_t;

typedef struct freeblock {
    struct freeblock *next;
} freeblock_t;

static struct {
    pthread_mutex_t lock;
    freeblock_t *free;
    char *cut, *cut_end; /* the rest of the current slab */
} classes[NCLASSES + 1] = {[0 ... NCLASSES] = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL}};

static int a_zeroed = 0;

static void *map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static size_t class_bytes(unsigned c)
{
    return c <= NSMALL ? c * CLASS_STEP : (size_t)(NSMALL * CLASS_STEP) << (c - NSMALL);
}

/* The smallest class holding n bytes (n <= CLASS_MAX). */
static unsigned class_for(size_t n)
{
    if (n <= NSMALL * CLASS_STEP) return n ? (unsigned)((n + CLASS_STEP - 1) / CLASS_STEP) : 1;
    unsigned c = NSMALL + 1;
    while (class_bytes(c) < n) c++;
    return c;
}

/* A block of class c: the free list's first, or a new one cut from the slab. Lock held. */
static char *take(unsigned c)
{
    freeblock_t *f = classes[c].free;
    if (f) {
        classes[c].free = f->next;
        return (char *)f;
    }
    size_t block = sizeof(header_t) + class_bytes(c);
    if (!classes[c].cut || (size_t)(classes[c].cut_end - classes[c].cut) < block) {
        char *slab = map(SLAB);
        if (!slab) return NULL;
        classes[c].cut = slab, classes[c].cut_end = slab + SLAB;
    }
    char *b = classes[c].cut;
    classes[c].cut += block;
    return b;
}

/* Places the user pointer in [base, base + room) at alignment align, writing its header. */
static void *place(char *base, uint32_t cls, size_t align, size_t size_field)
{
    uintptr_t p = ((uintptr_t)base + sizeof(header_t) + align - 1) & ~(uintptr_t)(align - 1);
    header_t *h = (header_t *)p - 1;
    h->cls = cls;
    h->offset = (uint32_t)((char *)h - base);
    h->size = size_field;
    return (void *)p;
}

static void *a_alloc(size_t size, size_t align)
{
    size_t slack = align - CLASS_STEP; /* the most an aligned pointer moves past the header */
    if (slack < CLASS_MAX && size <= CLASS_MAX - slack) {
        unsigned c = class_for(size + slack);
        pthread_mutex_lock(&classes[c].lock);
        char *base = take(c);
        pthread_mutex_unlock(&classes[c].lock);
        if (!base) return NULL;
        void *p = place(base, c, align, 0);
        /* usable: from p to the end of the block */
        ((header_t *)p - 1)->size = (size_t)(base + sizeof(header_t) + class_bytes(c) - (char *)p);
        return p;
    }
    if (size > SIZE_MAX - slack - 2 * sizeof(header_t) - 4096) return NULL;
    size_t len = sizeof(header_t) + slack + size;
    char *base = map(len);
    return base ? place(base, 0, align, len) : NULL;
}

static void a_free(void *p)
{
    header_t *h = (header_t *)p - 1;
    char *base = (char *)h - h->offset;
    if (h->cls == 0) {
        munmap(base, h->size);
        return;
    }
    unsigned c = h->cls;
    freeblock_t *f = (freeblock_t *)base;
    pthread_mutex_lock(&classes[c].lock);
    f->next = classes[c].free;
    classes[c].free = f;
    pthread_mutex_unlock(&classes[c].lock);
}

static size_t a_usable(const void *p)
{
    const header_t *h = (const header_t *)p - 1;
    if (h->cls) return h->size;
    return h->size - h->offset - sizeof(header_t); /* the mapping past the header */
}

#include "../alloc_api.h"
