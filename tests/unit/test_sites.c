/* Allocation sites: counting per (process, callsite), growth past the first table, and the top-N
 * union of most calls and most bytes. */
#include "analyze/sites.h"
#include "check.h"

#include <stdlib.h>

int main(void)
{
    mallet_sites_t *s = mallet_sites_new();
    CHECK(s != NULL);
    if (!s) return 1;
    /* 5000 distinct sites (the table grows several times), site k called k % 7 + 1 times */
    for (uint64_t k = 0; k < 5000; k++)
        for (uint64_t c = 0; c <= k % 7; c++) CHECK(mallet_sites_add(s, 0, 0x1000 + k * 16, 8) == 0);
    /* the same callsite in another process is another site */
    CHECK(mallet_sites_add(s, 1, 0x1000, 1) == 0);
    /* one site with few calls but the most bytes */
    CHECK(mallet_sites_add(s, 2, 0x42, 1u << 30) == 0);
    CHECK_EQ(mallet_sites_count(s), 5002);

    mallet_site_t *top = NULL;
    long n = mallet_sites_top(s, 3, &top);
    /* 3 with most calls (7 calls each) and 3 with most bytes: the big one and two of the 7-call
     * sites (56 bytes each), already in the list: 4 distinct */
    CHECK_EQ(n, 4);
    if (n == 4) {
        CHECK_EQ(top[0].calls, 7);
        CHECK_EQ(top[0].bytes, 56);
        CHECK_EQ(top[2].calls, 7);
        CHECK_EQ(top[3].file, 2);
        CHECK_EQ(top[3].bytes, 1u << 30);
        CHECK(top[0].name == NULL);
        /* ties broken by process then address: the earliest 7-call sites first */
        CHECK_EQ(top[0].callsite, 0x1000 + 6 * 16);
        CHECK_EQ(top[1].callsite, 0x1000 + 13 * 16);
    }
    mallet_sites_free_top(top, n > 0 ? (size_t)n : 0);
    mallet_sites_free(s);

    mallet_sites_t *empty = mallet_sites_new();
    CHECK_EQ(mallet_sites_top(empty, 10, &top), 0);
    mallet_sites_free_top(top, 0);
    mallet_sites_free(empty);
    return CHECK_DONE();
}
