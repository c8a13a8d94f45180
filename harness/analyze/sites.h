/* Allocation sites: per (process, callsite), the views heaptrack_print opens with: calls and
 * bytes ("most calls to allocation functions", "most memory allocated"), what was live at the
 * heap's peak ("peak memory consumers") and temporary allocations ("most temporary
 * allocations"). Library code: no I/O. */
#ifndef MALLET_ANALYZE_SITES_H
#define MALLET_ANALYZE_SITES_H

#include <stddef.h>
#include <stdint.h>

typedef struct mallet_site {
    unsigned file;                    /* which trace (process) */
    uint64_t callsite;                /* return address of the allocating call */
    uint64_t calls;                   /* allocations made there (blocks born) */
    uint64_t bytes;                   /* bytes requested by them (saturating) */
    uint64_t live, live_blocks;       /* its blocks live now (bytes modular, as the heap model's) */
    uint64_t peak_bytes, peak_blocks; /* its blocks live at the heap's peak (mallet_sites_peak) */
    uint64_t temporary; /* blocks freed by their thread's very next call (mallet_sites_release) */
    uint64_t epoch;     /* the peak that peak_* were last brought up to (sites.c) */
    char *name;         /* "func (module+0x..)", set by whoever can resolve symbols, or NULL */
} mallet_site_t;

typedef struct mallet_sites mallet_sites_t;

mallet_sites_t *mallet_sites_new(void);
/* Counts one allocation of bytes at (file, callsite): a block is born, live. Returns 0, or -1
 * when out of memory. */
int mallet_sites_add(mallet_sites_t *s, unsigned file, uint64_t callsite, uint64_t bytes);
/* A block of bytes born at (file, callsite) dies; temporary: it was freed by its thread's next
 * allocation call after the one that made it (heaptrack's "temporary allocation": a block that
 * served nothing but the code between the two calls). */
void mallet_sites_release(mallet_sites_t *s, unsigned file, uint64_t callsite, uint64_t bytes,
                          int temporary);
/* The heap reached a new peak of live bytes now: every site's live blocks at this moment are its
 * peak_*. O(1): a site brings its peak_* up to date when its blocks next change (sites.c). */
void mallet_sites_peak(mallet_sites_t *s);
/* The n sites with the most calls, the n with the most bytes, the n with the most bytes live at
 * the peak and the n with the most temporary blocks (a union, so at most 4n; the last two only
 * where not 0), by calls then bytes, descending, in a new array (*out, free with
 * mallet_sites_free_top). Returns the count, or -1 when out of memory. */
long mallet_sites_top(const mallet_sites_t *s, size_t n, mallet_site_t **out);
uint64_t mallet_sites_count(const mallet_sites_t *s); /* distinct sites */
void mallet_sites_free_top(mallet_site_t *top, size_t n);
void mallet_sites_free(mallet_sites_t *s);

#endif
