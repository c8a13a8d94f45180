/* See sites.h. An open-addressing table keyed by (file, callsite): programs have thousands of
 * allocation sites at most, against millions of calls, so the table stays small and hot. */
#include "sites.h"

#include <stdlib.h>
#include <string.h>

struct mallet_sites {
    mallet_site_t *slots; /* calls == 0 marks an empty slot */
    size_t cap, used;
    uint64_t epoch; /* peaks so far */
};

/* What a site had live at the heap's last peak is what it has live now if its blocks have not
 * changed since: so a new peak only counts (epoch), and a site whose peak_* are of an older one
 * takes its live values, unchanged since that peak, before they change (and at the end). A new
 * peak at every allocation of a growing heap costs nothing per site. */
static void catch_up(const mallet_sites_t *s, mallet_site_t *e)
{
    if (e->epoch == s->epoch) return;
    e->peak_bytes = e->live;
    e->peak_blocks = e->live_blocks;
    e->epoch = s->epoch;
}

static size_t slot_of(size_t cap, unsigned file, uint64_t callsite)
{
    uint64_t h = (callsite ^ ((uint64_t)file << 56)) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

mallet_sites_t *mallet_sites_new(void)
{
    mallet_sites_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cap = 1024;
    s->slots = calloc(s->cap, sizeof *s->slots);
    if (!s->slots) return free(s), NULL;
    return s;
}

static int grow(mallet_sites_t *s)
{
    size_t cap = s->cap * 2;
    mallet_site_t *n = calloc(cap, sizeof *n);
    if (!n) return -1;
    for (size_t i = 0; i < s->cap; i++) {
        const mallet_site_t *o = &s->slots[i];
        if (!o->calls) continue;
        size_t j = slot_of(cap, o->file, o->callsite);
        while (n[j].calls)
            j = (j + 1) & (cap - 1);
        n[j] = *o;
    }
    free(s->slots);
    s->slots = n;
    s->cap = cap;
    return 0;
}

/* The slot of (file, callsite): its entry, or the empty slot where it goes. */
static mallet_site_t *slot(const mallet_sites_t *s, unsigned file, uint64_t callsite)
{
    size_t i = slot_of(s->cap, file, callsite);
    while (s->slots[i].calls && (s->slots[i].file != file || s->slots[i].callsite != callsite))
        i = (i + 1) & (s->cap - 1);
    return &s->slots[i];
}

int mallet_sites_add(mallet_sites_t *s, unsigned file, uint64_t callsite, uint64_t bytes)
{
    if (2 * (s->used + 1) > s->cap && grow(s)) return -1;
    mallet_site_t *e = slot(s, file, callsite);
    if (!e->calls) {
        e->file = file;
        e->callsite = callsite;
        e->epoch = s->epoch; /* nothing live at the peaks before it */
        s->used++;
    }
    catch_up(s, e);
    e->calls++;
    e->bytes = e->bytes + bytes < e->bytes ? UINT64_MAX : e->bytes + bytes;
    e->live += bytes;
    e->live_blocks++;
    return 0;
}

void mallet_sites_release(mallet_sites_t *s, unsigned file, uint64_t callsite, uint64_t bytes,
                          int temporary)
{
    mallet_site_t *e = slot(s, file, callsite);
    if (!e->calls) return; /* not born here: the heap model only releases blocks it saw born */
    catch_up(s, e);
    e->live -= bytes;
    e->live_blocks--;
    e->temporary += temporary != 0;
}

void mallet_sites_peak(mallet_sites_t *s)
{
    s->epoch++;
}

static int by_calls(const void *a, const void *b)
{
    const mallet_site_t *x = a, *y = b;
    if (x->calls != y->calls) return x->calls > y->calls ? -1 : 1;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return x->callsite < y->callsite ? -1 : x->callsite > y->callsite;
}

static int by_bytes(const void *a, const void *b)
{
    const mallet_site_t *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    return by_calls(a, b);
}

static int by_peak(const void *a, const void *b)
{
    const mallet_site_t *x = a, *y = b;
    if (x->peak_bytes != y->peak_bytes) return x->peak_bytes > y->peak_bytes ? -1 : 1;
    return by_calls(a, b);
}

static int by_temporary(const void *a, const void *b)
{
    const mallet_site_t *x = a, *y = b;
    if (x->temporary != y->temporary) return x->temporary > y->temporary ? -1 : 1;
    return by_calls(a, b);
}

long mallet_sites_top(const mallet_sites_t *s, size_t n, mallet_site_t **out)
{
    *out = NULL;
    mallet_site_t *all = malloc((s->used ? s->used : 1) * sizeof *all);
    mallet_site_t *top = malloc((n ? 4 * n : 1) * sizeof *top);
    if (!all || !top) return free(all), free(top), -1;
    size_t k = 0, m = 0;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].calls) {
            all[k] = s->slots[i];
            catch_up(s, &all[k++]); /* what it had at the last peak, if unchanged since */
        }
    int (*const order[])(const void *, const void *) = {by_calls, by_bytes, by_peak, by_temporary};
    for (int o = 0; o < 4; o++) {
        qsort(all, k, sizeof *all, order[o]);
        for (size_t i = 0; i < k && i < n; i++) {
            if ((order[o] == by_peak && !all[i].peak_bytes) ||
                (order[o] == by_temporary && !all[i].temporary))
                break;
            int seen = 0;
            for (size_t j = 0; j < m && !seen; j++)
                seen = top[j].file == all[i].file && top[j].callsite == all[i].callsite;
            if (!seen) top[m++] = all[i];
        }
    }
    free(all);
    qsort(top, m, sizeof *top, by_calls);
    for (size_t i = 0; i < m; i++)
        top[i].name = NULL;
    *out = top;
    return (long)m;
}

uint64_t mallet_sites_count(const mallet_sites_t *s)
{
    return s->used;
}

void mallet_sites_free_top(mallet_site_t *top, size_t n)
{
    for (size_t i = 0; top && i < n; i++)
        free(top[i].name);
    free(top);
}

void mallet_sites_free(mallet_sites_t *s)
{
    if (s) free(s->slots), free(s);
}
