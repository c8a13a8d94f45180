/* `mallet stats [--json] TRACE...`: the summary of one or more traces (analyze/stats.h). */
#define _GNU_SOURCE
#include "analyze/stats.h"
#include "analyze/symbols.h"
#include "cli.h"

#include <inttypes.h>
#include <string.h>

void mallet_usage_stats(FILE *out)
{
    fprintf(out, "usage: mallet stats [--json] TRACE...\n\n"
                 "Summarise one or more trace files (one per process, analysed together in time\n"
                 "order): calls by kind, threads, processes, bytes requested, request-size and\n"
                 "lifetime histograms, peak live bytes and when, cross-thread frees, RSS samples,\n"
                 "and what was still live at the end. By allocation site: calls, bytes, what it\n"
                 "held at the peak and its temporary allocations (blocks freed by their thread's\n"
                 "next call, as heaptrack counts them).\n\n"
                 "A TRACE may be a folder: its *.mtrace files (mallet record -o DIR/).\n\n"
                 "options:\n"
                 "  --json      print one JSON document (stable key order) instead of text\n"
                 "  -h, --help  show this help\n\n"
                 "Exit status: 0 ok, 1 unreadable or corrupt trace, 2 usage error.\n");
}

int mallet_cmd_stats(int argc, char **argv)
{
    int json = 0;
    const mallet_flag_t flags[] = {{.name = "--json", .set = &json}, {.name = NULL}};
    unsigned n = 0;
    int done = mallet_cli_parse_traces(argc, argv, "stats", mallet_usage_stats, flags, &n);
    if (done >= 0) return done;

    mallet_reader_t *r = mallet_cli_open_traces(argv, n);
    if (!r) return MALLET_EXIT_FAIL;
    mallet_stats_t st;
    char err[512];
    int rc = mallet_stats_compute(r, &st, err, sizeof err);
    if (rc) {
        mallet_reader_close(r);
        mallet_err("%s", err);
        return MALLET_EXIT_FAIL;
    }
    /* Name the top allocation sites while the traces' memory maps are at hand. */
    mallet_symbols_t *syms = mallet_cli_symbols(r);
    for (size_t i = 0; syms && i < st.ntop_sites; i++) {
        char name[512];
        mallet_site_t *t = &st.top_sites[i];
        t->name = strdup(mallet_symbols_format(syms, t->file, t->callsite, name, sizeof name));
    }
    mallet_symbols_free(syms);
    mallet_reader_close(r);
    if (json) {
        json_t *doc = mallet_stats_json(&st);
        rc = !doc || json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) ||
             fputc('\n', stdout) == EOF;
        json_decref(doc);
    } else {
        rc = mallet_stats_write_text(&st, stdout);
    }
    mallet_stats_free(&st);
    if (rc || fflush(stdout)) {
        mallet_err("stats: cannot write the report");
        return MALLET_EXIT_FAIL;
    }
    return MALLET_EXIT_OK;
}
