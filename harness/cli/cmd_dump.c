/* `mallet dump [--no-time] [--symbols] TRACE...`: one readable line per event, in time order.
 * The line format is meant to be diffed: fixed field order, no padding that depends on the
 * data except the time column. */
#include "analyze/stats.h"
#include "analyze/symbols.h"
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void mallet_usage_dump(FILE *out)
{
    fprintf(out, "usage: mallet dump [--no-time] [--symbols] TRACE...\n\n"
                 "Print one line per event of the traces, in time order:\n"
                 "  TIME pid PID tid TID CALL = RESULT  [CALLSITE]\n"
                 "TIME is in microseconds (ns precision) since the first process started; the\n"
                 "recorder reads the clock on some events only, and in a single-threaded process\n"
                 "the events between two readings get times spread evenly between them\n"
                 "(docs/TRACE_FORMAT.md 9.3). Failed calls end in 'failed'; RSS samples print as\n"
                 "'rss BYTES', and the end of a thread that ended before its process as\n"
                 "'thread ended'.\n\n"
                 "A TRACE may be a folder: its *.mtrace files (mallet record -o DIR/).\n\n"
                 "options:\n"
                 "  --no-time   leave out the time column (stable output for diffs)\n"
                 "  --symbols   name callsites 'function (module+0xVADDR)' instead of 0xADDR\n"
                 "  -h, --help  show this help\n\n"
                 "Exit status: 0 ok, 1 unreadable or corrupt trace, 2 usage error.\n");
}

/* "0x55.." or "NULL". */
static const char *ptr_str(uint64_t p, char *buf, size_t len)
{
    if (p)
        snprintf(buf, len, "0x%" PRIx64, p);
    else
        snprintf(buf, len, "NULL");
    return buf;
}

/* The call and its result, e.g. "realloc(0x1000, 48) = 0x2000". */
static void format_call(const mallet_event_t *ev, char *out, size_t len)
{
    char a[24], b[24];
    const char *name = mallet_op_name(ev->op);
    switch (ev->op) {
    case MALLET_OP_MALLOC:
    case MALLET_OP_VALLOC:
    case MALLET_OP_PVALLOC:
        snprintf(out, len, "%s(%" PRIu64 ") = %s", name, ev->size, ptr_str(ev->ptr, a, sizeof a));
        break;
    case MALLET_OP_CALLOC:
        snprintf(out, len, "calloc(%" PRIu64 ", %" PRIu64 ") = %s", ev->nmemb, ev->size,
                 ptr_str(ev->ptr, a, sizeof a));
        break;
    case MALLET_OP_REALLOC:
        snprintf(out, len, "realloc(%s, %" PRIu64 ") = %s", ptr_str(ev->old_ptr, a, sizeof a),
                 ev->size, ptr_str(ev->ptr, b, sizeof b));
        break;
    case MALLET_OP_REALLOCARRAY:
        snprintf(out, len, "reallocarray(%s, %" PRIu64 ", %" PRIu64 ") = %s",
                 ptr_str(ev->old_ptr, a, sizeof a), ev->nmemb, ev->size,
                 ptr_str(ev->ptr, b, sizeof b));
        break;
    case MALLET_OP_FREE:
        snprintf(out, len, "free(%s)", ptr_str(ev->ptr, a, sizeof a));
        break;
    case MALLET_OP_POSIX_MEMALIGN:
        if (ev->failed)
            snprintf(out, len, "posix_memalign(%" PRIu64 ", %" PRIu64 ") = error %" PRId32,
                     ev->align, ev->size, ev->ret);
        else
            snprintf(out, len, "posix_memalign(%" PRIu64 ", %" PRIu64 ") = %s", ev->align, ev->size,
                     ptr_str(ev->ptr, a, sizeof a));
        break;
    case MALLET_OP_ALIGNED_ALLOC:
    case MALLET_OP_MEMALIGN:
        snprintf(out, len, "%s(%" PRIu64 ", %" PRIu64 ") = %s", name, ev->align, ev->size,
                 ptr_str(ev->ptr, a, sizeof a));
        break;
    default:
        snprintf(out, len, "%s", name);
        break;
    }
}

/* The thread ends the files mark (TRACE_FORMAT.md 4.4), all files' by time, printed among the
 * events. */
typedef struct ends {
    mallet_thread_end_t *e;
    size_t n, next;
} ends_t;

static int ends_load(const mallet_reader_t *r, ends_t *d)
{
    unsigned files = mallet_reader_nfiles(r);
    size_t total = 0, k;
    for (unsigned f = 0; f < files; f++)
        mallet_reader_thread_ends(r, f, &k), total += k;
    if (!(d->e = malloc((total ? total : 1) * sizeof *d->e))) return -1;
    for (unsigned f = 0; f < files; f++) {
        const mallet_thread_end_t *e = mallet_reader_thread_ends(r, f, &k);
        if (k) memcpy(d->e + d->n, e, k * sizeof *e);
        d->n += k;
    }
    qsort(d->e, d->n, sizeof *d->e, mallet_thread_end_cmp);
    return 0;
}

/* Prints the ends before `cycles` (UINT64_MAX: all that are left). */
static void ends_print(const mallet_reader_t *r, ends_t *d, uint64_t cycles, uint64_t origin,
                       int no_time)
{
    for (; d->next < d->n && d->e[d->next].cycles < cycles; d->next++) {
        const mallet_thread_end_t *e = &d->e[d->next];
        if (!no_time) {
            uint64_t ns = mallet_reader_time_ns(r, e->cycles);
            uint64_t t = ns > origin ? ns - origin : 0;
            printf("%12" PRIu64 ".%03u ", t / 1000, (unsigned)(t % 1000));
        }
        printf("pid %" PRId64 " tid %" PRIu32 " thread ended\n",
               mallet_reader_info(r, e->file)->pid, e->tid);
    }
}

int mallet_cmd_dump(int argc, char **argv)
{
    int no_time = 0, symbols = 0;
    const mallet_flag_t flags[] = {{.name = "--no-time", .set = &no_time},
                                   {.name = "--symbols", .set = &symbols},
                                   {.name = NULL}};
    unsigned n = 0;
    int done = mallet_cli_parse_traces(argc, argv, "dump", mallet_usage_dump, flags, &n);
    if (done >= 0) return done;

    mallet_reader_t *r = mallet_cli_open_traces(argv, n);
    if (!r) return MALLET_EXIT_FAIL;
    mallet_symbols_t *syms = NULL;
    if (symbols) {
        syms = mallet_cli_symbols(r);
        if (!syms) {
            mallet_reader_close(r);
            mallet_err("out of memory");
            return MALLET_EXIT_FAIL;
        }
    }
    ends_t ends = {0};
    if (ends_load(r, &ends)) {
        free(ends.e);
        mallet_reader_close(r);
        mallet_symbols_free(syms);
        mallet_err("out of memory");
        return MALLET_EXIT_FAIL;
    }
    static char obuf[1 << 16]; /* one write per 64 KiB, not per line */
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    uint64_t origin = mallet_trace_origin(r);
    int started = 0, rc = MALLET_EXIT_OK, s;
    mallet_rec_t rec;
    while ((s = mallet_reader_next(r, &rec)) > 0) {
        const mallet_event_t *ev = &rec.ev;
        if (!started && rec.time_ns < origin) origin = rec.time_ns;
        started = 1;
        /* A realloc comes as two records (reader.h); its one line is printed when it returns. */
        if (rec.part == MALLET_PART_RELEASE) continue;
        ends_print(r, &ends, ev->cycles, origin, no_time);
        if (!no_time) {
            uint64_t t = rec.time_ns > origin ? rec.time_ns - origin : 0;
            printf("%12" PRIu64 ".%03u ", t / 1000, (unsigned)(t % 1000));
        }
        printf("pid %" PRId64 " tid %" PRIu32 " ", mallet_reader_info(r, rec.file)->pid, ev->tid);
        if (ev->op == MALLET_OP_RSS) {
            printf("rss %" PRIu64 "\n", ev->size);
            continue;
        }
        char call[160], site[1024];
        format_call(ev, call, sizeof call);
        if (syms)
            mallet_symbols_format(syms, rec.file, ev->callsite, site, sizeof site);
        else
            snprintf(site, sizeof site, "0x%" PRIx64, ev->callsite);
        printf("%s%s  [%s]\n", call, ev->failed ? " failed" : "", site);
    }
    if (s == 0) ends_print(r, &ends, UINT64_MAX, origin, no_time);
    if (s < 0) {
        fflush(stdout);
        mallet_err("%s", mallet_reader_error(r));
        rc = MALLET_EXIT_FAIL;
    }
    free(ends.e);
    mallet_reader_close(r);
    mallet_symbols_free(syms);
    if (fflush(stdout) || ferror(stdout)) {
        mallet_err("dump: cannot write the output");
        rc = MALLET_EXIT_FAIL;
    }
    return rc;
}
