/* pool: a small, clean size-class allocator, the example to copy when testing your own.
 *
 * Requests up to 1 KiB go to one of 64 classes, 16 bytes apart. Each class keeps a LIFO free
 * list under its own mutex, refilled by carving a 256 KiB slab from mmap; freed blocks go back to
 * their class's list, whichever thread frees them. Larger requests get a mapping of their own,
 * returned to the kernel on free.
 *
 * Every block starts with a 16-byte header (class, offset, size). An over-aligned block puts a
 * second header just before the pointer it returns, whose offset leads back to the first. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/mman.h>

#define CLASS_STEP 16u
#define NCLASSES 64u /* classes of 16 .. 1024 bytes */
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
} classes[NCLASSES + 1] = {[0 ... NCLASSES] = {PTHREAD_MUTEX_INITIALIZER, NULL}};

static int a_zeroed = 0;

static void *map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Carves a slab into blocks of class c (header + c * CLASS_STEP bytes). Lock held. */
static int refill(unsigned c)
{
    size_t block = sizeof(header_t) + c * CLASS_STEP;
    char *slab = map(SLAB);
    if (!slab) return -1;
    for (size_t off = 0; off + block <= SLAB; off += block) {
        freeblock_t *f = (freeblock_t *)(slab + off);
        f->next = classes[c].free;
        classes[c].free = f;
    }
    return 0;
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
    if (slack < NCLASSES * CLASS_STEP && size <= NCLASSES * CLASS_STEP - slack) {
        unsigned c = (unsigned)((size + slack + CLASS_STEP - 1) / CLASS_STEP);
        if (c == 0) c = 1;
        pthread_mutex_lock(&classes[c].lock);
        freeblock_t *f = classes[c].free;
        if (!f && refill(c) == 0) f = classes[c].free;
        if (f) classes[c].free = f->next;
        pthread_mutex_unlock(&classes[c].lock);
        if (!f) return NULL;
        char *base = (char *)f;
        void *p = place(base, c, align, 0);
        /* usable: from p to the end of the block */
        ((header_t *)p - 1)->size = (size_t)(base + sizeof(header_t) + c * CLASS_STEP - (char *)p);
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
