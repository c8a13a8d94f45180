/* `mallet check TRACE...`: leaks by callsite, double frees and frees of unknown pointers
 * (analysis in analyze/stats.h, callsite names from analyze/symbols.h). */
#define _GNU_SOURCE
#include "analyze/stats.h"
#include "analyze/suppress.h"
#include "analyze/symbols.h"
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void mallet_usage_check(FILE *out)
{
    fprintf(out,
            "usage: mallet check [--suppressions FILE]... [--suppress PATTERN]...\n"
            "                    [--no-builtin-suppressions] [--gen-suppressions] TRACE...\n\n"
            "Report, one line each with its callsite:\n"
            "  - blocks still live when the trace ends (leaks), grouped by the call that\n"
            "    allocated them, largest first;\n"
            "  - double frees: a pointer freed again after it was freed (and not allocated\n"
            "    since), with where it was first freed;\n"
            "  - frees and reallocs of pointers the process never allocated.\n"
            "Callsites are named from the trace's memory map and the modules' symbol tables as\n"
            "they are now on disk: 'function (module+0xVADDR)', 'module+0xVADDR' or '0xADDR'.\n"
            "In a process forked from a traced parent, frees of blocks inherited from the\n"
            "parent (given among the TRACEs) are not problems.\n\n"
            "Leaks can be suppressed, as LeakSanitizer and heaptrack do: a PATTERN matches a\n"
            "leak's site when found in its function's name, its module's name or path ('*'\n"
            "any run of characters, '^' and '$' anchor); suppressed leaks are listed apart\n"
            "and are not problems. A few of the C runtime's own blocks, made once and never\n"
            "freed, are suppressed by default (docs/CHECK.md).\n\n"
            "A TRACE may be a folder: its *.mtrace files (mallet record -o DIR/).\n\n"
            "options:\n"
            "  --suppressions FILE        read 'leak:PATTERN' lines ('#' comments) from FILE\n"
            "  --suppress PATTERN         suppress the leaks PATTERN matches\n"
            "  --no-builtin-suppressions  report the C runtime's own blocks too\n"
            "  --gen-suppressions         print, instead of the report, a suppressions file\n"
            "                             for the leaks found (a baseline for later checks)\n"
            "  -h, --help                 show this help\n\n"
            "Exit status: 0 clean, 1 problems found (or an unreadable or corrupt trace, or\n"
            "suppressions file), 2 usage error.\n");
}

/* A leak group after naming: callsites of different processes that resolve to the same name
 * (the same code, at different ASLR addresses) are one line. */
typedef struct named_leak {
    char *where;
    unsigned file, nfiles;
    uint64_t blocks, bytes;
} named_leak_t;

static int cmp_named_where(const void *a, const void *b)
{
    const named_leak_t *x = a, *y = b;
    int c = strcmp(x->where, y->where);
    if (c) return c;
    return x->file < y->file ? -1 : x->file > y->file;
}

static int cmp_named_size(const void *a, const void *b)
{
    const named_leak_t *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    if (x->blocks != y->blocks) return x->blocks > y->blocks ? -1 : 1;
    return strcmp(x->where, y->where);
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* ", 1 double free" / ", 2 double frees" / ", no double frees" */
static void count_phrase(uint64_t n, const char *one, const char *many)
{
    if (n)
        printf(", %" PRIu64 " %s", n, plural(n, one, many));
    else
        printf(", no %s", many);
}

/* True if a suppression matches the leak's site (and counts it there). */
static int suppressed(mallet_suppressions_t *sup, mallet_symbols_t *syms, const mallet_leak_t *l)
{
    mallet_sym_t sym;
    if (!sup->n || !mallet_symbols_lookup(syms, l->file, l->callsite, &sym)) return 0;
    const char *subjects[] = {sym.func, sym.module, sym.path};
    return mallet_suppressions_match(sup, subjects, 3, l->blocks, l->bytes) != NULL;
}

/* Prints the lines of the leaks no suppression matches, adding those to *blocks and *bytes;
 * returns the number of lines, or -1 when out of memory. */
static long print_leaks(const mallet_check_t *c, mallet_symbols_t *syms, mallet_suppressions_t *sup,
                        const int64_t *pids, unsigned nfiles, uint64_t *blocks, uint64_t *bytes)
{
    if (c->nleaks == 0) return 0;
    named_leak_t *v = calloc(c->nleaks, sizeof *v);
    if (!v) return -1;
    size_t n = 0, k = 0;
    long rc = -1;
    for (size_t i = 0; i < c->nleaks; i++) {
        const mallet_leak_t *l = &c->leaks[i];
        if (suppressed(sup, syms, l)) continue;
        char buf[1024];
        mallet_symbols_format(syms, l->file, l->callsite, buf, sizeof buf);
        if (!(v[n].where = strdup(buf))) goto out;
        v[n].file = l->file, v[n].nfiles = 1, v[n].blocks = l->blocks, v[n].bytes = l->bytes;
        *blocks += l->blocks;
        *bytes += l->bytes;
        n++;
    }
    qsort(v, n, sizeof *v, cmp_named_where);
    for (size_t i = 0; i < n; i++) {
        if (k && !strcmp(v[k - 1].where, v[i].where)) {
            named_leak_t *g = &v[k - 1];
            if (g->file != v[i].file) g->nfiles++, g->file = v[i].file;
            g->blocks += v[i].blocks;
            g->bytes += v[i].bytes;
            free(v[i].where);
        } else {
            v[k++] = v[i];
        }
    }
    n = k;
    qsort(v, n, sizeof *v, cmp_named_size);
    for (size_t i = 0; i < n; i++) {
        printf("leak: %" PRIu64 " %s, %" PRIu64 " %s allocated at %s", v[i].blocks,
               plural(v[i].blocks, "block", "blocks"), v[i].bytes,
               plural(v[i].bytes, "byte", "bytes"), v[i].where);
        if (nfiles > 1 && v[i].nfiles == 1) printf(" in pid %" PRId64, pids[v[i].file]);
        if (v[i].nfiles > 1) printf(" in %u processes", v[i].nfiles);
        putchar('\n');
    }
    rc = (long)n;
out:
    for (size_t i = 0; i < n; i++)
        free(v[i].where);
    free(v);
    return rc;
}

static void print_problem(const mallet_problem_t *p, mallet_symbols_t *syms, const int64_t *pids,
                          unsigned nfiles)
{
    char at[1024], first[1024];
    const char *call = p->op == MALLET_OP_FREE ? "freed" : "passed to realloc";
    mallet_symbols_format(syms, p->file, p->callsite, at, sizeof at);
    switch (p->kind) {
    case MALLET_PROBLEM_DOUBLE_FREE:
    case MALLET_PROBLEM_REALLOC_FREED:
        mallet_symbols_format(syms, p->file, p->first_callsite, first, sizeof first);
        printf("%s: 0x%" PRIx64 " %s at %s, first freed at %s",
               p->kind == MALLET_PROBLEM_DOUBLE_FREE ? "double free" : "realloc of freed pointer",
               p->ptr, call, at, first);
        break;
    default:
        printf("%s: 0x%" PRIx64 " %s at %s",
               p->kind == MALLET_PROBLEM_UNKNOWN_FREE ? "free of unknown pointer"
                                                      : "realloc of unknown pointer",
               p->ptr, call, at);
        break;
    }
    if (nfiles > 1) printf(" in pid %" PRId64, pids[p->file]);
    printf(" (tid %" PRIu32 ")\n", p->tid);
}

/* --gen-suppressions: a suppressions file for the leaks no suppression takes, one exact
 * `leak:^FUNCTION$` a named site (sites of several processes once); a site with no function
 * name is a comment (a pattern for its module would take every leak of the module). */
static int gen_suppressions(const mallet_check_t *c, mallet_symbols_t *syms,
                            mallet_suppressions_t *sup)
{
    printf("# mallet check --gen-suppressions: the leaks found, as leak:PATTERN lines\n");
    const char **seen = calloc(c->nleaks ? c->nleaks : 1, sizeof *seen); /* names printed */
    size_t nseen = 0;
    if (!seen) return -1;
    for (size_t i = 0; i < c->nleaks; i++) {
        const mallet_leak_t *l = &c->leaks[i];
        mallet_sym_t sym;
        if (suppressed(sup, syms, l)) continue;
        if (!mallet_symbols_lookup(syms, l->file, l->callsite, &sym) || !sym.func) {
            char where[1024];
            mallet_symbols_format(syms, l->file, l->callsite, where, sizeof where);
            printf("# %" PRIu64 " %s at %s: no function name\n", l->blocks,
                   plural(l->blocks, "block", "blocks"), where);
            continue;
        }
        size_t k = 0;
        while (k < nseen && strcmp(seen[k], sym.func))
            k++;
        if (k < nseen) continue;  /* another site of the same function */
        seen[nseen++] = sym.func; /* the resolver's string, alive as long as syms */
        printf("leak:^%s$\n", sym.func);
    }
    free(seen);
    return 0;
}

/* The suppressions the options ask for; 0, or -1 after saying why. */
static int load_suppressions(mallet_suppressions_t *sup, int builtin, const char **files,
                             unsigned nfiles, const char **patterns, unsigned npatterns)
{
    char err[4400];
    if (builtin && mallet_suppressions_builtin(sup)) return mallet_err("out of memory"), -1;
    for (unsigned i = 0; i < nfiles; i++)
        if (mallet_suppressions_load(sup, files[i], err, sizeof err))
            return mallet_err("%s", err), -1;
    for (unsigned i = 0; i < npatterns; i++)
        if (mallet_suppressions_add(sup, patterns[i], "--suppress"))
            return mallet_err("out of memory"), -1;
    return 0;
}

/* "suppressed: 1 block, 4096 bytes by leak:PATTERN (ORIGIN)", for each suppression used. */
static void print_suppressed(const mallet_suppressions_t *sup)
{
    for (size_t i = 0; i < sup->n; i++) {
        const mallet_suppression_t *e = &sup->v[i];
        if (!e->blocks) continue;
        printf("suppressed: %" PRIu64 " %s, %" PRIu64 " %s by leak:%s (%s)\n", e->blocks,
               plural(e->blocks, "block", "blocks"), e->bytes, plural(e->bytes, "byte", "bytes"),
               e->pattern, e->origin);
    }
}

enum { MAX_SUPPRESSION_OPTIONS = 256 };

int mallet_cmd_check(int argc, char **argv)
{
    const char *files[MAX_SUPPRESSION_OPTIONS], *patterns[MAX_SUPPRESSION_OPTIONS];
    unsigned nfiles = 0, npatterns = 0;
    int no_builtin = 0, gen = 0;
    const mallet_flag_t flags[] = {{.name = "--suppressions",
                                    .values = files,
                                    .count = &nfiles,
                                    .max = MAX_SUPPRESSION_OPTIONS},
                                   {.name = "--suppress",
                                    .values = patterns,
                                    .count = &npatterns,
                                    .max = MAX_SUPPRESSION_OPTIONS},
                                   {.name = "--no-builtin-suppressions", .set = &no_builtin},
                                   {.name = "--gen-suppressions", .set = &gen},
                                   {.name = NULL}};
    unsigned n = 0;
    int done = mallet_cli_parse_traces(argc, argv, "check", mallet_usage_check, flags, &n);
    if (done >= 0) return done;
    mallet_suppressions_t sup = {0};
    if (load_suppressions(&sup, !no_builtin, files, nfiles, patterns, npatterns)) {
        mallet_suppressions_free(&sup);
        return MALLET_EXIT_FAIL;
    }

    mallet_reader_t *r = mallet_cli_open_traces(argv, n);
    if (!r) return mallet_suppressions_free(&sup), MALLET_EXIT_FAIL;
    n = mallet_reader_nfiles(r); /* a folder given is its files */
    int64_t *pids = calloc(n, sizeof *pids);
    mallet_symbols_t *syms = NULL;
    mallet_check_t c;
    memset(&c, 0, sizeof c);
    char err[512] = "out of memory";
    int rc = -1;
    if (pids) {
        for (unsigned i = 0; i < n; i++)
            pids[i] = mallet_reader_info(r, i)->pid;
        syms = mallet_cli_symbols(r);
        if (syms) rc = mallet_check_compute(r, &c, err, sizeof err);
    }
    mallet_reader_close(r);
    if (rc) {
        mallet_err("%s", err);
        mallet_symbols_free(syms);
        mallet_suppressions_free(&sup);
        free(pids);
        return MALLET_EXIT_FAIL;
    }

    if (gen) {
        int g = gen_suppressions(&c, syms, &sup);
        mallet_check_free(&c);
        mallet_symbols_free(syms);
        mallet_suppressions_free(&sup);
        free(pids);
        if (g || fflush(stdout) || ferror(stdout)) {
            mallet_err(g ? "out of memory" : "check: cannot write the suppressions");
            return MALLET_EXIT_FAIL;
        }
        return MALLET_EXIT_OK;
    }
    uint64_t leaked_blocks = 0, leaked_bytes = 0; /* not suppressed */
    long sites = print_leaks(&c, syms, &sup, pids, n, &leaked_blocks, &leaked_bytes);
    print_suppressed(&sup);
    for (size_t i = 0; sites >= 0 && i < c.nproblems; i++)
        print_problem(&c.problems[i], syms, pids, n);
    if (c.problems_total > c.nproblems)
        printf("(%" PRIu64 " more problems not listed)\n", c.problems_total - c.nproblems);
    uint64_t bad_reallocs = c.realloc_freed + c.realloc_unknown;
    printf("mallet check: ");
    if (leaked_blocks)
        printf("%" PRIu64 " %s leaked in %" PRIu64 " %s from %ld %s", leaked_bytes,
               plural(leaked_bytes, "byte", "bytes"), leaked_blocks,
               plural(leaked_blocks, "block", "blocks"), sites < 0 ? 0 : sites,
               plural((uint64_t)sites, "callsite", "callsites"));
    else
        printf("no leaks");
    if (leaked_blocks < c.leaked_blocks)
        printf(" (%" PRIu64 "%s %s suppressed)", c.leaked_blocks - leaked_blocks,
               leaked_blocks ? " more" : "",
               plural(c.leaked_blocks - leaked_blocks, "block", "blocks"));
    count_phrase(c.double_frees, "double free", "double frees");
    count_phrase(c.unknown_frees, "free of an unknown pointer", "frees of unknown pointers");
    if (bad_reallocs)
        count_phrase(bad_reallocs, "realloc of a freed or unknown pointer",
                     "reallocs of freed or unknown pointers");
    if (c.inherited_frees)
        printf(" (%" PRIu64 " %s inherited across fork, which is fine)", c.inherited_frees,
               plural(c.inherited_frees, "free of a block", "frees of blocks"));
    if (c.exec_blocks)
        printf(" (%" PRIu64 " %s live at an exec, released by it)", c.exec_blocks,
               plural(c.exec_blocks, "block", "blocks"));
    putchar('\n');
    int problems = leaked_blocks || c.problems_total;
    mallet_check_free(&c);
    mallet_symbols_free(syms);
    mallet_suppressions_free(&sup);
    free(pids);
    if (sites < 0) {
        mallet_err("out of memory");
        return MALLET_EXIT_FAIL;
    }
    if (fflush(stdout) || ferror(stdout)) {
        mallet_err("check: cannot write the report");
        return MALLET_EXIT_FAIL;
    }
    return problems ? MALLET_EXIT_FAIL : MALLET_EXIT_OK;
}
