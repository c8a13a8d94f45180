/* Allocation sites: calls and bytes per (process, callsite), the view heaptrack_print opens
 * with ("most calls to allocation functions", "most memory allocated"). Library code: no I/O. */
#ifndef MALLET_ANALYZE_SITES_H
#define MALLET_ANALYZE_SITES_H

#include <stddef.h>
#include <stdint.h>

typedef struct mallet_site {
    unsigned file;      /* which trace (process) */
    uint64_t callsite;  /* return address of the allocating call */
    uint64_t calls;     /* allocations made there (blocks born) */
    uint64_t bytes;     /* bytes requested by them (saturating) */
    char *name;         /* "func (module+0x..)", set by whoever can resolve symbols, or NULL */
} mallet_site_t;

typedef struct mallet_sites mallet_sites_t;

mallet_sites_t *mallet_sites_new(void);
/* Counts one allocation of bytes at (file, callsite). Returns 0, or -1 when out of memory. */
int mallet_sites_add(mallet_sites_t *s, unsigned file, uint64_t callsite, uint64_t bytes);
/* The n sites with the most calls and the n with the most bytes (a union, so at most 2n), by
 * calls then bytes, descending, in a new array (*out, free with mallet_sites_free_top). Returns
 * the count, or -1 when out of memory. */
long mallet_sites_top(const mallet_sites_t *s, size_t n, mallet_site_t **out);
uint64_t mallet_sites_count(const mallet_sites_t *s); /* distinct sites */
void mallet_sites_free_top(mallet_site_t *top, size_t n);
void mallet_sites_free(mallet_sites_t *s);

#endif
