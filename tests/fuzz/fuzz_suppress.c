/* Fuzz target for leak suppressions (harness/analyze/suppress.c): a suppressions file is input
 * `mallet check` reads, and its patterns run against every leak's names. An input is the file
 * (through a memfd). Besides crashes and sanitizer reports it checks what suppress.h promises: an
 * error names the file; every pattern loaded matches the text it spells (its pieces in order,
 * without the '*'s and anchors), and the subjects it is tried on never crash it.
 *
 * Builds as fuzz_reader.c does (README.md): libFuzzer, or -DMALLET_FUZZ_STANDALONE for a main()
 * that mutates a few suppressions files and runs as a short ctest. */
#define _GNU_SOURCE
#include "analyze/suppress.h"
#include "fuzz.h"

#include <string.h>

static unsigned long stat_loaded;

/* The text a pattern spells: its '*'s and its anchors dropped. */
static void spelled(const char *pattern, char *out, size_t cap)
{
    size_t len = strlen(pattern), k = 0;
    const char *p = pattern, *end = pattern + len;
    if (p < end && *p == '^') p++;
    if (end > p && end[-1] == '$') end--;
    for (; p < end && k + 1 < cap; p++)
        if (*p != '*') out[k++] = *p;
    out[k] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_load(data, size);
    mallet_suppressions_t s = {0};
    char err[4400];
    if (mallet_suppressions_load(&s, fuzz_path, err, sizeof err)) {
        FUZZ_ASSERT(!strncmp(err, fuzz_path, strlen(fuzz_path)) || !strcmp(err, "out of memory"),
                    "an error that does not name the file: %s", err);
        mallet_suppressions_free(&s);
        return 0;
    }
    stat_loaded++;
    char *whole = malloc(size + 1); /* the input itself as a subject, up to its first NUL */
    FUZZ_ASSERT(whole, "out of memory");
    memcpy(whole, data, size);
    whole[size] = 0;
    for (size_t i = 0; i < s.n; i++) {
        const char *pat = s.v[i].pattern;
        FUZZ_ASSERT(*pat, "an empty pattern was loaded");
        char text[4096];
        spelled(pat, text, sizeof text);
        if (*text && strlen(pat) < sizeof text)
            FUZZ_ASSERT(mallet_suppression_matches(pat, text), "'%s' does not match '%s'", pat,
                        text);
        const char *subjects[] = {"store::Pool::leak_ints(unsigned int)", "libc.so.6", whole, ""};
        const char *none[] = {NULL};
        (void)mallet_suppressions_match(&s, subjects, 4, 1, 1);
        FUZZ_ASSERT(!mallet_suppressions_match(&s, none, 1, 1, 1), "a NULL subject matched");
    }
    free(whole);
    mallet_suppressions_free(&s);
    return 0;
}

#ifdef MALLET_FUZZ_STANDALONE
int main(int argc, char **argv)
{
    static const char *const texts[] = {
        "# third-party code\n\nleak:libfoo.so\n  leak:^Cache::Cache()$  \r\nleak:*::intern*(\n",
        "leak:^a*b*c$\nleak:*\nleak:$\nleak:^\nleak:^*$\n",
        "leak:x\nleek:typo\n",
    };
    enum { NSEEDS = sizeof texts / sizeof *texts };
    blob_t seeds[NSEEDS];
    for (size_t i = 0; i < NSEEDS; i++) {
        seeds[i].len = strlen(texts[i]);
        seeds[i].b = (uint8_t *)strdup(texts[i]);
        FUZZ_ASSERT(seeds[i].b, "out of memory");
    }
    fuzz_opts_t o;
    int rc = fuzz_args(argc, argv, "fuzz_suppress", 1, &o);
    if (rc == 0 && o.seeds) rc = fuzz_write_seeds(o.seeds, seeds, NSEEDS);
    if (rc == 0 && !o.seeds) {
        for (size_t i = 0; i < NSEEDS; i++)
            LLVMFuzzerTestOneInput(seeds[i].b, seeds[i].len);
        FUZZ_ASSERT(stat_loaded == 2, "the good seeds did not load (%lu)", stat_loaded);
        unsigned long n = fuzz_loop(seeds, NSEEDS, o.iters, o.seconds);
        printf("fuzz_suppress: %lu inputs, no failure (%lu files loaded)\n", n, stat_loaded);
    }
    for (size_t i = 0; i < NSEEDS; i++)
        free(seeds[i].b);
    return rc;
}
#endif
