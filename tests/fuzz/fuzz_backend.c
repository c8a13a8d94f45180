/* Fuzz target for allocator descriptors (harness/backend/backend.c, allocators/README.md): the
 * JSON files `mallet replay` and `mallet allocators` read from allocators/ or a user's folder.
 * Each input is loaded as a descriptor file (a memfd). Besides crashes and sanitizer reports it
 * checks what backend.h promises: a rejected file gives one line that names the file; an accepted
 * one has a valid name, its library candidates non-empty, each environment entry KEY=VALUE with a
 * non-empty KEY, and is available exactly when it preloads nothing or a candidate was found.
 *
 * Builds as fuzz_reader.c does (README.md): libFuzzer, or -DMALLET_FUZZ_STANDALONE for a main()
 * that mutates descriptors like the shipped ones and runs as a short ctest. */
#define _GNU_SOURCE
#include "backend/backend.h"
#include "fuzz.h"

#include <string.h>

static unsigned long stat_accepted;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_load(data, size);
    mallet_backend_t b;
    char err[1024];
    if (mallet_backend_load_file(fuzz_path, "/nonexistent/mallet", &b, err, sizeof err)) {
        FUZZ_ASSERT(!strncmp(err, fuzz_path, strlen(fuzz_path)), "error does not name the file: %s",
                    err);
        FUZZ_ASSERT(!strchr(err, '\n') && !strchr(err, '\r'), "error is not one line: %s", err);
        return 0;
    }
    stat_accepted++;
    FUZZ_ASSERT(b.name && b.name[0] &&
                    strspn(b.name, "abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == strlen(b.name),
                "name \"%s\"", b.name ? b.name : "(null)");
    FUZZ_ASSERT(b.description && b.source && !strcmp(b.source, fuzz_path), "description, source");
    for (size_t i = 0; i < b.nlibrary; i++)
        FUZZ_ASSERT(b.library[i] && b.library[i][0], "library candidate %zu is empty", i);
    for (size_t i = 0; i < b.nenv; i++) {
        const char *eq = b.env[i] ? strchr(b.env[i], '=') : NULL;
        FUZZ_ASSERT(eq && eq > b.env[i], "env entry %zu is not KEY=VALUE", i);
    }
    FUZZ_ASSERT(b.available == (b.nlibrary == 0 || b.path != NULL),
                "available %d with %zu "
                "candidates and path %s",
                b.available, b.nlibrary, b.path ? b.path : "(null)");
    mallet_backend_clear(&b);
    return 0;
}

#ifdef MALLET_FUZZ_STANDALONE
/* ---- the standalone runner ------------------------------------------------------------------ */

static const char *const seed_texts[] = {
    "{\"name\": \"jemalloc\", \"description\": \"jemalloc 5 (Debian libjemalloc2).\",\n"
    " \"library\": [\"libjemalloc.so.2\"], \"package\": \"libjemalloc2\"}\n",
    "{\"name\": \"glibc-1arena\", \"description\": \"one arena\", \"library\": [],\n"
    " \"env\": {\"MALLOC_ARENA_MAX\": \"1\", \"GLIBC_TUNABLES\": \"glibc.malloc.tcache_count=0\"},"
    " \"package\": \"libc6\"}\n",
    "{\"name\": \"pool\", \"library\": [\"@mallet/libmallet_pool.so\", \"/lib/x.so\", "
    "\"libc.so.6\"]}",
    "{\"name\": \"a\\u00e9\\n\", \"library\": [\"\"], \"env\": {\"A\\nB\": 1}, \"extra\": null}",
};
enum { NSEEDS = sizeof seed_texts / sizeof seed_texts[0] };

int main(int argc, char **argv)
{
    fuzz_opts_t o;
    if (fuzz_args(argc, argv, "fuzz_backend", 1, &o)) return 2;
    blob_t seeds[NSEEDS];
    for (unsigned s = 0; s < NSEEDS; s++)
        seeds[s] = (blob_t){(uint8_t *)(uintptr_t)seed_texts[s], strlen(seed_texts[s])};
    if (o.seeds) return fuzz_write_seeds(o.seeds, seeds, NSEEDS);
    for (unsigned s = 0; s < NSEEDS; s++)
        LLVMFuzzerTestOneInput((const uint8_t *)seed_texts[s], strlen(seed_texts[s]));
    FUZZ_ASSERT(stat_accepted == NSEEDS - 1, "%lu of the %u good seeds accepted", stat_accepted,
                NSEEDS - 1);
    unsigned long n = fuzz_loop(seeds, NSEEDS, o.iters, o.seconds);
    printf("fuzz_backend: %lu inputs, no failure (%lu accepted)\n", n, stat_accepted);
    return 0;
}
#endif
